"""Learning curves: training loss against epochs, epochs equivalent and wall-clock time.

The package's classifiers and plain skorch record a per-epoch ``history``;
scikit-learn's MLPClassifier records only ``loss_curve_``. This module turns
either into one table, measures how long one curve takes to reach a target,
and compares a run with the *equal-time frontier* of uniform SGD: the
held-out accuracy uniform SGD reaches against its training seconds when it is
given budgets of fewer epochs (its schedule compressed to each).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

CURVE_COLUMNS = [
    "epoch",
    "epochs_equivalent",
    "train_loss",
    "seconds",
    "solve_seconds",
    "gain_ratio",
    "importance_sampled",
]


def learning_curve(classifier: BaseEstimator, fit_seconds: float) -> pd.DataFrame:
    """Per-epoch training loss of a fitted classifier.

    Parameters
    ----------
    classifier : estimator
        A fitted classifier (not a pipeline).
    fit_seconds : float
        Its training time, spread evenly over the epochs of a classifier that
        records no per-epoch durations (MLPClassifier).

    Returns
    -------
    curve : DataFrame
        Columns ``epoch`` (1-based), ``epochs_equivalent`` (RAIS's effective
        progress; the epoch for uniform sampling), ``train_loss`` and
        ``seconds`` (cumulative training time at the end of the epoch),
        ``solve_seconds`` (RAIS's time in (PT) solves during the epoch; 0 for
        the others), ``gain_ratio`` (RAIS's learning-rate factor, the
        epoch's mean; 1 for the others) and ``importance_sampled`` (whether
        RAIS drew any of the epoch's minibatches from its distribution rather
        than uniformly; False for the others). Empty for a classifier without
        a loss curve (gradient boosting).
    """
    # The package's classifiers expose ``history_``; a plain skorch net, ``history``.
    history = getattr(classifier, "history_", getattr(classifier, "history", None))
    if history is not None and len(history):
        return pd.DataFrame(
            {
                "epoch": [float(record["epoch"]) for record in history],
                "epochs_equivalent": [
                    float(record.get("epochs_equivalent", record["epoch"])) for record in history
                ],
                "train_loss": [record["train_loss"] for record in history],
                "seconds": np.cumsum([record["dur"] for record in history]),
                "solve_seconds": [record.get("solve_seconds", 0.0) for record in history],
                "gain_ratio": [record.get("gain_ratio", 1.0) for record in history],
                "importance_sampled": [
                    record.get("sampling") == "importance" for record in history
                ],
            }
        )
    losses = getattr(classifier, "loss_curve_", None)
    if losses is None:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    epoch = np.arange(1, len(losses) + 1, dtype=np.float64)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "epochs_equivalent": epoch,
            "train_loss": losses,
            "seconds": fit_seconds * epoch / len(losses),
            "solve_seconds": 0.0,
            "gain_ratio": 1.0,
            "importance_sampled": False,
        }
    )


def time_to_target(
    x: ArrayLike, loss: ArrayLike, target: float, higher_is_better: bool = False
) -> float:
    """First ``x`` at which a loss curve reaches ``target``, interpolated linearly.

    Parameters
    ----------
    x : array-like of shape (n_points,)
        Increasing positions of the curve's points (seconds, epochs, ...).
    loss : array-like of shape (n_points,)
        Loss at each point.
    target : float
        Loss to reach.
    higher_is_better : bool, default=False
        The curve is a score (accuracy) that reaches ``target`` from below;
        the same rule is applied to ``-loss`` and ``-target``.

    Returns
    -------
    x_target : float
        ``x[0]`` if the first point is already at or below ``target``; the
        linear interpolation between the last point above and the first point
        at or below it; NaN if the curve never reaches it.
    """
    x, loss = np.asarray(x, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if higher_is_better:
        loss, target = -loss, -target
    reached = np.flatnonzero(loss <= target)
    if reached.size == 0:
        return float("nan")
    i = reached[0]
    if i == 0:
        return float(x[0])
    fraction = (loss[i - 1] - target) / (loss[i - 1] - loss[i])
    return float(x[i - 1] + fraction * (x[i] - x[i - 1]))


FRONTIER_POSITIONS = ("below", "inside", "above")
"""Where a run's seconds fall relative to the frontier's time range (:func:`frontier_position`)."""


def _sorted_frontier(seconds: ArrayLike, accuracy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    seconds, accuracy = np.asarray(seconds, dtype=np.float64), np.asarray(accuracy, np.float64)
    if seconds.ndim != 1 or seconds.shape != accuracy.shape or seconds.size == 0:
        raise ValueError(
            "a frontier needs one accuracy per run's seconds (two 1-D arrays of one length, "
            f"not empty); got shapes {seconds.shape} and {accuracy.shape}"
        )
    order = np.argsort(seconds, kind="stable")
    return seconds[order], accuracy[order]


def frontier_accuracy(seconds: ArrayLike, accuracy: ArrayLike, at_seconds: float) -> float:
    r"""Uniform SGD's held-out accuracy at ``at_seconds`` on its equal-time frontier.

    The frontier is the piecewise-linear curve through the points
    ``(seconds[k], accuracy[k])``, one per training budget (uniform SGD run
    with its schedule compressed to ``k`` of the epochs), sorted by seconds.
    Between two points the accuracy is interpolated linearly in seconds,

    .. math:: a(t) = a_k + \frac{t - t_k}{t_{k+1} - t_k} (a_{k+1} - a_k),
              \quad t_k \le t \le t_{k+1};

    outside ``[t_min, t_max]`` it is clamped to the nearest end's accuracy
    (:func:`frontier_position` says when).

    Parameters
    ----------
    seconds, accuracy : array-like of shape (n_budgets,)
        Training seconds and held-out accuracy of uniform SGD's runs.
    at_seconds : float
        Where to read the frontier (another run's training seconds).

    Returns
    -------
    accuracy : float
    """
    seconds, accuracy = _sorted_frontier(seconds, accuracy)
    return float(np.interp(at_seconds, seconds, accuracy))


def frontier_position(seconds: ArrayLike, at_seconds: float) -> str:
    """``'below'``, ``'inside'`` or ``'above'`` the frontier's time range ``[t_min, t_max]``.

    Below, the frontier's value (its shortest run's accuracy) had more time
    than the compared run: the comparison is conservative for that run.
    Above, it had less: uniform SGD might have done better with more epochs,
    and the comparison favours the run.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    if at_seconds < seconds.min():
        return "below"
    if at_seconds > seconds.max():
        return "above"
    return "inside"


def frontier_seconds_to_accuracy(
    seconds: ArrayLike, accuracy: ArrayLike, target_accuracy: float
) -> float:
    """Seconds uniform SGD needs, on its frontier, to reach ``target_accuracy``.

    :func:`time_to_target` of the frontier (sorted by seconds) with
    ``higher_is_better``: the first crossing of ``target_accuracy``,
    interpolated linearly; the shortest run's seconds when that run already
    reaches it (an upper bound); NaN when no budget reaches it.
    """
    seconds, accuracy = _sorted_frontier(seconds, accuracy)
    return time_to_target(seconds, accuracy, target_accuracy, higher_is_better=True)
