"""A race: a method against uniform SGD on the same data, on a clock.

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
nothing. Both contenders run at every budget of the equal-time frontier
(:func:`budget_epochs`); what the curves come to is
:mod:`~sk_reweight.harness._race_analysis`'s.

Before anything is timed, a warm-up fits every contender for a few epochs on a
slice of the training rows and is discarded (the process's first fit pays
one-off costs: imports, allocator, kernels); within each seed the order of the
runs alternates (seed 0: uniform SGD first, seed 1: the method first, ...), so
that neither always runs on a warmer or cooler machine. This module is what
``sk-reweight speed`` and the demo share; it draws no plot.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback

from ._curves import learning_curve
from ._methods import Budget, make_model
from ._prepared_data import TrainTestSplit

BASELINE_NAME = "uniform SGD"
FULL_LOSS = "full_train_loss"
"""Curve column of the mean cross-entropy over the whole training set after each epoch."""
TEST_ACCURACY = "test_accuracy"
"""Curve column of the held-out accuracy after each epoch."""
TEST_LOG_LOSS = "test_log_loss"
"""Curve column of the held-out log-loss (mean cross-entropy) after each epoch."""

SPEED_BUDGET = Budget(lr=0.05, batch_size=128, max_epochs=20)
"""Default network and schedule of ``speed``: SGD-sized learning rate, 20 epochs."""

DEFAULT_BUDGETS = (0.25, 0.5, 0.75, 1.0)
"""Fractions of the epochs given to the runs of the equal-time frontier."""

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
