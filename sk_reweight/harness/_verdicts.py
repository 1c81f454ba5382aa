"""Verdicts: a measure of a method against a reference, summarised over budgets and seeds.

A difference is claimed only when it exceeds the seeds' spread (the standard
deviation over seeds of each seed's median) and the runs were long enough to
time; otherwise the verdict says "within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Assessment:
    """One measure of the method against uniform SGD, over budgets and seeds.

    ``median``, ``low`` and ``high`` are over every finite value (all budgets
    and seeds); ``ahead`` counts the values on the method's side of the
    reference; ``spread`` is the seeds' spread, the standard deviation
    (``ddof=1``) over seeds of each seed's median; ``never`` counts the values
    that are NaN (a target never reached). ``verdict`` is one of:

    - ``'never reached'``: more than half of the values are NaN;
    - ``'within noise (too short to time)'``: the caller says the runs were
      too short to time (``speed``: a run of the full budget, of either
      contender and any seed, took under
      :data:`~sk_reweight.harness._speed.MIN_TIMED_SECONDS`), so no
      difference in time is claimed (every measure here involves time);
    - ``'one seed: no spread'``: fewer than two seeds have a value;
    - ``'within noise'``: ``|median - reference|`` is at most ``spread``;
    - ``'ahead'`` or ``'behind'``: the method is better, or worse, than the
      reference by more than the seeds' spread.
    """

    median: float
    low: float
    high: float
    ahead: int
    count: int
    spread: float
    never: int
    verdict: str


def assess(
    values: ArrayLike,
    seeds: ArrayLike,
    reference: float,
    higher_is_better: bool,
    too_short: bool,
) -> Assessment:
    """Summarise per-point values of a measure into an :class:`Assessment`.

    Parameters
    ----------
    values : array-like of shape (n_points,)
        The measure per point (one per seed, or per seed and budget); NaN:
        the target was never reached.
    seeds : array-like of shape (n_points,)
        Each point's seed.
    reference : float
        The value of no difference (0 for a difference, 1 for a ratio).
    higher_is_better : bool
        Direction of the measure, from the method's side.
    too_short : bool
        The runs are too short to time (see :class:`Assessment`).
    """
    frame = pd.DataFrame({"value": np.asarray(values, dtype=np.float64), "seed": seeds})
    finite = frame[np.isfinite(frame["value"])]
    never = len(frame) - len(finite)
    per_seed = finite.groupby("seed")["value"].median()
    spread = float(per_seed.std(ddof=1)) if len(per_seed) >= 2 else math.nan
    median = float(finite["value"].median()) if len(finite) else math.nan
    sign = 1 if higher_is_better else -1
    if never > len(frame) / 2:
        verdict = "never reached"
    elif too_short:
        verdict = "within noise (too short to time)"
    elif len(per_seed) < 2:
        verdict = "one seed: no spread"
    elif abs(median - reference) <= spread:
        verdict = "within noise"
    else:
        verdict = "ahead" if sign * (median - reference) > 0 else "behind"
    return Assessment(
        median=median,
        low=float(finite["value"].min()) if len(finite) else math.nan,
        high=float(finite["value"].max()) if len(finite) else math.nan,
        ahead=int((sign * (finite["value"] - reference) > 0).sum()),
        count=len(frame),
        spread=spread,
        never=never,
        verdict=verdict,
    )


def describe(assessment: Assessment, unit: str) -> str:
    """``assessment`` in words, e.g. ``'0.47x (0.45 to 0.50; 3 of 3 ahead; seeds' spread ...'``.

    ``unit`` is ``'x'`` (a ratio) or ``' pp'`` (percentage points, signed).
    """
    a = assessment
    number = "{:+.2f}" if unit == " pp" else "{:.2f}"

    def show(value: float) -> str:
        return number.format(value) + unit

    if a.verdict == "never reached":
        return f"**never reached** ({a.never} of {a.count})"
    never = f"; {a.never} never reached" if a.never else ""
    spread = "" if math.isnan(a.spread) else f"; seeds' spread {a.spread:.2f}{unit}"
    return (
        f"{show(a.median)} ({show(a.low)} to {show(a.high)}; {a.ahead} of {a.count} "
        f"ahead{never}{spread}): **{a.verdict}**"
    )
