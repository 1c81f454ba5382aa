"""``sk-reweight speed``: time-to-target of a method against uniform SGD on one dataset.

The baseline is :class:`~sk_reweight.ERMClassifier` with SGD (momentum 0.9):
uniform minibatches, the same network, batch size, learning rate, schedule,
epochs and seeds as the method. For seed ``s`` both train on the same 80 % of
the (capped) data, the :func:`~sk_reweight.harness._evaluation.holdout` split of
repetition ``s``, with ``random_state = 1000 s`` (the harness's one seeding rule),
and are scored on the other 20 %. A third run, uniform SGD given only as many
epochs as the method ran with its schedule compressed to them, is the
budgeted-training baseline.

The comparison follows the RAIS paper (Johnson & Guestrin, 2018): training
loss against epochs, epochs equivalent and wall-clock; the epochs and
wall-clock the method needs to reach the baseline's *final* training loss
(linearly interpolated between epochs), the resulting speed-up, and the
per-epoch overhead (median epoch duration over the baseline's, with and
without the first epoch). The training loss compared is either ``history_``'s
(the plain mean cross-entropy of the epoch's minibatches for every method,
never the reweighted objective; under importance sampling these minibatches
lean towards hard examples) or, with ``full_loss``, the mean cross-entropy over
the whole training set after every epoch: the weights are copied at the end of
each epoch, after its timer stopped, and evaluated once training is over, so
that the measurement costs the timed epochs nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

from ._bench import INTERRUPTED, PreparedDataset, load_dataset, prepare_dataset, take
from ._curves import learning_curve, time_to_target
from ._evaluation import holdout, markdown_table
from ._methods import Budget, flatten_images, make_model
from ._plots import plot_learning_curves
from ._provenance import run_record, write_json

BASELINE_NAME = "uniform SGD"
COMPRESSED_NAME = "uniform SGD, method's epochs"
"""Uniform SGD given only as many epochs as the method ran, its schedule compressed to them."""
FULL_LOSS = "full_train_loss"
"""Curve column of the mean cross-entropy over the whole training set after each epoch."""
SPEED_METHODS = {"rais": RAISClassifier, "rgd": RGDClassifier, "erm": ERMClassifier}
"""Methods ``speed`` can compare with uniform SGD: the package's own classifiers."""


SPEED_BUDGET = Budget(lr=0.05, batch_size=128, max_epochs=20)
"""Default network and schedule of ``speed``: SGD-sized learning rate, 20 epochs."""


@dataclass(frozen=True)
class SpeedSettings:
    """Everything ``sk-reweight speed`` was asked to do.

    ``full_loss`` compares the full training loss (:data:`FULL_LOSS`) instead of
    the minibatch losses; ``flatten`` trains an MLP on the flattened,
    standardised pixels of an image dataset instead of the default CNN;
    ``method_parameters`` are further parameters of the method's classifier
    (e.g. RAIS's ``refresh_interval``), validated by the classifier at ``fit``.
    """

    dataset: str
    method: str = "rais"
    optimizer: str = "sgd"
    lr_schedule: str | None = "step"
    budget: Budget = SPEED_BUDGET
    seeds: int = 1
    max_rows: int | None = None
    data_home: str | None = None
    full_loss: bool = False
    flatten: bool = False
    method_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> str:
        """The curves' column compared: :data:`FULL_LOSS` or ``'train_loss'``."""
        return FULL_LOSS if self.full_loss else "train_loss"

    def training_parameters(self, optimizer: str) -> dict:
        """Parameters of one run: the budget, SGD momentum 0.9, the schedule, ``optimizer``."""
        return {
            "hidden_layer_sizes": self.budget.hidden_layer_sizes,
            "optimizer": optimizer,
            "lr": self.budget.lr,
            "momentum": 0.9,
            "lr_schedule": self.lr_schedule,
            "batch_size": self.budget.batch_size,
            "max_epochs": self.budget.max_epochs,
            "device": self.budget.device,
        }


def speed_summary(
    baseline: pd.DataFrame, method: pd.DataFrame, loss: str = "train_loss"
) -> dict[str, float]:
    """Compare one seed's two learning curves (:func:`~._curves.learning_curve`).

    Parameters
    ----------
    baseline, method : DataFrame
        Learning curves of uniform SGD and of the method.
    loss : str, default='train_loss'
        The curves' column compared: ``'train_loss'`` (the epoch's minibatch
        losses) or :data:`FULL_LOSS`.

    Returns
    -------
    summary : dict
        ``target_loss`` (the baseline's final training loss), the method's
        ``final_loss``, ``seconds_to_target`` and ``epochs_to_target`` (NaN if
        never reached), ``baseline_seconds`` (total), ``speedup`` (baseline
        seconds over the method's seconds to target) and ``overhead`` (median
        epoch duration of the method over the baseline's).
    """
    target = float(baseline[loss].iloc[-1])
    seconds = time_to_target(method["seconds"], method[loss], target)
    baseline_seconds = float(baseline["seconds"].iloc[-1])
    method_epochs = np.diff(method["seconds"], prepend=0.0)
    baseline_epochs = np.diff(baseline["seconds"], prepend=0.0)
    return {
        "target_loss": target,
        "final_loss": float(method[loss].iloc[-1]),
        "seconds_to_target": seconds,
        "epochs_to_target": time_to_target(method["epoch"], method[loss], target),
        "baseline_seconds": baseline_seconds,
        "speedup": baseline_seconds / seconds,
        "overhead": float(np.median(method_epochs) / np.median(baseline_epochs)),
        "overhead_after_first": float(
            np.median(method_epochs[1:]) / np.median(baseline_epochs[1:])
            if len(method_epochs) > 1 and len(baseline_epochs) > 1
            else np.nan
        ),
    }


@dataclass(frozen=True)
class TrainTestSplit:
    """The data of one seed's runs: training and test rows, and how to build a model for them.

    Attributes
    ----------
    X_train, y_train, X_test, y_test : array-like
        Inputs and labels (encoded as ``0 .. n_classes - 1``).
    kind : {'tabular', 'image'}
        Kind of the inputs.
    n_classes : int
        Number of classes.
    make_preprocessor : callable
        Returns a fresh, unfitted preprocessor (or None), fitted inside each
        run's pipeline on the training rows.
    training_seed : int
        ``random_state`` of every run on this split.
    """

    X_train: Any
    y_train: NDArray[np.int64]
    X_test: Any
    y_test: NDArray[np.int64]
    kind: str
    n_classes: int
    make_preprocessor: Callable[[], BaseEstimator | None]
    training_seed: int = 0

    @classmethod
    def holdout(
        cls,
        X: Any,
        y: NDArray[np.int64],
        seed: int,
        kind: str,
        n_classes: int,
        make_preprocessor: Callable[[], BaseEstimator | None],
    ) -> TrainTestSplit:
        """The :func:`~sk_reweight.harness._evaluation.holdout` split of repetition ``seed``."""
        split = holdout(y, seed)
        return cls(
            take(X, split.train),
            y[split.train],
            take(X, split.test),
            y[split.test],
            kind,
            n_classes,
            make_preprocessor,
            split.training_seed,
        )

    @classmethod
    def of_dataset(cls, data: PreparedDataset, seed: int, flatten: bool = False) -> TrainTestSplit:
        """:meth:`holdout` of a prepared dataset.

        With ``flatten``, an image dataset becomes a tabular one: its pixels
        flattened and standardised (for an MLP instead of the default CNN).
        Tabular datasets are unaffected.
        """
        if flatten and data.info["kind"] == "image":
            X = flatten_images(data.X)
            return cls.holdout(X, data.y, seed, "tabular", data.n_classes, StandardScaler)
        return cls.holdout(
            data.X, data.y, seed, data.info["kind"], data.n_classes, data.preprocessor
        )


class WeightsPerEpoch(Callback):
    """Keeps a copy of the network's weights at the end of every epoch.

    skorch calls it after its epoch timer, so the copy is not part of the
    epoch's recorded duration.
    """

    def on_train_begin(self, net, **kwargs) -> None:
        self.weights_: list[dict] = []

    def on_epoch_end(self, net, **kwargs) -> None:
        self.weights_.append(copy.deepcopy(net.module_.state_dict()))


WEIGHTS_CALLBACK = "weights_per_epoch"
"""Name of the :class:`WeightsPerEpoch` callback of a run that measures the full loss."""


def mean_cross_entropy(classifier: BaseEstimator, X: ArrayLike, y: ArrayLike) -> float:
    """Mean cross-entropy of a fitted classifier on ``(X, y)``, from its log-probabilities."""
    columns = np.searchsorted(classifier.classes_, y)
    log_proba = classifier.predict_log_proba(X)
    return float(-log_proba[np.arange(len(columns)), columns].mean())


def full_loss_curve(model: Pipeline, X: ArrayLike, y: ArrayLike) -> list[float]:
    """Mean cross-entropy on ``(X, y)`` of the weights :class:`WeightsPerEpoch` kept.

    Parameters
    ----------
    model : Pipeline
        A fitted :func:`~sk_reweight.harness._methods.make_model` whose classifier
        trained with the callback :data:`WEIGHTS_CALLBACK`.
    X, y : array-like
        The rows to evaluate on (the training set), before preprocessing.

    Returns
    -------
    losses : list of float
        One per epoch. The network keeps its final weights; the copies are
        dropped.
    """
    classifier = model[-1]
    X = model[:-1].transform(X)
    network = classifier.net_.module_
    final = copy.deepcopy(network.state_dict())
    callback = dict(classifier.net_.callbacks_)[WEIGHTS_CALLBACK]
    losses = []
    for weights in callback.weights_:
        network.load_state_dict(weights)
        losses.append(mean_cross_entropy(classifier, X, y))
    network.load_state_dict(final)
    callback.weights_ = []
    return losses


Run = tuple[pd.DataFrame, float]
"""A fitted run: its learning curve and its test accuracy."""


def fit_curve(
    split: TrainTestSplit,
    budget: Budget,
    method: str,
    parameters: dict,
    full_loss: bool = False,
) -> Run:
    """Fit one run on the training rows of ``split``: its learning curve and test accuracy.

    The classifier's ``random_state`` is the split's ``training_seed``. With
    ``full_loss``, the curve gets the column :data:`FULL_LOSS`, measured
    outside the timed epochs (:func:`full_loss_curve`).
    """
    model = make_model(
        method,
        split.kind,
        split.n_classes,
        split.make_preprocessor(),
        budget,
        split.training_seed,
        tune=False,
    )
    model[-1].set_params(**parameters)
    if full_loss:
        model[-1].set_params(callbacks=[(WEIGHTS_CALLBACK, WeightsPerEpoch())])
    start = time.perf_counter()
    model.fit(split.X_train, split.y_train)
    curve = learning_curve(model[-1], time.perf_counter() - start)
    if full_loss:
        curve[FULL_LOSS] = full_loss_curve(model, split.X_train, split.y_train)
    return curve, model.score(split.X_test, split.y_test)


def race_against_uniform_sgd(
    fit: Callable[[str, dict], Run],
    method: str,
    label: str,
    method_parameters: dict,
    sgd_parameters: dict,
) -> dict[str, Run]:
    """Fit uniform SGD, the method, and uniform SGD compressed to the method's epochs.

    Parameters
    ----------
    fit : callable
        ``fit(method, parameters)``: one run (e.g. :func:`fit_curve` with its
        split, budget and seed bound).
    method : str
        The method's name in :data:`~sk_reweight.harness._methods.METHODS`.
    label : str
        The method's name in the result.
    method_parameters, sgd_parameters : dict
        Classifier parameters of the method and of uniform SGD (ERM).

    Returns
    -------
    runs : dict
        :data:`BASELINE_NAME`, ``label`` and :data:`COMPRESSED_NAME` (uniform
        SGD with ``max_epochs`` = the epochs the method ran), in that order.
    """
    runs = {BASELINE_NAME: fit("erm", sgd_parameters), label: fit(method, method_parameters)}
    epochs_run = len(runs[label][0])
    runs[COMPRESSED_NAME] = fit("erm", {**sgd_parameters, "max_epochs": epochs_run})
    return runs


def race_results(runs: dict[str, Run], loss: str = "train_loss") -> pd.DataFrame:
    """Every run of a race measured against uniform SGD: one row per run.

    Parameters
    ----------
    runs : dict
        :func:`race_against_uniform_sgd`'s runs.
    loss : str, default='train_loss'
        The curves' column compared (see :func:`speed_summary`).

    Returns
    -------
    results : DataFrame
        Columns ``method``, ``epochs_run``, ``epochs_equivalent`` (at the
        end), ``seconds`` (sum of the epochs' durations), ``test_accuracy``,
        ``solve_seconds`` (total), ``mean_gain_ratio`` (over epochs) and the
        :func:`speed_summary` of the run against uniform SGD (whose own row
        has speed-up and overhead 1 when it reaches its final loss only at the
        end).
    """
    baseline = runs[BASELINE_NAME][0]
    rows = []
    for name, (curve, accuracy) in runs.items():
        rows.append(
            {
                "method": name,
                "epochs_run": len(curve),
                "epochs_equivalent": float(curve["epochs_equivalent"].iloc[-1]),
                "seconds": float(curve["seconds"].iloc[-1]),
                "test_accuracy": float(accuracy),
                "solve_seconds": float(curve["solve_seconds"].sum()),
                "mean_gain_ratio": float(curve["gain_ratio"].mean()),
                **speed_summary(baseline, curve, loss),
            }
        )
    return pd.DataFrame(rows)


def _median_ratio(values: pd.Series, references: pd.Series) -> str:
    """Median over seeds of ``values / references``, and how many seeds never got there."""
    ratios = (values / references).to_numpy()
    never = int(np.isnan(ratios).sum())
    if never > len(ratios) / 2:
        return f"never ({never}/{len(ratios)})"
    finite = ratios[np.isfinite(ratios)]
    text = f"{np.median(finite):.2f}x"
    return f"{text} ({never}/{len(ratios)} never)" if never else text


def method_table(results: pd.DataFrame) -> pd.DataFrame:
    """Medians over seeds of :func:`race_results`, one formatted row per method.

    ``epochs-to-target`` and ``time-to-target`` are the run's epochs and
    seconds to uniform SGD's final loss over uniform SGD's total epochs and
    seconds, medians over the seeds that reached it (with the count of those
    that never did; "never" when most did not).
    """
    baseline = results[results["method"] == BASELINE_NAME].set_index("seed")
    rows = []
    for method, runs in results.groupby("method", sort=False):
        runs = runs.set_index("seed")
        rows.append(
            {
                "method": method,
                "final loss": f"{runs['final_loss'].median():.4f}",
                "test acc": f"{100 * runs['test_accuracy'].median():.2f}",
                "epochs run": f"{runs['epochs_run'].median():g}",
                "epochs equiv.": f"{runs['epochs_equivalent'].median():.2f}",
                "mean gain ratio": f"{runs['mean_gain_ratio'].median():.3f}",
                "PT seconds": f"{runs['solve_seconds'].median():.1f}",
                "seconds": f"{runs['seconds'].median():.1f}",
                "overhead/epoch (all, after 1st)": (
                    f"{runs['overhead'].median():.2f}x, "
                    f"{runs['overhead_after_first'].median():.2f}x"
                ),
                "epochs-to-target": _median_ratio(
                    runs["epochs_to_target"], baseline["epochs_run"]
                ),
                "time-to-target": _median_ratio(runs["seconds_to_target"], baseline["seconds"]),
            }
        )
    return pd.DataFrame(rows)


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU while timing, then turn flushing off again.

    A network trained to near-zero loss slows down 2-4x on x86 as its
    gradients become denormal (``docs/benchmarks.md``); both runs of a race
    get the same arithmetic. Off is torch's default (torch cannot report the
    previous setting).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def run_speed(settings: SpeedSettings, output: Path, argv: Sequence[str] = ()) -> int:
    """Train the method and uniform SGD for every seed; write CSV, Markdown, PNG to ``output``.

    Returns
    -------
    status : int
        0, or :data:`~sk_reweight.harness._bench.INTERRUPTED` after Ctrl-C, when the
        finished seeds are kept and summarised.
    """
    output.mkdir(parents=True, exist_ok=True)
    for stale in ("curves.csv", "speed.csv", "speed.png"):
        (output / stale).unlink(missing_ok=True)
    budget = settings.budget
    record = run_record(list(argv), {**asdict(settings), "output": str(output)}, budget.device)
    data = prepare_dataset(load_dataset(settings.dataset, settings.data_home), settings.max_rows)
    record["dataset"] = data.info
    record["training_seed"] = "1000 * seed (harness._evaluation.training_seed, fold 0)"
    write_json(output / "config.json", record)

    curves, results = [], []
    label = f"{settings.method} ({settings.optimizer})"
    progress = tqdm(total=3 * settings.seeds, desc="speed", unit="fit")

    def fit_and_count(split: TrainTestSplit, method: str, parameters: dict) -> Run:
        run = fit_curve(split, budget, method, parameters, settings.full_loss)
        progress.update()
        return run

    try:
        with flushed_denormals():
            for seed in range(settings.seeds):
                split = TrainTestSplit.of_dataset(data, seed, settings.flatten)
                runs = race_against_uniform_sgd(
                    partial(fit_and_count, split),
                    settings.method,
                    label,
                    {
                        **settings.training_parameters(settings.optimizer),
                        **settings.method_parameters,
                    },
                    settings.training_parameters("sgd"),
                )
                for name, (curve, accuracy) in runs.items():
                    curves.append(curve.assign(method=name, seed=seed, test_accuracy=accuracy))
                results.append(race_results(runs, settings.loss).assign(seed=seed))
    except KeyboardInterrupt:
        progress.close()
        status = f"interrupted after {len(results)} of {settings.seeds} seeds"
        _finish_speed(output, settings, data, record, label, curves, results, status)
        print(f"\nInterrupted: kept {len(results)} finished seed(s) in {output}")
        return INTERRUPTED
    progress.close()
    print(_finish_speed(output, settings, data, record, label, curves, results, "complete"))
    return 0


def _finish_speed(
    output: Path,
    settings: SpeedSettings,
    data: PreparedDataset,
    record: dict,
    label: str,
    curves: list[pd.DataFrame],
    results: list[pd.DataFrame],
    status: str,
) -> str:
    """Write the CSV files, plot and ``summary.md`` of the finished seeds; return the summary."""
    budget = settings.budget
    network = (
        f"MLP {list(budget.hidden_layer_sizes)} on flattened, standardised pixels"
        if settings.flatten and data.info["kind"] == "image"
        else f"hidden layers {list(budget.hidden_layer_sizes)}"
    )
    loss = (
        "full training loss (whole training set, after every epoch)"
        if settings.full_loss
        else "training loss (mean over the epoch's minibatches)"
    )
    parts = [
        f"# Speed: {label} vs {BASELINE_NAME} on {settings.dataset}",
        f"{budget.max_epochs} epochs, lr {budget.lr:g}, schedule {settings.lr_schedule}, "
        f"batch {budget.batch_size}, {network}, {settings.seeds} seed(s), "
        f"{data.info['n_rows']} rows (80 % train / 20 % test per seed), device "
        f"{budget.device}, {torch.get_num_threads()} torch thread(s)"
        + (
            f", method parameters {settings.method_parameters}"
            if settings.method_parameters
            else ""
        )
        + f". Compared: the {loss}; target: {BASELINE_NAME}'s final value. "
        f"{COMPRESSED_NAME}: the budgeted-training baseline. Medians over seeds; "
        "epochs-to-target and time-to-target are over uniform SGD's total epochs and seconds.",
        f"Status: {status}.",
    ]
    if results:
        curves_frame = pd.concat(curves, ignore_index=True)
        curves_frame.to_csv(output / "curves.csv", index=False)
        speed = pd.concat(results, ignore_index=True)
        speed = speed[["seed", *speed.columns.drop("seed")]]
        speed.to_csv(output / "speed.csv", index=False)
        plot_learning_curves(
            curves_frame,
            output / "speed.png",
            f"{settings.dataset}: {label} vs {BASELINE_NAME}",
            settings.loss,
        )
        method = speed[speed["method"] == label]
        parts += [
            markdown_table(method_table(speed)),
            f"{label} per seed:",
            markdown_table(
                method[
                    [
                        "seed",
                        "final_loss",
                        "target_loss",
                        "epochs_to_target",
                        "seconds_to_target",
                        "baseline_seconds",
                        "speedup",
                        "overhead",
                        "overhead_after_first",
                    ]
                ].round(4)
            ),
        ]
    report = "\n\n".join(parts)
    (output / "summary.md").write_text(report + "\n")
    record["status"] = status
    write_json(output / "config.json", record)
    return report
