"""What RAIS tells ``history_`` about each epoch, besides the importance-sampling base."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._uncertainty import UncertaintySet

PAPER_DECISION = "paper: importance sampling whenever (PT) has a set"
"""``sampling_decision`` without the governor (``uniform_fallback=None``)."""


@dataclass
class EpochRecord:
    """One epoch of RAIS-SGD as ``history_`` records it (:meth:`statistics`).

    Attributes
    ----------
    decision : str
        How the epoch sampled, and why (``sampling_decision``).
    prediction : float or None
        The governor's predicted speed-up at the epoch's end
        (``predicted_speedup``).
    drawn, sampled_steps : int
        Examples drawn with bookkeeping, and importance-sampled steps.
    outlier_scales : list of Tensor
        The outlier multipliers of the importance-sampled draws, per block.
    solve_seconds, solve_status, solves, solver_fallbacks
        The (PT) solves installed in the epoch: their time, the last status
        (``'none'``, ``'failed'`` or the solver's), their number and the
        number that fell back to cvxpy.
    """

    decision: str = PAPER_DECISION
    prediction: float | None = None
    drawn: int = 0
    sampled_steps: int = 0
    outlier_scales: list[Tensor] = field(default_factory=list)
    solve_seconds: float = 0.0
    solve_status: str = "none"
    solves: int = 0
    solver_fallbacks: int = 0

    def record_set(self, found: UncertaintySet) -> None:
        """A (PT) solve's set was installed."""
        self.solve_seconds += found.solve_seconds
        self.solve_status = found.status
        self.solves += 1
        self.solver_fallbacks += found.fallback_reason is not None

    def statistics(self) -> dict[str, float | str | None]:
        """The epoch's ``history_`` entries (reads the device once, for the outliers)."""
        scales = self.outlier_scales
        outliers = int((torch.cat(scales) < 1).sum()) if scales else 0
        return {
            "solve_seconds": self.solve_seconds,
            "solve_status": self.solve_status,
            "solves": self.solves,
            "solver_fallbacks": self.solver_fallbacks,
            "outlier_fraction": outliers / max(self.drawn, 1),
            "sampling": "importance" if self.sampled_steps else "uniform",
            "sampling_decision": self.decision,
            "predicted_speedup": self.prediction,
        }
