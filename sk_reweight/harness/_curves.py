"""Learning curves: training loss against epochs, epochs equivalent and wall-clock time.

The package's classifiers and plain skorch record a per-epoch ``history``;
scikit-learn's MLPClassifier records only ``loss_curve_``. This module turns
either into one table, and measures how long one curve takes to reach a loss.
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
        the others) and ``gain_ratio`` (RAIS's learning-rate factor, the
        epoch's mean; 1 for the others). Empty for a classifier without a loss
        curve (gradient boosting).
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
        }
    )


def time_to_target(x: ArrayLike, loss: ArrayLike, target: float) -> float:
    """First ``x`` at which a loss curve reaches ``target``, interpolated linearly.

    Parameters
    ----------
    x : array-like of shape (n_points,)
        Increasing positions of the curve's points (seconds, epochs, ...).
    loss : array-like of shape (n_points,)
        Loss at each point.
    target : float
        Loss to reach.

    Returns
    -------
    x_target : float
        ``x[0]`` if the first point is already at or below ``target``; the
        linear interpolation between the last point above and the first point
        at or below it; NaN if the curve never reaches it.
    """
    x, loss = np.asarray(x, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    reached = np.flatnonzero(loss <= target)
    if reached.size == 0:
        return float("nan")
    i = reached[0]
    if i == 0:
        return float(x[0])
    fraction = (loss[i - 1] - target) / (loss[i - 1] - loss[i])
    return float(x[i - 1] + fraction * (x[i] - x[i - 1]))
