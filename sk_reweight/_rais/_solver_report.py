"""What the (PT) solves of one fit came to, told once, at the end of training.

The Newton solver certifies nearly every solve in milliseconds. When it cannot,
cvxpy solves the same problem (the fallback), far more slowly; when that fails
too, RAIS keeps its previous sampling distribution. Either event is worth one
:class:`~sklearn.exceptions.ConvergenceWarning` per fit that names the solver
that ran, why the fallback ran, and, since both happen mostly when training is
unstable, what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._state_dict import checked_keys

UNSCALED_FEATURE_SCALE = 10.0
"""A largest feature root mean square above which the inputs look unscaled
(standardised features have 1, features in [0, 1] at most 1)."""


@dataclass
class SolverReport:
    """Counts of one fit's (PT) solves, with the first reason of each kind of event.

    Attributes
    ----------
    solves : int
        Solves finished, successful or not.
    fallbacks : int
        Solves the Newton solver could not certify, which cvxpy then solved.
    failures : int
        Solves that produced no set (the previous one was kept).
    first_fallback_reason, first_failure : str or None
        Why the first fallback ran; what the first failure was.
    """

    solves: int = 0
    fallbacks: int = 0
    failures: int = 0
    first_fallback_reason: str | None = None
    first_failure: str | None = None

    def record_set(self, fallback_reason: str | None) -> None:
        """A solve produced a set; ``fallback_reason``: why cvxpy produced it, if it did."""
        self.solves += 1
        if fallback_reason is not None:
            self.fallbacks += 1
            self.first_fallback_reason = self.first_fallback_reason or fallback_reason

    def record_failure(self, reason: str) -> None:
        """A solve failed with ``reason`` (the solver error's message)."""
        self.solves += 1
        self.failures += 1
        self.first_failure = self.first_failure or reason

    @property
    def eventful(self) -> bool:
        """Whether any solve fell back to cvxpy or failed."""
        return bool(self.fallbacks or self.failures)

    def state_dict(self) -> dict[str, int | str | None]:
        """The checkpoint's ``solver_report``: its five fields, under their names."""
        return {
            "solves": self.solves,
            "fallbacks": self.fallbacks,
            "failures": self.failures,
            "first_fallback_reason": self.first_fallback_reason,
            "first_failure": self.first_failure,
        }

    def load_state_dict(self, state: Any) -> None:
        """Continue from :meth:`state_dict`: a resumed fit reports the solves before it too."""
        keys = ("solves", "fallbacks", "failures", "first_fallback_reason", "first_failure")
        for key, value in checked_keys(state, keys, "solver_report").items():
            setattr(self, key, value)


def solver_message(report: SolverReport, cvxpy_solver: str, feature_scale: float) -> str:
    """The warning about an eventful ``report``, with advice from the inputs' ``feature_scale``.

    ``cvxpy_solver`` is the conic solver of the fallback (or of
    ``solver='cvxpy'``); ``feature_scale`` is the largest root mean square of
    an input feature (``largest_feature_scale``).
    """
    parts = []
    if report.fallbacks:
        parts.append(
            f"{report.fallbacks} of {report.solves} fell back from the Newton solver, which "
            f"could not certify {'it' if report.fallbacks == 1 else 'them'}, to cvxpy's "
            f"{cvxpy_solver}, much slower "
            f"({_first(report.fallbacks)}{report.first_fallback_reason})"
        )
    if report.failures:
        parts.append(
            f"{report.failures} of {report.solves} failed, keeping the previous sampling "
            f"distribution ({_first(report.failures)}{report.first_failure})"
        )
    return f"RAISClassifier's (PT) solves: {'; '.join(parts)}. {training_advice(feature_scale)}"


def _first(count: int) -> str:
    return "" if count == 1 else "the first: "


def training_advice(feature_scale: float) -> str:
    """What to change when (PT) struggles: scale the features if they look unscaled, or lr."""
    if feature_scale > UNSCALED_FEATURE_SCALE:
        return (
            f"The features look unscaled (the largest root mean square of a feature is "
            f"{feature_scale:.3g}), which makes the gradient norms that (PT) fits erratic: "
            "scale them, e.g. with a StandardScaler in a Pipeline before the classifier, "
            "or lower lr."
        )
    return "This happens mostly when training is unstable: lower lr."
