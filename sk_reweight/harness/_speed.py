"""``sk-reweight speed``: a method against uniform SGD on one dataset, on a clock.

The baseline is :class:`~sk_reweight.ERMClassifier` with SGD (momentum 0.9):
uniform minibatches, the same network, batch size, learning rate, schedule,
epochs and seeds as the method. For seed ``s`` every run trains on the same
80 % of the (capped) data, the :func:`~sk_reweight.harness._evaluation.holdout`
split of repetition ``s``, with ``random_state = 1000 s`` (the harness's one
seeding rule), and is scored on the other 20 % (the *held-out* rows).

What users buy is held-out accuracy per second, so every run records, after
every epoch, the held-out accuracy and log-loss (and with ``full_loss`` the
mean cross-entropy over the whole training set): :class:`WeightsPerEpoch`
copies the weights at the end of each epoch, after its timer stopped, and one
pass over these snapshots once training is over evaluates them
(:func:`snapshot_scores`), so that the measurement costs the timed epochs
nothing. Reported:

- **time-to-target** (the RAIS paper's measure, Johnson & Guestrin, 2018): the
  seconds (and epochs) a run needs to reach uniform SGD's *final* training
  loss, held-out log-loss and held-out accuracy, linearly interpolated between
  epochs (:func:`~sk_reweight.harness._curves.time_to_target`), over uniform
  SGD's total seconds; the per-epoch overhead (median epoch duration over
  uniform SGD's, with and without the first epoch).
- **the equal-time frontier**: uniform SGD trained with budgets of fewer epochs
  (by default 1/4, 1/2, 3/4 and all of them, each with its schedule compressed
  to its budget, ``max_epochs`` = the budget) gives held-out accuracy against
  training seconds; the method runs with the same budgets (points paired by
  budget and seed), and each of its points is compared with uniform SGD's
  accuracy interpolated at the method's own seconds, "accuracy at equal time"
  (:func:`~sk_reweight.harness._curves.frontier_accuracy`; a point outside
  the frontier's time range is compared with its nearest end and flagged),
  and by the seconds uniform SGD needs on its frontier to reach the method's
  accuracy, over the method's seconds. This subsumes the budgeted-training
  baseline (uniform SGD given the method's number of epochs): the frontier
  compares at equal *time*, not at equal epochs.

Before anything is timed, a warm-up fits every contender for a few epochs on a
slice of the training rows and is discarded (the process's first fit pays
one-off costs: imports, allocator, kernels); within each seed the order of the
runs alternates (seed 0: uniform SGD first, seed 1: the method first, ...), so
that neither always runs on a warmer or cooler machine.
"""

from __future__ import annotations

import copy
import math
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

from sk_reweight import ERMClassifier, InfoBatchClassifier, RAISClassifier, RGDClassifier

from ._bench import INTERRUPTED, PreparedDataset, load_dataset, prepare_dataset, take
from ._curves import (
    frontier_accuracy,
    frontier_position,
    frontier_seconds_to_accuracy,
    learning_curve,
    time_to_target,
)
from ._evaluation import holdout, markdown_table
from ._methods import Budget, flatten_images, make_model
from ._plots import plot_frontier, plot_learning_curves
from ._provenance import run_record, write_json
from ._verdicts import assess, describe

BASELINE_NAME = "uniform SGD"
FULL_LOSS = "full_train_loss"
"""Curve column of the mean cross-entropy over the whole training set after each epoch."""
TEST_ACCURACY = "test_accuracy"
"""Curve column of the held-out accuracy after each epoch."""
TEST_LOG_LOSS = "test_log_loss"
"""Curve column of the held-out log-loss (mean cross-entropy) after each epoch."""
SPEED_METHODS = {
    "rais": RAISClassifier,
    "infobatch": InfoBatchClassifier,
    "rgd": RGDClassifier,
    "erm": ERMClassifier,
}
"""Methods ``speed`` can compare with uniform SGD: the package's own classifiers."""

SPEED_BUDGET = Budget(lr=0.05, batch_size=128, max_epochs=20)
"""Default network and schedule of ``speed``: SGD-sized learning rate, 20 epochs."""

DEFAULT_BUDGETS = (0.25, 0.5, 0.75, 1.0)
"""Fractions of the epochs given to the runs of the equal-time frontier."""

MIN_TIMED_SECONDS = 0.5
"""A run of the full budget shorter than this (sum of its epochs' durations) is too short to time.

Timer resolution is not the issue; below half a second, scheduling, caches and
the machine's other work move a run's time by tens of percent, so ratios of
such times say nothing.
"""

WARM_UP_ROWS = 512
"""Training rows of the untimed warm-up fits (the first ones of seed 0's split)."""
WARM_UP_EPOCHS = 2
"""Epochs of the warm-up fits: two, so that RAIS also samples by importance and solves (PT)."""


@dataclass(frozen=True)
class SpeedSettings:
    """Everything ``sk-reweight speed`` was asked to do.

    ``full_loss`` compares the full training loss (:data:`FULL_LOSS`) instead of
    the minibatch losses; ``flatten`` trains an MLP on the flattened,
    standardised pixels of an image dataset instead of the default CNN;
    ``budgets`` are the fractions of the epochs of the equal-time frontier
    (all of them, 1, is always run); ``method_parameters`` are further
    parameters of the method's classifier (e.g. RAIS's ``refresh_interval``)
    and ``shared_parameters`` further parameters of *both* the method and
    uniform SGD (e.g. an augmentation), validated by the classifiers at
    ``fit``; the method's own take precedence.
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
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    method_parameters: dict[str, Any] = field(default_factory=dict)
    shared_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> str:
        """The curves' column compared: :data:`FULL_LOSS` or ``'train_loss'``."""
        return FULL_LOSS if self.full_loss else "train_loss"

    @property
    def label(self) -> str:
        """The method's name in the results, e.g. ``'rais (sgd)'``."""
        return f"{self.method} ({self.optimizer})"

    def training_parameters(self, optimizer: str) -> dict:
        """Parameters of one run: the budget, SGD momentum 0.9, the schedule, ``optimizer``.

        The shared parameters are included.
        """
        return {
            "hidden_layer_sizes": self.budget.hidden_layer_sizes,
            "optimizer": optimizer,
            "lr": self.budget.lr,
            "momentum": 0.9,
            "lr_schedule": self.lr_schedule,
            "batch_size": self.budget.batch_size,
            "max_epochs": self.budget.max_epochs,
            "n_iter_no_change": None,  # every run trains its whole budget
            "device": self.budget.device,
            **self.shared_parameters,
        }

    def race(self) -> Race:
        """The runs of every seed: the method and uniform SGD at every budget."""
        return Race(
            self.method,
            self.label,
            {**self.training_parameters(self.optimizer), **self.method_parameters},
            self.training_parameters("sgd"),
            budget_epochs(self.budgets, self.budget.max_epochs),
        )


def budget_epochs(fractions: Sequence[float], max_epochs: int) -> tuple[int, ...]:
    """Epochs of the frontier's budgets: ``ceil(f * max_epochs)`` for each fraction ``f``.

    Parameters
    ----------
    fractions : sequence of float
        Fractions in ``(0, 1]``.
    max_epochs : int
        The full budget, always included.

    Returns
    -------
    epochs : tuple of int
        Distinct budgets, increasing, the last ``max_epochs`` (fractions that
        round to the same epochs run once).
    """
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(
            f"budgets are fractions of the epochs in (0, 1], got {bad}; e.g. 0.25 0.5 0.75 1"
        )
    epochs = {max(1, math.ceil(f * max_epochs - 1e-9)) for f in fractions} | {max_epochs}
    return tuple(sorted(epochs))


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

    def head(self, n_rows: int) -> TrainTestSplit:
        """The same split with only its first ``n_rows`` training and test rows (a warm-up's)."""
        rows = np.arange(min(n_rows, len(self.y_train)))
        test_rows = np.arange(min(n_rows, len(self.y_test)))
        return TrainTestSplit(
            take(self.X_train, rows),
            self.y_train[rows],
            take(self.X_test, test_rows),
            self.y_test[test_rows],
            self.kind,
            self.n_classes,
            self.make_preprocessor,
            self.training_seed,
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
"""Name of the :class:`WeightsPerEpoch` callback of every run of ``speed``."""


def accuracy_and_log_loss(
    classifier: BaseEstimator, X: ArrayLike, y: ArrayLike
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of a fitted classifier on ``(X, y)``.

    Both from one call of ``predict_log_proba``: the predicted class is the
    most probable one (as ``predict``), the cross-entropy is
    ``-mean_i log p(y_i | x_i)`` (scikit-learn's ``log_loss`` without its
    clipping; the classifiers compute the log-probabilities stably).
    """
    columns = np.searchsorted(classifier.classes_, y)
    log_proba = classifier.predict_log_proba(X)
    accuracy = float((log_proba.argmax(axis=1) == columns).mean())
    return accuracy, float(-log_proba[np.arange(len(columns)), columns].mean())


def snapshot_scores(model: Pipeline, split: TrainTestSplit, full_loss: bool) -> pd.DataFrame:
    """Held-out accuracy and log-loss (and the full training loss) of every epoch's weights.

    One pass over the weights :class:`WeightsPerEpoch` kept: each snapshot is
    loaded into the network and evaluated on the held-out rows (and, with
    ``full_loss``, on the whole training set); the inputs are preprocessed
    once.

    Parameters
    ----------
    model : Pipeline
        A fitted :func:`~sk_reweight.harness._methods.make_model` whose
        classifier trained with the callback :data:`WEIGHTS_CALLBACK`.
    split : TrainTestSplit
        The rows it trained on and the held-out rows.
    full_loss : bool
        Also evaluate the mean cross-entropy over the training rows.

    Returns
    -------
    scores : DataFrame
        One row per epoch: :data:`TEST_ACCURACY`, :data:`TEST_LOG_LOSS` and,
        with ``full_loss``, :data:`FULL_LOSS`. The network keeps its final
        weights; the copies are dropped.
    """
    classifier = model[-1]
    preprocess = model[:-1]
    X_test = preprocess.transform(split.X_test)
    X_train = preprocess.transform(split.X_train) if full_loss else None
    network = classifier.net_.module_
    final = copy.deepcopy(network.state_dict())
    callback = dict(classifier.net_.callbacks_)[WEIGHTS_CALLBACK]
    rows = []
    for weights in callback.weights_:
        network.load_state_dict(weights)
        accuracy, log_loss = accuracy_and_log_loss(classifier, X_test, split.y_test)
        row = {TEST_ACCURACY: accuracy, TEST_LOG_LOSS: log_loss}
        if full_loss:
            row[FULL_LOSS] = accuracy_and_log_loss(classifier, X_train, split.y_train)[1]
        rows.append(row)
    network.load_state_dict(final)
    callback.weights_ = []
    return pd.DataFrame(rows)


def fit_curve(
    split: TrainTestSplit,
    method: str,
    parameters: dict,
    budget: Budget = SPEED_BUDGET,
    full_loss: bool = False,
) -> pd.DataFrame:
    """Fit one run on the training rows of ``split``; its learning curve.

    The classifier's ``random_state`` is the split's ``training_seed``; the
    ``budget`` builds the model, ``parameters`` then override the
    classifier's. The curve (:func:`~sk_reweight.harness._curves.learning_curve`)
    gets the columns of :func:`snapshot_scores`, measured outside the timed
    epochs; its last :data:`TEST_ACCURACY` is the fitted model's score.
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
    model[-1].set_params(**parameters, callbacks=[(WEIGHTS_CALLBACK, WeightsPerEpoch())])
    start = time.perf_counter()
    model.fit(split.X_train, split.y_train)
    curve = learning_curve(model[-1], time.perf_counter() - start)
    return pd.concat([curve, snapshot_scores(model, split, full_loss)], axis=1)


Fit = Callable[[TrainTestSplit, str, dict], pd.DataFrame]
"""``fit(split, method, parameters)``: one run's curve (:func:`fit_curve`, budget bound)."""


@dataclass(frozen=True)
class PlannedRun:
    """One run of a race: who trains, with which parameters and epochs budget."""

    name: str
    """:data:`BASELINE_NAME` or the method's label."""
    method: str
    """Key of :data:`~sk_reweight.harness._methods.METHODS` (``'erm'`` for uniform SGD)."""
    parameters: dict
    """Classifier parameters, ``max_epochs`` the budget."""
    budget: int
    """Epochs (RAIS: epochs equivalent) of the run's schedule."""


@dataclass(frozen=True)
class Race:
    """A method against uniform SGD at every budget of the equal-time frontier.

    Attributes
    ----------
    method : str
        The method's key in :data:`~sk_reweight.harness._methods.METHODS`.
    label : str
        Its name in the results.
    method_parameters, sgd_parameters : dict
        Classifier parameters of the method and of uniform SGD (ERM).
    budgets : tuple of int
        Epochs of the runs (:func:`budget_epochs`), increasing; the last is
        the full budget, whose runs give the time-to-target.
    """

    method: str
    label: str
    method_parameters: dict
    sgd_parameters: dict
    budgets: tuple[int, ...]

    def runs(self, seed: int) -> list[PlannedRun]:
        """The runs of seed ``seed`` in the order they train.

        Budget by budget, increasing; within a budget, uniform SGD first for
        an even seed and the method first for an odd one.
        """
        contenders = [
            (BASELINE_NAME, "erm", self.sgd_parameters),
            (self.label, self.method, self.method_parameters),
        ]
        if seed % 2:
            contenders.reverse()
        return [
            PlannedRun(name, method, {**parameters, "max_epochs": budget}, budget)
            for budget in self.budgets
            for name, method, parameters in contenders
        ]

    def warm_up(self, fit: Fit, split: TrainTestSplit) -> None:
        """Fit uniform SGD and the method untimed on a slice; nothing is recorded.

        :data:`WARM_UP_EPOCHS` epochs on the first :data:`WARM_UP_ROWS`
        training rows of ``split``, both contenders, results discarded.
        """
        rows = split.head(WARM_UP_ROWS)
        for run in self.runs(0)[:2]:
            fit(rows, run.method, {**run.parameters, "max_epochs": WARM_UP_EPOCHS})

    def run(self, fit: Fit, split: TrainTestSplit, seed: int) -> pd.DataFrame:
        """Every run of one seed: their curves, with columns ``method``, ``budget``, ``seed``."""
        return pd.concat(
            [
                fit(split, run.method, run.parameters).assign(
                    method=run.name, budget=run.budget, seed=seed
                )
                for run in self.runs(seed)
            ],
            ignore_index=True,
        )


HELD_OUT_TARGETS = {TEST_LOG_LOSS: False, TEST_ACCURACY: True}
"""Held-out curve columns with a time-to-target, and whether higher is better."""


def speed_summary(
    baseline: pd.DataFrame, method: pd.DataFrame, loss: str = "train_loss"
) -> dict[str, float]:
    """Compare one seed's two learning curves (:func:`~._curves.learning_curve`).

    Parameters
    ----------
    baseline, method : DataFrame
        Learning curves of uniform SGD and of the method.
    loss : str, default='train_loss'
        The curves' training-loss column compared: ``'train_loss'`` (the
        epoch's minibatch losses) or :data:`FULL_LOSS`.

    Returns
    -------
    summary : dict
        ``target_loss`` (the baseline's final training loss), the method's
        ``final_loss``, ``seconds_to_target`` and ``epochs_to_target`` (NaN if
        never reached), ``baseline_seconds`` (total), ``speedup`` (baseline
        seconds over the method's seconds to target) and ``overhead`` (median
        epoch duration of the method over the baseline's), with and without
        the first epoch. For each held-out column of :data:`HELD_OUT_TARGETS`
        in both curves, ``target_<column>`` (the baseline's final value) and
        ``seconds_to_<column>`` (when the method first reaches it; NaN if never).
    """
    target = float(baseline[loss].iloc[-1])
    seconds = time_to_target(method["seconds"], method[loss], target)
    baseline_seconds = float(baseline["seconds"].iloc[-1])
    method_epochs = np.diff(method["seconds"], prepend=0.0)
    baseline_epochs = np.diff(baseline["seconds"], prepend=0.0)
    summary = {
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
    for column, higher_is_better in HELD_OUT_TARGETS.items():
        if column in baseline and column in method:
            held_out_target = float(baseline[column].iloc[-1])
            summary[f"target_{column}"] = held_out_target
            summary[f"seconds_to_{column}"] = time_to_target(
                method["seconds"], method[column], held_out_target, higher_is_better
            )
    return summary


def race_results(curves: pd.DataFrame, loss: str = "train_loss") -> pd.DataFrame:
    """Every run of a race measured against uniform SGD: one row per seed, method and budget.

    Parameters
    ----------
    curves : DataFrame
        :meth:`Race.run`'s curves, of one or several seeds.
    loss : str, default='train_loss'
        The training-loss column compared (see :func:`speed_summary`).

    Returns
    -------
    results : DataFrame
        Columns ``seed``, ``method``, ``budget`` (epochs of the run's
        schedule), ``epochs_run``, ``epochs_equivalent`` (at the end),
        ``seconds`` (sum of the epochs' durations), ``test_accuracy``,
        ``test_log_loss`` (final), ``solve_seconds`` (total),
        ``mean_gain_ratio`` (over epochs), ``importance_sampled_epochs`` (RAIS's
        epochs that drew from its distribution: the others were uniform, before
        its first (PT) solve or by its speed governor) and the :func:`speed_summary` of the
        run against the same seed's uniform SGD with the full budget (whose
        own row has speed-up and overhead 1 when it reaches its final loss
        only at the end). Rows in the order the runs trained.
    """
    full_budget = curves["budget"].max()
    rows = []
    for (seed, name, budget), curve in curves.groupby(["seed", "method", "budget"], sort=False):
        of_seed = curves[curves["seed"] == seed]
        baseline = of_seed[
            (of_seed["method"] == BASELINE_NAME) & (of_seed["budget"] == full_budget)
        ]
        rows.append(
            {
                "seed": seed,
                "method": name,
                "budget": budget,
                "epochs_run": len(curve),
                "epochs_equivalent": float(curve["epochs_equivalent"].iloc[-1]),
                "seconds": float(curve["seconds"].iloc[-1]),
                "test_accuracy": float(curve[TEST_ACCURACY].iloc[-1]),
                "test_log_loss": float(curve[TEST_LOG_LOSS].iloc[-1]),
                "solve_seconds": float(curve["solve_seconds"].sum()),
                "mean_gain_ratio": float(curve["gain_ratio"].mean()),
                "importance_sampled_epochs": int(curve["importance_sampled"].sum()),
                **speed_summary(baseline, curve, loss),
            }
        )
    return pd.DataFrame(rows)


def equal_time(results: pd.DataFrame, label: str) -> pd.DataFrame:
    """Each of the method's runs against uniform SGD's equal-time frontier of the same seed.

    The frontier of seed ``s`` is uniform SGD's held-out accuracy against its
    training seconds, one point per budget
    (:func:`~sk_reweight.harness._curves.frontier_accuracy`).

    Parameters
    ----------
    results : DataFrame
        :func:`race_results`.
    label : str
        The method's name in ``results``.

    Returns
    -------
    points : DataFrame
        One row per seed and budget of the method: ``seed``, ``budget``,
        ``seconds``, ``test_accuracy``; ``uniform_accuracy``, the frontier at
        the method's seconds (clamped to the nearest end outside the
        frontier's time range); ``accuracy_difference_pp``, the method's
        accuracy minus it in percentage points ("accuracy at equal time");
        ``position`` (``'below'``, ``'inside'`` or ``'above'`` the frontier's
        time range); ``uniform_seconds_to_accuracy``, the seconds uniform SGD
        needs on its frontier to reach the method's accuracy, and
        ``uniform_reaches`` (False: no budget reached it, and the seconds are
        those of its longest run, a lower bound); ``uniform_time_ratio``,
        those seconds over the method's (above 1: the method is faster).
    """
    rows = []
    for seed, runs in results.groupby("seed", sort=False):
        uniform = runs[runs["method"] == BASELINE_NAME]
        frontier = (uniform["seconds"].to_numpy(), uniform["test_accuracy"].to_numpy())
        for point in runs[runs["method"] == label].itertuples():
            at_equal_time = frontier_accuracy(*frontier, point.seconds)
            to_accuracy = frontier_seconds_to_accuracy(*frontier, point.test_accuracy)
            reaches = not math.isnan(to_accuracy)
            to_accuracy = to_accuracy if reaches else float(frontier[0].max())
            rows.append(
                {
                    "seed": seed,
                    "budget": point.budget,
                    "seconds": point.seconds,
                    "test_accuracy": point.test_accuracy,
                    "uniform_accuracy": at_equal_time,
                    "accuracy_difference_pp": 100 * (point.test_accuracy - at_equal_time),
                    "position": frontier_position(frontier[0], point.seconds),
                    "uniform_seconds_to_accuracy": to_accuracy,
                    "uniform_reaches": reaches,
                    "uniform_time_ratio": to_accuracy / point.seconds,
                }
            )
    return pd.DataFrame(rows)


def too_short_to_time(results: pd.DataFrame) -> bool:
    """Whether a run of the full budget took under :data:`MIN_TIMED_SECONDS`."""
    full = results[results["budget"] == results["budget"].max()]
    return bool((full["seconds"] < MIN_TIMED_SECONDS).any())


def assessments(results: pd.DataFrame, points: pd.DataFrame, label: str) -> dict[str, str]:
    """The summary's verdicts: each measure of the method against uniform SGD, in words.

    Time-to-target ratios are the method's seconds to uniform SGD's final
    value over uniform SGD's total seconds (lower is better, 1 is a tie);
    ``points`` is :func:`equal_time`.
    """
    too_short = too_short_to_time(results)
    full = results[results["budget"] == results["budget"].max()]
    method = full[full["method"] == label].set_index("seed")
    baseline_seconds = method["baseline_seconds"]

    def ratio(values: pd.Series, reference: float = 1.0, higher: bool = False) -> str:
        return describe(assess(values, values.index, reference, higher, too_short), "x")

    return {
        "per-epoch time after the first (method / uniform SGD)": ratio(
            method["overhead_after_first"]
        ),
        "time to uniform SGD's final training loss": ratio(
            method["seconds_to_target"] / baseline_seconds
        ),
        "time to uniform SGD's final held-out log-loss": ratio(
            method["seconds_to_test_log_loss"] / baseline_seconds
        ),
        "time to uniform SGD's final held-out accuracy": ratio(
            method["seconds_to_test_accuracy"] / baseline_seconds
        ),
        "held-out accuracy at equal time (method - uniform SGD's frontier)": describe(
            assess(points["accuracy_difference_pp"], points["seed"], 0.0, True, too_short), " pp"
        ),
        "uniform SGD's time to the method's accuracy / the method's time": describe(
            assess(points["uniform_time_ratio"], points["seed"], 1.0, True, too_short), "x"
        ),
    }


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
    """Medians over seeds of :func:`race_results` with the full budget, one row per method.

    ``epochs-to-target`` and the ``time-to-target`` columns are the run's
    epochs and seconds to uniform SGD's final training loss, held-out
    log-loss and held-out accuracy over uniform SGD's total epochs and
    seconds, medians over the seeds that reached it (with the count of those
    that never did; "never" when most did not).
    """
    results = results[results["budget"] == results["budget"].max()]
    baseline = results[results["method"] == BASELINE_NAME].set_index("seed")
    rows = []
    for method, runs in results.groupby("method", sort=False):
        runs = runs.set_index("seed")
        rows.append(
            {
                "method": method,
                "final loss": f"{runs['final_loss'].median():.4f}",
                "test acc": f"{100 * runs['test_accuracy'].median():.2f}",
                "test log-loss": f"{runs['test_log_loss'].median():.4f}",
                "epochs run": f"{runs['epochs_run'].median():g}",
                "epochs equiv.": f"{runs['epochs_equivalent'].median():.2f}",
                "mean gain ratio": f"{runs['mean_gain_ratio'].median():.3f}",
                "importance-sampled epochs": f"{runs['importance_sampled_epochs'].median():g}",
                "PT seconds": f"{runs['solve_seconds'].median():.1f}",
                "seconds": f"{runs['seconds'].median():.1f}",
                "overhead/epoch (all, after 1st)": (
                    f"{runs['overhead'].median():.2f}x, "
                    f"{runs['overhead_after_first'].median():.2f}x"
                ),
                "epochs-to-target": _median_ratio(
                    runs["epochs_to_target"], baseline["epochs_run"]
                ),
                "time-to-target (train loss)": _median_ratio(
                    runs["seconds_to_target"], baseline["seconds"]
                ),
                "time-to-target (test log-loss)": _median_ratio(
                    runs["seconds_to_test_log_loss"], baseline["seconds"]
                ),
                "time-to-target (test acc)": _median_ratio(
                    runs["seconds_to_test_accuracy"], baseline["seconds"]
                ),
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
    """Race the method against uniform SGD for every seed; write CSV, Markdown, PNG to ``output``.

    A warm-up (:meth:`Race.warm_up`) runs first, on seed 0's split.

    Returns
    -------
    status : int
        0, or :data:`~sk_reweight.harness._bench.INTERRUPTED` after Ctrl-C, when the
        finished seeds are kept and summarised.
    """
    # The data first: a data set that cannot be loaded leaves no output directory behind.
    data = prepare_dataset(load_dataset(settings.dataset, settings.data_home), settings.max_rows)
    race = settings.race()
    output.mkdir(parents=True, exist_ok=True)
    for stale in ("curves.csv", "speed.csv", "frontier.csv", "speed.png", "frontier.png"):
        (output / stale).unlink(missing_ok=True)
    budget = settings.budget
    record = run_record(list(argv), {**asdict(settings), "output": str(output)}, budget.device)
    record["dataset"] = data.info
    record["training_seed"] = "1000 * seed (harness._evaluation.training_seed, fold 0)"
    record["budget_epochs"] = list(race.budgets)
    write_json(output / "config.json", record)

    curves: list[pd.DataFrame] = []
    progress = tqdm(total=len(race.runs(0)) * settings.seeds, desc="speed", unit="fit")

    def fit_and_count(split: TrainTestSplit, method: str, parameters: dict) -> pd.DataFrame:
        curve = fit(split, method, parameters)
        progress.update()
        return curve

    fit = partial(fit_curve, budget=budget, full_loss=settings.full_loss)
    try:
        with flushed_denormals():
            race.warm_up(fit, TrainTestSplit.of_dataset(data, 0, settings.flatten))
            for seed in range(settings.seeds):
                split = TrainTestSplit.of_dataset(data, seed, settings.flatten)
                curves.append(race.run(fit_and_count, split, seed))
    except KeyboardInterrupt:
        progress.close()
        status = f"interrupted after {len(curves)} of {settings.seeds} seeds"
        _finish_speed(output, settings, data, record, race, curves, status)
        print(f"\nInterrupted: kept {len(curves)} finished seed(s) in {output}")
        return INTERRUPTED
    progress.close()
    print(_finish_speed(output, settings, data, record, race, curves, "complete"))
    return 0


def _finish_speed(
    output: Path,
    settings: SpeedSettings,
    data: PreparedDataset,
    record: dict,
    race: Race,
    curves: list[pd.DataFrame],
    status: str,
) -> str:
    """Write the CSV files, plots and ``summary.md`` of the finished seeds; return the summary."""
    budget = settings.budget
    label = race.label
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
    parameters = "".join(
        f", {what} parameters {values}"
        for what, values in (
            ("shared", settings.shared_parameters),
            ("method", settings.method_parameters),
        )
        if values
    )
    parts = [
        f"# Speed: {label} vs {BASELINE_NAME} on {settings.dataset}",
        f"{budget.max_epochs} epochs, lr {budget.lr:g}, schedule {settings.lr_schedule}, "
        f"batch {budget.batch_size}, {network}, {settings.seeds} seed(s), "
        f"{data.info['n_rows']} rows (80 % train / 20 % held out per seed), device "
        f"{budget.device}, {torch.get_num_threads()} torch thread(s){parameters}. "
        f"Budgets of the equal-time frontier: {list(race.budgets)} epochs, each with its "
        "schedule compressed to it, for both methods; the order of the runs alternates "
        "across seeds, after an untimed warm-up. Held-out accuracy and log-loss after every "
        "epoch are measured on weight snapshots, outside the timed epochs. "
        f"Time-to-target: target {BASELINE_NAME}'s final value of the {loss}, of the held-out "
        f"log-loss and of the held-out accuracy (full budget); medians over seeds, over "
        f"{BASELINE_NAME}'s total epochs and seconds.",
        f"Status: {status}.",
    ]
    if curves:
        curves_frame = pd.concat(curves, ignore_index=True)
        curves_frame.to_csv(output / "curves.csv", index=False)
        speed = race_results(curves_frame, settings.loss)
        speed.to_csv(output / "speed.csv", index=False)
        points = equal_time(speed, label)
        points.to_csv(output / "frontier.csv", index=False)
        full = curves_frame[curves_frame["budget"] == race.budgets[-1]]
        title = f"{settings.dataset}: {label} vs {BASELINE_NAME}"
        plot_learning_curves(
            full, output / "speed.png", title, [settings.loss, TEST_LOG_LOSS, TEST_ACCURACY]
        )
        plot_frontier(speed, output / "frontier.png", f"{title}, equal-time frontier")
        outside = points[points["position"] != "inside"]
        unreached = int((~points["uniform_reaches"]).sum())
        parts += [
            f"## Full budget ({race.budgets[-1]} epochs)",
            markdown_table(method_table(speed)),
            "## Verdict",
            "Medians over seeds (equal time: over budgets and seeds); in parentheses the "
            "range, the points on the method's side, and the seeds' spread (standard "
            "deviation of the per-seed medians). **within noise**: the median differs from "
            "no difference (1x, 0 pp) by at most the seeds' spread; **within noise (too short "
            f"to time)**: a full-budget run took under {MIN_TIMED_SECONDS:g} s.",
            "\n".join(
                f"- {measure}: {text}"
                for measure, text in assessments(speed, points, label).items()
            ),
            "## Equal-time frontier",
            f"{BASELINE_NAME}'s held-out accuracy against its training seconds, one point per "
            "budget, interpolated linearly at each of the method's runs (`frontier.png`). "
            f"{len(outside)} of {len(points)} method points lie outside the frontier's time "
            "range and are compared with its nearest end (below: with its shortest run, which "
            "had more time, a comparison that favours uniform SGD; above: with its longest run, "
            "which had less time, a comparison that favours the method); for "
            f"{unreached} point(s) no budget of {BASELINE_NAME} reached the method's accuracy "
            "(its time is that of its longest run, a lower bound).",
            markdown_table(
                points.assign(
                    seconds=points["seconds"].round(2),
                    test_accuracy=(100 * points["test_accuracy"]).round(2),
                    uniform_accuracy=(100 * points["uniform_accuracy"]).round(2),
                    accuracy_difference_pp=points["accuracy_difference_pp"].round(2),
                    uniform_seconds_to_accuracy=points["uniform_seconds_to_accuracy"].round(2),
                    uniform_time_ratio=points["uniform_time_ratio"].round(2),
                )
            ),
        ]
    report = "\n\n".join(parts)
    (output / "summary.md").write_text(report + "\n")
    record["status"] = status
    write_json(output / "config.json", record)
    return report
