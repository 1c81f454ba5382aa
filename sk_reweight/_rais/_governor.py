"""When importance sampling pays on this machine: the speed governor of RAIS.

Importance sampling makes progress :math:`\\hat r` uniform steps per step (the
gain ratio, section 3.2 of the paper) at a cost of :math:`\\kappa` uniform
steps per step (gradient-norm bookkeeping, sampling, weighted batch
normalisation). It shortens training only when :math:`\\hat r / \\kappa > 1`.
The paper assumes the cost away; on cheap steps (small networks, a CPU) it is
not negligible, and RAIS would train *slower* than uniform SGD. The governor
measures both and samples uniformly, without bookkeeping, while importance
sampling is predicted not to pay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from ._state_dict import checked_keys

MARGIN = 0.05
"""Importance sampling stops when its predicted speed-up falls below ``1 - MARGIN``."""
MAX_WAIT = 8
"""Longest run of uniform epochs between two tries of importance sampling."""
MIN_TIMED_STEPS = 8
"""Fewest importance-sampled steps a decision rests on."""
MIN_TIMED_SECONDS = 0.25
"""Least wall-clock time of importance-sampled steps (and of uniform ones) a timed decision
rests on: runs shorter than this are not timed reliably and keep sampling."""

Result = TypeVar("Result")


def predicted_speedup(gain_ratio: float, cost_ratio: float) -> float:
    r"""Training speed of importance sampling over uniform sampling: :math:`\hat r / \kappa`.

    A step of importance sampling with gain ratio :math:`\hat r` advances the
    schedule by :math:`\hat r` uniform steps (section 3.2 of Johnson &
    Guestrin, 2018) and costs :math:`\kappa` uniform steps of wall-clock
    time; the ratio is how much faster training progresses per second.

    Parameters
    ----------
    gain_ratio : float
        Mean gain ratio :math:`\hat r \geq 1` of the importance-sampled steps.
    cost_ratio : float
        :math:`\kappa > 0`, the wall-clock cost of an importance-sampled step
        over that of a uniform step without bookkeeping.

    Returns
    -------
    speedup : float
        Above 1 when importance sampling trains faster per second.

    Examples
    --------
    >>> predicted_speedup(1.5, 1.2)
    1.25
    """
    return gain_ratio / cost_ratio


@dataclass
class StepTimes:
    """Wall-clock seconds and steps accumulated for one kind of step."""

    seconds: float = 0.0
    steps: int = 0

    def add(self, seconds: float, steps: int) -> None:
        self.seconds += seconds
        self.steps += steps

    @property
    def per_step(self) -> float:
        """Mean seconds per step (NaN before any step)."""
        return self.seconds / self.steps if self.steps else math.nan


@dataclass
class SamplingGovernor:
    r"""Decides, epoch by epoch, whether RAIS importance-samples or samples uniformly.

    At the end of every epoch in which importance-sampled steps ran, the
    governor predicts the speed-up :func:`predicted_speedup` from their mean
    gain ratio and the cost ratio :math:`\kappa` (given, or measured as the
    mean wall-clock time of an importance-sampled step over that of a uniform
    step without bookkeeping). Below :math:`1 -` :data:`MARGIN` the next
    epochs sample uniformly — a random permutation, no gradient-norm
    bookkeeping, gain ratio 1, exactly uniform SGD's step — and importance
    sampling is tried again after a wait that doubles with every failed try
    (1, 2, 4 epochs, at most :data:`MAX_WAIT`) and returns to 1 once it
    pays. The band :math:`[1 - \mathrm{MARGIN}, 1)` and the growing wait are
    the hysteresis that keeps a noisy prediction from switching every epoch.

    The uniform step's cost is measured directly in the governor's uniform
    epochs; before the first of them it is estimated from RAIS's own uniform
    epochs (the first epoch and the draws before the first (PT) solve) as
    their time less the bookkeeping timed apart on the host. A timed
    decision needs :data:`MIN_TIMED_STEPS` importance-sampled steps and
    :data:`MIN_TIMED_SECONDS` of each kind of step since the last decision;
    until then sampling goes on.

    Parameters
    ----------
    cost_ratio : float or None
        :math:`\kappa` assumed instead of measured (decisions then depend on
        the gain ratios only, so a seeded fit is reproducible bit for bit);
        ``None`` measures it.
    """

    cost_ratio: float | None = None
    sampling: bool = True
    wait: int = 0
    failures: int = 0
    uniform: StepTimes = field(default_factory=StepTimes)
    uniform_measured: bool = False
    sampled: StepTimes = field(default_factory=StepTimes)
    gain_sum: float = 0.0
    last_prediction: float = math.nan

    @classmethod
    def for_fallback(cls, uniform_fallback: str | float | None) -> SamplingGovernor | None:
        """The governor of RAIS's ``uniform_fallback``: ``None`` for ``None`` (switched off)."""
        if uniform_fallback is None:
            return None
        return cls(None if uniform_fallback == "timed" else float(uniform_fallback))

    def record_uniform(self, seconds: float, steps: int, measured: bool) -> None:
        """Time uniform steps without bookkeeping.

        ``measured``: they ran without bookkeeping (a governor's uniform
        epoch), and replace every earlier estimate; otherwise ``seconds`` is
        an estimate (RAIS's uniform steps less their bookkeeping), used only
        until a measured epoch exists.
        """
        if measured:
            self.uniform = StepTimes(seconds, steps)
            self.uniform_measured = True
        elif not self.uniform_measured:
            self.uniform.add(seconds, steps)

    def record_sampled(self, seconds: float, steps: int, gain_sum: float) -> None:
        """Time importance-sampled steps, with the sum of their gain ratios."""
        self.sampled.add(seconds, steps)
        self.gain_sum += gain_sum

    def end_epoch(self) -> str:
        """Decide how the next epoch samples; return the reason, for ``history_``.

        :attr:`last_prediction` is the speed-up predicted at this decision (NaN
        when none was: a uniform epoch, or too few timed steps).
        """
        self.last_prediction = math.nan
        if not self.sampling:
            self.wait -= 1
            if self.wait > 0:
                return f"uniform: importance sampling did not pay; retry in {self.wait} epoch(s)"
            self.sampling = True
            return "uniform: importance sampling is tried again next epoch"
        kappa = self._cost_ratio()
        if math.isnan(kappa):
            return "importance sampling: too few timed steps for a decision yet"
        gain = self.gain_sum / self.sampled.steps
        prediction = predicted_speedup(gain, kappa)
        self.last_prediction = prediction
        self.sampled, self.gain_sum = StepTimes(), 0.0
        summary = f"predicted speed-up {prediction:.2f} = gain {gain:.2f} / cost {kappa:.2f}"
        if prediction >= 1 - MARGIN:
            self.failures = 0
            return f"importance sampling: {summary}"
        self.failures += 1
        self.wait = min(2 ** (self.failures - 1), MAX_WAIT)
        self.sampling = False
        return f"importance sampling: {summary} < {1 - MARGIN:g}; uniform for {self.wait} epoch(s)"

    def _cost_ratio(self) -> float:
        """:math:`\\kappa`, or NaN while the timed steps are too few to decide on."""
        if self.sampled.steps < MIN_TIMED_STEPS:
            return math.nan
        if self.cost_ratio is not None:
            return self.cost_ratio
        if min(self.sampled.seconds, self.uniform.seconds) < MIN_TIMED_SECONDS:
            return math.nan
        return self.sampled.per_step / self.uniform.per_step

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``governor``: what it has decided and measured (``cost_ratio`` aside).

        ``sampling`` (bool), ``wait`` and ``failures`` (int), ``uniform`` and
        ``sampled`` (``{"seconds": float, "steps": int}``),
        ``uniform_measured`` (bool), ``gain_sum`` and ``last_prediction``
        (float).
        """
        return {
            "sampling": self.sampling,
            "wait": self.wait,
            "failures": self.failures,
            "uniform": {"seconds": self.uniform.seconds, "steps": self.uniform.steps},
            "uniform_measured": self.uniform_measured,
            "sampled": {"seconds": self.sampled.seconds, "steps": self.sampled.steps},
            "gain_sum": self.gain_sum,
            "last_prediction": self.last_prediction,
        }

    def load_state_dict(self, state: Any) -> None:
        """Continue from :meth:`state_dict`."""
        keys = ("sampling", "wait", "failures", "uniform", "uniform_measured", "sampled")
        state = checked_keys(state, (*keys, "gain_sum", "last_prediction"), "governor")
        times = {
            key: StepTimes(**checked_keys(state[key], ("seconds", "steps"), f"governor.{key}"))
            for key in ("uniform", "sampled")
        }
        for key, value in {**state, **times}.items():
            setattr(self, key, value)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BlockClock:
    """The wall-clock time of RAIS's bookkeeping blocks, told to its governor.

    A block's time runs from the end of the previous block (or the start of
    the epoch) to the end of its own refresh. An importance-sampled block is
    timed whole; a uniform block's time less its bookkeeping (the time of
    :meth:`bookkeeping` calls and of the refresh, on the host) estimates the
    cost of uniform SGD's steps. The fit's first block is warm-up and not
    told (a resumed fit has none: :meth:`resume`). A governor's uniform
    epoch, without bookkeeping, is timed whole (:meth:`end_uniform_epoch`).

    Parameters
    ----------
    governor : SamplingGovernor or None
        Who is told; ``None`` (the governor off) times nothing.
    """

    def __init__(self, governor: SamplingGovernor | None) -> None:
        self.governor = governor
        self.blocks = 0
        self._block_start = time.perf_counter()
        self._bookkeeping_seconds = 0.0  # host time of the current block's bookkeeping

    def restart(self) -> None:
        """A block starts now: at the start of an epoch."""
        self._block_start = time.perf_counter()

    def resume(self) -> None:
        """Continue a fit resumed from a checkpoint, past its first block: none is warm-up.

        The uninterrupted fit tells the governor every block after its first,
        so the resumed one must too, or its decisions would differ.
        """
        self.blocks = max(self.blocks, 1)

    def bookkeeping(self, work: Callable[..., Result], *args: Any) -> Result:
        """``work(*args)``, its time counted as bookkeeping of the current block."""
        started = time.perf_counter()
        try:
            return work(*args)
        finally:
            self._bookkeeping_seconds += time.perf_counter() - started

    def end_block(
        self, steps: int, sampled: bool, gain_sum: float, refresh_started: float
    ) -> None:
        """A block of ``steps`` steps ended with a refresh that started at ``refresh_started``.

        ``sampled``: its steps were importance-sampled, with gain ratios
        summing to ``gain_sum``.
        """
        now = time.perf_counter()
        seconds, bookkeeping = now - self._block_start, self._bookkeeping_seconds
        bookkeeping += now - refresh_started
        self._block_start, self._bookkeeping_seconds = now, 0.0
        self.blocks += 1
        if self.governor is None or not steps or self.blocks == 1:
            return
        if sampled:
            self.governor.record_sampled(seconds, steps, gain_sum)
        else:
            self.governor.record_uniform(max(seconds - bookkeeping, 0.0), steps, False)

    def end_uniform_epoch(self, steps: int, device: torch.device) -> None:
        """Tell the governor the time of its uniform epoch of ``steps`` steps, just ended."""
        synchronize(device)
        self.governor.record_uniform(time.perf_counter() - self._block_start, steps, measured=True)
