"""What a race's learning curves come to: time-to-target and the equal-time frontier.

- **time-to-target** (the RAIS paper's measure, Johnson & Guestrin, 2018): the
  seconds (and epochs) a run needs to reach uniform SGD's *final* training
  loss, held-out log-loss and held-out accuracy, linearly interpolated between
  epochs (:func:`~sk_reweight.harness._curves.time_to_target`), over uniform
  SGD's total seconds; the per-epoch overhead (median epoch duration over
  uniform SGD's, with and without the first epoch) (:func:`race_results`).
- **the equal-time frontier** (:func:`equal_time`): uniform SGD trained with
  budgets of fewer epochs (by default 1/4, 1/2, 3/4 and all of them, each with
  its schedule compressed to its budget, ``max_epochs`` = the budget) gives
  held-out accuracy against training seconds; the method runs with the same
  budgets (points paired by budget and seed), and each of its points is
  compared with uniform SGD's accuracy interpolated at the method's own
  seconds, "accuracy at equal time"
  (:func:`~sk_reweight.harness._curves.frontier_accuracy`; a point outside
  the frontier's time range is compared with its nearest end and flagged),
  and by the seconds uniform SGD needs on its frontier to reach the method's
  accuracy, over the method's seconds. This subsumes the budgeted-training
  baseline (uniform SGD given the method's number of epochs): the frontier
  compares at equal *time*, not at equal epochs.

:func:`assessments` puts each measure in words ("within noise" where the seeds
disagree), :func:`method_table` the medians over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._curves import (
    frontier_accuracy,
    frontier_position,
    frontier_seconds_to_accuracy,
    time_to_target,
)
from ._race import BASELINE_NAME, TEST_ACCURACY, TEST_LOG_LOSS
from ._verdicts import assess, describe

MIN_TIMED_SECONDS = 0.5
"""A run of the full budget shorter than this (sum of its epochs' durations) is too short to time.

Timer resolution is not the issue; below half a second, scheduling, caches and
the machine's other work move a run's time by tens of percent, so ratios of
such times say nothing.
"""


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
        epoch's minibatch losses) or :data:`~sk_reweight.harness._race.FULL_LOSS`.

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
        :meth:`~sk_reweight.harness._race.Race.run`'s curves, of one or several seeds.
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
