"""A fit as a plan: what one call of ``fit`` or ``partial_fit`` trains, decided before any data.

:func:`plan_fit` reads a classifier's parameters once, resolves them (the
optimizer class, the learning-rate schedule, the stopping rule, the device, a
fresh minibatch policy) and returns a frozen :class:`FitPlan`. The fit then
only reads the plan: no hyperparameter is overwritten for a fit, and
:meth:`FitPlan.net_settings` gives the training net its settings whether the
net is new or a fitted one trained on (``warm_start``, ``partial_fit``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.utils import check_random_state
from skorch.callbacks import LRScheduler

from ._convergence import StoppingRule
from ._devices import resolve_device
from ._modules import hidden_widths
from ._output import EpochProgressBar
from ._policies import MinibatchPolicy
from ._schedules import LRSchedule, constant_schedule, resolve_lr_schedule

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
}
"""The optimizers named by the ``optimizer`` parameter."""

CLOSURE_OPTIMIZERS = (torch.optim.LBFGS,)
"""Optimizers that re-evaluate the loss through a closure: one training step is one forward
and backward pass under the policy, so they cannot train here."""


@dataclass(frozen=True)
class StoppingSettings:
    """What the :class:`~sk_reweight._convergence.StoppingRule` of a fit watches, and how.

    Attributes
    ----------
    monitor : {'train_loss', 'valid_loss'}
        The loss watched: the validation loss with ``early_stopping``.
    patience : int or None
        ``n_iter_no_change``, in the policy's progress; ``None`` stops nothing.
    threshold : float
        ``tol``.
    load_best : bool
        Restore the best epoch's weights at the end (``early_stopping``).
    """

    monitor: str
    patience: int | None
    threshold: float
    load_best: bool

    @property
    def validates(self) -> bool:
        """Whether the fit holds out a validation split (``early_stopping``) for the rule."""
        return self.monitor == "valid_loss"

    def as_parameters(self) -> dict[str, Any]:
        """The settings as :class:`~sk_reweight._convergence.StoppingRule`'s parameters."""
        return {
            "monitor": self.monitor,
            "patience": self.patience,
            "threshold": self.threshold,
            "load_best": self.load_best,
        }


@dataclass(frozen=True)
class FitPlan:
    """One fit, resolved from the classifier's parameters before its data are read.

    Attributes
    ----------
    warm : bool
        Train the fitted ``net_`` on (``warm_start`` or a later ``partial_fit``)
        instead of a fresh network.
    incremental : bool
        A ``partial_fit`` call: one epoch at the constant learning rate, no
        validation split, no stopping rule, every class named in ``classes``.
    classes : ndarray or None
        The classes of a first ``partial_fit``; ``None``: those of ``y``.
    policy : MinibatchPolicy
        A fresh policy for this fit.
    seed : int
        The fit's seed, from ``random_state`` and the epochs trained before.
    max_epochs : int
        The epochs (in the policy's progress) this fit may train.
    lr_schedule : callable
        The learning-rate multiplier as a function of the policy's progress.
    lr, batch_size : float, int
        The base learning rate and the minibatch size.
    augmentation : {None, 'crop', 'crop_flip'}
        The augmentation of training minibatches.
    validation_fraction : float or None
        The share held out for early stopping; ``None``: no validation split.
    stopping : StoppingSettings
        The stopping rule.
    device : torch.device
        Where a fresh network trains.
    optimizer : type
        The optimizer class, with ``optimizer_kwargs`` (``weight_decay`` and,
        for SGD, ``momentum``).
    hidden_layer_sizes : tuple of int
        The widths of the default network's hidden layers.
    callbacks : list
        The fit's callbacks for a fresh net: the progress bar (``verbose=2``),
        the stopping rule and deep copies of the user's callbacks; empty for a
        warm fit, whose net keeps the callbacks of its first fit.
    """

    warm: bool
    incremental: bool
    classes: NDArray | None
    policy: MinibatchPolicy
    seed: int
    max_epochs: int
    lr_schedule: LRSchedule
    lr: float
    batch_size: int
    augmentation: str | None
    validation_fraction: float | None
    stopping: StoppingSettings
    device: torch.device
    optimizer: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    hidden_layer_sizes: tuple[int, ...]
    callbacks: list

    def net_settings(self, train_split: Any) -> dict[str, Any]:
        """The settings of the training net that change from fit to fit.

        A fresh :class:`~sk_reweight._engine.ReweightingNet` receives them as
        parameters, a fitted one trained on has them assigned: either way the
        same values.
        """
        return {
            "policy": self.policy,
            "seed": self.seed,
            "lr_schedule": self.lr_schedule,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "augmentation": self.augmentation,
            "train_split": train_split,
        }


def plan_fit(
    estimator: Any,
    policy: MinibatchPolicy,
    *,
    warm: bool,
    incremental: bool = False,
    classes: Any = None,
    device: torch.device | None = None,
    seed: int | None = None,
) -> FitPlan:
    """The plan of a fit of ``estimator`` under ``policy`` (its parameters already validated).

    ``warm``: the fit trains the fitted ``net_`` on; ``incremental``: it is a
    ``partial_fit`` call (one epoch, constant learning rate, no split, no
    stopping rule). ``device`` and ``seed``, when given (a saved net being
    restored), replace the ``device`` parameter and the draw from
    ``random_state``. Raises :class:`TypeError` for an optimizer that is not
    a :class:`torch.optim.Optimizer`, :class:`ValueError` for a closure
    optimizer, a skorch :class:`~skorch.callbacks.LRScheduler` callback, hidden
    layer sizes that are not positive integers or a device this machine lacks.
    """
    if seed is None:
        base_seed = check_random_state(estimator.random_state).randint(np.iinfo(np.int32).max)
        epochs_done = estimator.n_iter_ if warm else 0
        seed = int(np.random.SeedSequence([base_seed, epochs_done]).generate_state(1)[0] >> 1)
    stopping = stopping_settings(estimator, incremental)
    optimizer = optimizer_class(estimator.optimizer)
    return FitPlan(
        warm=warm,
        incremental=incremental,
        classes=None if classes is None else np.unique(classes),
        policy=policy,
        seed=seed,
        max_epochs=1 if incremental else estimator.max_epochs,
        lr_schedule=(
            constant_schedule
            if incremental
            else resolve_lr_schedule(estimator.lr_schedule, estimator.max_epochs)
        ),
        lr=estimator.lr,
        batch_size=estimator.batch_size,
        augmentation=estimator.augmentation,
        validation_fraction=estimator.validation_fraction if stopping.validates else None,
        stopping=stopping,
        device=resolve_device(estimator.device) if device is None else device,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs(estimator, optimizer),
        hidden_layer_sizes=hidden_widths(estimator.hidden_layer_sizes),
        callbacks=[] if warm else fit_callbacks(estimator, stopping),
    )


def stopping_settings(estimator: Any, incremental: bool = False) -> StoppingSettings:
    """The stopping rule of a fit: see the ``n_iter_no_change`` parameter.

    It watches the validation loss with ``early_stopping`` (its best epoch
    restored), else the training loss. It stops nothing (``patience=None``)
    when ``n_iter_no_change`` is None, in a ``partial_fit`` call (one epoch),
    or when it watches the training loss under a learning-rate schedule: a
    schedule is a plan over ``max_epochs`` that the user chose, and runs to
    its end.
    """
    early_stopping = estimator.early_stopping and not incremental
    stops = (
        not incremental
        and estimator.n_iter_no_change is not None
        and (early_stopping or estimator.lr_schedule is None)
    )
    return StoppingSettings(
        monitor="valid_loss" if early_stopping else "train_loss",
        patience=estimator.n_iter_no_change if stops else None,
        threshold=estimator.tol,
        load_best=early_stopping,
    )


def optimizer_class(optimizer: Any) -> type[torch.optim.Optimizer]:
    """The class the ``optimizer`` parameter names."""
    resolved = OPTIMIZERS.get(optimizer, optimizer) if isinstance(optimizer, str) else optimizer
    if not (isinstance(resolved, type) and issubclass(resolved, torch.optim.Optimizer)):
        raise TypeError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
            f"torch.optim.Optimizer; got {optimizer!r}."
        )
    if issubclass(resolved, CLOSURE_OPTIMIZERS):
        raise ValueError(
            f"optimizer={resolved.__name__} re-evaluates the loss through a closure, which a "
            "training step under a minibatch policy (one draw, one forward and backward pass) "
            "does not offer; use 'sgd', 'adam', 'adamw' or 'adagrad'."
        )
    return resolved


def optimizer_kwargs(estimator: Any, optimizer: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """``optimizer``'s parameters besides ``lr``, as skorch's ``optimizer__`` arguments."""
    kwargs: dict[str, Any] = {"optimizer__weight_decay": estimator.weight_decay}
    if optimizer is torch.optim.SGD:
        kwargs["optimizer__momentum"] = estimator.momentum
    return kwargs


def _silent(*args: Any, **kwargs: Any) -> None:
    """Message sink of the stopping rule when ``verbose=0``."""


def fit_callbacks(estimator: Any, stopping: StoppingSettings) -> list:
    """The callbacks of a fresh net: progress bar, stopping rule, copies of the user's."""
    callbacks: list = []
    if estimator.verbose >= 2:  # first: the bar is erased before anything else prints
        callbacks.append(("progress_bar", EpochProgressBar()))
    sink = print if estimator.verbose else _silent
    callbacks.append(("stopping_rule", StoppingRule(**stopping.as_parameters(), sink=sink)))
    user_callbacks = copy.deepcopy(list(estimator.callbacks or []))
    for entry in user_callbacks:
        callback = entry[1] if isinstance(entry, tuple) else entry
        if isinstance(callback, LRScheduler):
            raise ValueError(
                f"{type(estimator).__name__} sets the learning rate at every step from its "
                "lr_schedule parameter (None, 'cosine', 'step' or a callable of the "
                "fractional epoch); pass the schedule as lr_schedule instead of a skorch "
                "LRScheduler callback."
            )
    return callbacks + user_callbacks
