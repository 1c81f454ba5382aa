"""``sk-reweight speed``: time-to-target of a method against uniform SGD on one dataset.

The baseline is :class:`~sk_reweight.ERMClassifier` with SGD (momentum 0.9):
uniform minibatches, the same network, batch size, learning rate, schedule,
epochs and seeds as the method. For each seed both train on the same 80 % of
the (capped) data and are scored on the other 20 %. The comparison follows the
RAIS paper (Johnson & Guestrin, 2018): training loss against epochs, epochs
equivalent and wall-clock; the wall-clock time the method needs to reach the
baseline's *final* training loss (linearly interpolated between epochs), the
resulting speed-up, and the per-epoch overhead (median epoch duration over the
baseline's). ``history_`` training losses are the plain mean cross-entropy of
the epoch's minibatches for every method (never the reweighted objective).

The same race, on arrays, can also measure the *full* training loss after
every epoch (``full_loss=True``, used by ``sk-reweight demo``): the weights
are copied at the end of each epoch, after its timer stopped, and evaluated
on the whole training set once training is over, so that the measurement
costs the timed epochs nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from ._bench import INTERRUPTED, PreparedDataset, load_dataset, prepare_dataset, take
from ._curves import learning_curve, time_to_target
from ._evaluation import markdown_table
from ._methods import Budget, make_model
from ._plots import plot_learning_curves
from ._provenance import run_record, write_json

BASELINE_NAME = "uniform SGD"
COMPRESSED_NAME = "uniform SGD, method's epochs"
"""Uniform SGD given only as many epochs as the method ran, its schedule compressed to them."""
FULL_LOSS = "full_train_loss"
"""Curve column of the mean cross-entropy over the whole training set after each epoch."""
SPEED_METHODS = ("rais", "rgd", "erm")
"""Methods ``speed`` can compare with uniform SGD: the package's own classifiers."""


SPEED_BUDGET = Budget(lr=0.05, batch_size=128, max_epochs=20)
"""Default network and schedule of ``speed``: SGD-sized learning rate, 20 epochs."""


@dataclass(frozen=True)
class SpeedSettings:
    """Everything ``sk-reweight speed`` was asked to do."""

    dataset: str
    method: str = "rais"
    optimizer: str = "sgd"
    lr_schedule: str | None = "step"
    budget: Budget = SPEED_BUDGET
    seeds: int = 1
    max_rows: int | None = None
    data_home: str | None = None

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
    return {
        "target_loss": target,
        "final_loss": float(method[loss].iloc[-1]),
        "seconds_to_target": seconds,
        "epochs_to_target": time_to_target(method["epoch"], method[loss], target),
        "baseline_seconds": baseline_seconds,
        "speedup": baseline_seconds / seconds,
        "overhead": float(
            np.median(np.diff(method["seconds"], prepend=0.0))
            / np.median(np.diff(baseline["seconds"], prepend=0.0))
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
    """

    X_train: Any
    y_train: NDArray[np.int64]
    X_test: Any
    y_test: NDArray[np.int64]
    kind: str
    n_classes: int
    make_preprocessor: Callable[[], BaseEstimator | None]

    @classmethod
    def of_dataset(cls, data: PreparedDataset, seed: int) -> TrainTestSplit:
        """A stratified 80 / 20 split of a prepared dataset, shuffled by ``seed``."""
        train, test = train_test_split(
            np.arange(len(data.y)), test_size=0.2, random_state=seed, stratify=data.y
        )
        return cls(
            take(data.X, train),
            data.y[train],
            take(data.X, test),
            data.y[test],
            data.info["kind"],
            data.n_classes,
            data.preprocessor,
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
    seed: int,
    method: str,
    parameters: dict,
    full_loss: bool = False,
) -> Run:
    """Fit one run on the training rows of ``split``: its learning curve and test accuracy.

    With ``full_loss``, the curve gets the column :data:`FULL_LOSS`, measured
    outside the timed epochs (:func:`full_loss_curve`).
    """
    model = make_model(
        method, split.kind, split.n_classes, split.make_preprocessor(), budget, seed, tune=False
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


def race_summary(runs: dict[str, Run], label: str, loss: str = "train_loss") -> dict[str, float]:
    """:func:`speed_summary` of the method ``label`` and the compressed baseline's final loss."""
    compressed_curve = runs[COMPRESSED_NAME][0]
    return {
        **speed_summary(runs[BASELINE_NAME][0], runs[label][0], loss),
        "compressed_final_loss": float(compressed_curve[loss].iloc[-1]),
    }


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
    write_json(output / "config.json", record)

    curves, summaries = [], []
    label = f"{settings.method} ({settings.optimizer})"
    progress = tqdm(total=3 * settings.seeds, desc="speed", unit="fit")

    def fit_and_count(split: TrainTestSplit, seed: int, method: str, parameters: dict) -> Run:
        run = fit_curve(split, budget, seed, method, parameters)
        progress.update()
        return run

    try:
        for seed in range(settings.seeds):
            split = TrainTestSplit.of_dataset(data, seed)
            runs = race_against_uniform_sgd(
                partial(fit_and_count, split, seed),
                settings.method,
                label,
                settings.training_parameters(settings.optimizer),
                settings.training_parameters("sgd"),
            )
            for name, (curve, accuracy) in runs.items():
                curves.append(curve.assign(method=name, seed=seed, test_accuracy=accuracy))
            summaries.append({"seed": seed, **race_summary(runs, label)})
    except KeyboardInterrupt:
        progress.close()
        status = f"interrupted after {len(summaries)} of {settings.seeds} seeds"
        _finish_speed(output, settings, data, record, label, curves, summaries, status)
        print(f"\nInterrupted: kept {len(summaries)} finished seed(s) in {output}")
        return INTERRUPTED
    progress.close()
    print(_finish_speed(output, settings, data, record, label, curves, summaries, "complete"))
    return 0


def _finish_speed(
    output: Path,
    settings: SpeedSettings,
    data: PreparedDataset,
    record: dict,
    label: str,
    curves: list[pd.DataFrame],
    summaries: list[dict],
    status: str,
) -> str:
    """Write the CSV files, plot and ``summary.md`` of the finished seeds; return the summary."""
    budget = settings.budget
    parts = [
        f"# Speed: {label} vs {BASELINE_NAME} on {settings.dataset}",
        f"{budget.max_epochs} epochs, lr {budget.lr:g}, schedule {settings.lr_schedule}, "
        f"batch {budget.batch_size}, hidden layers {list(budget.hidden_layer_sizes)}, "
        f"{settings.seeds} seed(s), {data.info['n_rows']} rows (80 % train / 20 % test "
        f"per seed), device {budget.device}. Target: the baseline's final training loss. "
        f"`compressed_final_loss`: {COMPRESSED_NAME} (the budgeted-training baseline).",
        f"Status: {status}.",
    ]
    if summaries:
        curves_frame = pd.concat(curves, ignore_index=True)
        curves_frame.to_csv(output / "curves.csv", index=False)
        speed = pd.DataFrame(summaries)
        speed.to_csv(output / "speed.csv", index=False)
        plot_learning_curves(
            curves_frame,
            output / "speed.png",
            f"{settings.dataset}: {label} vs {BASELINE_NAME}",
        )
        accuracy = curves_frame.groupby("method", sort=False)["test_accuracy"].mean()
        parts += [
            markdown_table(speed.round(4)),
            "Median over seeds: speed-up "
            f"{speed['speedup'].median():.3f}, per-epoch overhead "
            f"{speed['overhead'].median():.3f}. Test accuracy: "
            + ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
            + ".",
        ]
    report = "\n\n".join(parts)
    (output / "summary.md").write_text(report + "\n")
    record["status"] = status
    write_json(output / "config.json", record)
    return report
