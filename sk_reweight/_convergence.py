"""When training stops, and whether it went well: the stopping rule and the divergence check.

:class:`StoppingRule` is the skorch callback behind ``n_iter_no_change`` and
``tol``: it ends training when the monitored loss (the training loss, or with
``early_stopping`` the validation loss) has not improved by ``tol`` for
``n_iter_no_change`` epochs of training progress, as
:class:`sklearn.neural_network.MLPClassifier` does. The engine records in
``history_`` why each fit ended (:data:`STOP_REASON`), and the classifiers warn
with :class:`~sklearn.exceptions.ConvergenceWarning` when ``max_epochs`` came
first, or when :func:`divergence_finding` finds that the training loss
exploded.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from skorch.callbacks import EarlyStopping

STOP_REASON = "stop_reason"
"""The ``history_`` key, on the last epoch of every fit, that says why training ended."""

MAX_EPOCHS = "max_epochs"
"""Stop reason: training reached ``max_epochs`` (RAIS: epochs equivalent)."""

NO_IMPROVEMENT = "no_improvement"
"""Stop reason: the monitored loss did not improve by ``tol`` for ``n_iter_no_change`` epochs."""

CALLBACK = "callback"
"""Stop reason: a user's callback ended training (e.g. skorch's ``EarlyStopping``)."""

FAR_ABOVE_CONSTANT = 10.0
"""A training loss above this many times ``log(n_classes)`` counts as diverged: it is far worse
than predicting every class as equally likely, which costs ``log(n_classes)``."""


class StoppingRule(EarlyStopping):
    """skorch's :class:`~skorch.callbacks.EarlyStopping` with its patience in epochs of progress.

    Training ends once ``monitor`` has not decreased by more than
    ``threshold`` (absolute) below its best value for ``patience`` epochs of
    the policy's progress: plain epochs for ERM and RGD, *epochs
    equivalent* for RAIS, whose epochs are worth one or more uniform epochs
    (the same clock as its ``max_epochs``). The best epoch is tracked even
    with ``patience=None``, which never stops, so that ``load_best`` still
    restores it at the end of training. The epoch that stops training
    records :data:`NO_IMPROVEMENT` under :data:`STOP_REASON` in the history.

    Parameters
    ----------
    monitor : str, default='train_loss'
        The history key watched; lower is better.
    patience : float > 0 or None, default=10
        Epochs of progress without improvement that end training; ``None``
        never ends it.
    threshold : float >= 0, default=1e-4
        The smallest decrease that counts as an improvement.
    load_best : bool, default=False
        Restore the module's weights of the best epoch when training ends.
    sink : callable, default=print
        Where the stop is announced (when the net is verbose).
    """

    def __init__(
        self,
        monitor: str = "train_loss",
        patience: float | None = 10,
        threshold: float = 1e-4,
        load_best: bool = False,
        sink: Any = print,
    ):
        super().__init__(
            monitor=monitor,
            patience=patience,
            threshold=threshold,
            threshold_mode="abs",
            load_best=load_best,
            sink=sink,
        )

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        super().on_train_begin(net, **kwargs)
        self.best_progress_ = 0.0

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        score = net.history[-1, self.monitor]
        progress = net.progress
        if score < self.dynamic_threshold_:  # lower is better, by at least ``threshold``
            self.dynamic_threshold_ = score - self.threshold
            self.best_epoch_ = net.history[-1, "epoch"]
            self.best_progress_ = progress
            if self.load_best:
                self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())
        self.misses_ = progress - self.best_progress_
        if self.patience is not None and self.misses_ >= self.patience:
            net.history.record(STOP_REASON, NO_IMPROVEMENT)
            self._sink(
                f"Stopping since {self.monitor} has not improved by {self.threshold:g} in the "
                f"last {self.misses_:g} epochs.",
                verbose=net.verbose,
            )
            raise KeyboardInterrupt  # skorch's way to end training


def divergence_finding(losses: Sequence[float], epochs: Sequence[int], n_classes: int) -> str:
    """What shows that training diverged, in words; ``''`` when nothing does.

    Two signs, both measured against ``log(n_classes)``, the cross-entropy of
    predicting every class as equally likely (a network that learnt nothing
    useful does about that well):

    - a training loss above :data:`FAR_ABOVE_CONSTANT` times it, at any epoch
      (exploding weights, or inputs so large that every logit saturates);
    - a last training loss above it *and* above the first epoch's: training
      made the network worse than where it started.

    Parameters
    ----------
    losses : sequence of float
        The training loss of every epoch of one fit, finite.
    epochs : sequence of int
        Their epoch numbers, as ``history_`` counts them.
    n_classes : int
        Number of classes (at least 2).

    Returns
    -------
    finding : str
        A sentence fragment, e.g. ``'the training loss reached 4.1e+18 in
        epoch 2'``, or ``''``.
    """
    constant = math.log(n_classes)
    worst = max(range(len(losses)), key=losses.__getitem__)
    if losses[worst] > FAR_ABOVE_CONSTANT * constant:
        return (
            f"the training loss reached {losses[worst]:.3g} in epoch {epochs[worst]}, more "
            f"than {FAR_ABOVE_CONSTANT:g} x log(n_classes) = {FAR_ABOVE_CONSTANT * constant:.3g}"
            " (predicting every class as equally likely costs log(n_classes))"
        )
    if losses[-1] > max(losses[0], constant):
        return (
            f"the training loss ended at {losses[-1]:.3g}, above its first epoch's "
            f"{losses[0]:.3g} and above log(n_classes) = {constant:.3g}, the loss of "
            "predicting every class as equally likely"
        )
    return ""


def not_converged_message(
    classifier: str,
    epochs: Sequence[dict[str, Any]],
    n_classes: int,
    lr: float,
    stopping: Any,
    max_epochs: int,
    progress_unit: str,
) -> str:
    """The :class:`~sklearn.exceptions.ConvergenceWarning` a fit ends with, or ``""``.

    ``epochs`` are the history records of this fit; ``stopping`` its
    :class:`~sk_reweight._fit_plan.StoppingSettings`. A diverged training
    loss (:func:`divergence_finding`) is named with its likely causes and
    fixes; otherwise a fit whose stopping rule was active but that ended at
    ``max_epochs`` is announced, as
    :class:`~sklearn.neural_network.MLPClassifier` does.
    """
    if not epochs:
        return ""
    finding = divergence_finding(
        [epoch["train_loss"] for epoch in epochs], [epoch["epoch"] for epoch in epochs], n_classes
    )
    if finding:
        return (
            f"{classifier} diverged: {finding}. The usual causes are features on very different "
            f"or very large scales (unscaled inputs) and a learning rate too large for the "
            f"optimizer (lr={lr:g}). Scale the features, e.g. "
            f"make_pipeline(StandardScaler(), {classifier}(...)), and/or lower lr."
        )
    if stopping.patience is None or epochs[-1].get(STOP_REASON) != MAX_EPOCHS:
        return ""
    watched = "validation loss" if stopping.validates else "training loss"
    return (
        f"{classifier} reached max_epochs={max_epochs} while its {watched} was still "
        f"improving (by more than tol={stopping.threshold:g} within n_iter_no_change="
        f"{stopping.patience} {progress_unit}): the fit may not have converged. Raise "
        "max_epochs to train longer, or pass n_iter_no_change=None to train exactly "
        "max_epochs epochs without this warning."
    )
