r"""The RAIS uncertainty set: its robust sampling scores and its training problem (PT).

The set (section 4.2 of the paper) is the axis-aligned ellipsoid

.. math::

    \mathcal U_{cd} = \Bigl\{ v \in \mathbb R^n_{\geq 0} \Bigm|
    \tfrac1n \textstyle\sum_i Q_{cd}(s_i, v_i) \le 1 \Bigr\},
    \qquad Q_{cd}(s, v) = \frac{(\langle c, s\rangle - v)^2}{\langle d, s\rangle},

over the gradient norms :math:`v`, parameterised by :math:`c, d \geq 0` and the
per-example features :math:`s_i`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ._cvxpy import CVXPY_SOLVERS, check_conic_solver, solve_pt_cvxpy
from ._newton import MAX_ITERATIONS, NewtonCertificationError, solve_pt_newton
from ._pt_problem import SolverError, prepare_pt_problem, to_original_units, to_problem_units
from ._state_dict import ADVICE, checked_keys

__all__ = [
    "CVXPY_SOLVERS",
    "SOLVERS",
    "SolverError",
    "UncertaintySet",
    "check_conic_solver",
    "effective_sample_size",
    "outlier_bound",
    "outlier_scale",
    "robust_scores",
    "sampling_distribution",
    "solve_uncertainty_set",
    "uncertainty_constraint",
]

SOLVERS = ("newton", "cvxpy")
"""Solvers of (PT): the projected Newton method (``_newton``) and cvxpy (``_cvxpy``)."""


def robust_scores(estimate: Tensor, uncertainty: Tensor) -> Tensor:
    r"""The worst-case gradient norms of Proposition 4.1, to which sampling is proportional.

    .. math::

        v_i = \langle c, s_i \rangle + k \langle d, s_i \rangle,
        \qquad k = \sqrt{n \big/ \textstyle\sum_j \langle d, s_j \rangle}

    is the maximiser of :math:`(\sum_i v_i)^2` over :math:`\mathcal U_{cd}`
    (problem PRC'), so sampling with :math:`p \propto v` is minimax optimal
    for the variance of the stochastic gradient (PRC). The first term
    estimates the norm, the second adds robustness to the estimate's error.
    When :math:`\sum_j \langle d, s_j\rangle = 0` the set is a point and
    :math:`v_i = \langle c, s_i\rangle`. No value is read from the device.

    Parameters
    ----------
    estimate, uncertainty : Tensor of shape (n_examples,)
        The projections :math:`\langle c, s_i\rangle` and
        :math:`\langle d, s_i\rangle` of the examples' features (both
        non-negative).

    Returns
    -------
    scores : Tensor of shape (n_examples,)
    """
    # A zero total means zero uncertainties: the clamp then leaves v = <c, s> without a branch.
    k = torch.rsqrt(uncertainty.sum().clamp_min(1e-30) / len(uncertainty))
    return torch.addcmul(estimate, uncertainty, k)


def sampling_distribution(scores: Tensor) -> Tensor:
    """Normalise non-negative scores into probabilities; uniform if they are all zero."""
    total = scores.sum()
    if not torch.isfinite(total) or total <= 0:
        return torch.full_like(scores, 1.0 / len(scores))
    return scores / total


def effective_sample_size(probabilities: Tensor) -> float:
    r"""Kish's effective sample size of the importance weights, as a fraction of ``n``.

    .. math:: \mathrm{ESS} / n = \frac{1}{n \sum_i p_i^2}

    1 for uniform sampling, :math:`1/n` when all mass is on one example.
    """
    return 1.0 / (len(probabilities) * probabilities.square().sum().item())


def outlier_bound(estimate: Tensor, uncertainty: Tensor, threshold: float) -> Tensor:
    r"""The largest gradient norm that is no outlier: where :math:`Q_{cd}` reaches ``threshold``.

    Section 4.5: :math:`Q_{cd}(s_i, v_i) = (\langle c, s_i\rangle - v_i)^2 /
    \langle d, s_i\rangle \le \tau` above the estimate means
    :math:`v_i \le \langle c, s_i\rangle + \sqrt{\tau \langle d, s_i\rangle}`.

    Parameters
    ----------
    estimate, uncertainty : Tensor of shape (n,)
        :math:`\langle c, s_i\rangle` and :math:`\langle d, s_i\rangle`.
    threshold : float
        :math:`\tau`.
    """
    return torch.sqrt(threshold * uncertainty).add_(estimate)


def outlier_scale(norms: Tensor, bound: Tensor) -> Tensor:
    r"""Per-example loss multipliers that cap outliers' norms at their :func:`outlier_bound`.

    Section 4.5: an example whose norm lies so far above its estimate that
    :math:`Q_{cd} > \tau` has its loss scaled down until :math:`Q = \tau`.
    Examples whose norm falls *below* the estimate are left alone: they
    cannot inflate the gradient's variance.

    Returns
    -------
    scale : Tensor of shape (batch_size,)
        In ``(0, 1]``; 1 for every non-outlier.
    """
    # fmin ignores the NaN of 0/0 (a zero norm on a zero bound): that example is no outlier.
    return torch.fmin(bound / norms, torch.ones((), device=norms.device))


def uncertainty_constraint(
    c: NDArray, d: NDArray, features: NDArray, norms: NDArray, weights: NDArray
) -> float:
    r"""Left-hand side of the constraint of (PT), :math:`\frac1{|D|}\sum_j w_j Q_{cd}(s_j, v_j)`.

    Used to check solutions.
    """
    residual = features @ c - norms
    return float(np.mean(weights * residual**2 / (features @ d)))


@dataclass(frozen=True)
class UncertaintySet:
    """Parameters ``c`` and ``d`` of the set, with how (PT) produced them.

    Attributes
    ----------
    c, d : ndarray of shape (n_features,)
        Non-negative coefficients of the norm estimate and of its uncertainty.
    status : str
        ``'optimal'``: the Newton solver certified its solution, or cvxpy's
        status of the solve.
    solve_seconds : float
        Wall-clock time of the solve, preprocessing and any fallback included.
    solver : {'newton', 'cvxpy'}
        The solver that produced ``c`` and ``d``.
    iterations : int
        Its iterations: Newton steps, or the conic solver's (0 if cvxpy
        does not report them).
    fallback_reason : str or None
        Why the Newton solver's result was not used, when it was tried and
        cvxpy produced the set instead; ``None`` otherwise.
    """

    c: NDArray[np.float64]
    d: NDArray[np.float64]
    status: str
    solve_seconds: float
    solver: str
    iterations: int
    fallback_reason: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """The set as a checkpoint holds it: its fields, ``c`` and ``d`` as float64 tensors."""
        return {
            "c": torch.tensor(self.c),
            "d": torch.tensor(self.d),
            "status": self.status,
            "solve_seconds": self.solve_seconds,
            "solver": self.solver,
            "iterations": self.iterations,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_state_dict(cls, state: Any) -> UncertaintySet:
        """The set :meth:`state_dict` saved (``c`` and ``d`` exactly)."""
        keys = ("c", "d", "status", "solve_seconds", "solver", "iterations", "fallback_reason")
        state = checked_keys(state, keys, "uncertainty_set")
        c, d = state["c"], state["d"]
        if not (isinstance(c, Tensor) and isinstance(d, Tensor) and c.shape == d.shape):
            raise ValueError(f"the checkpoint's uncertainty set has malformed c and d. {ADVICE}")
        return cls(**{**state, "c": c.numpy(), "d": d.numpy()})


def solve_uncertainty_set(
    features: NDArray,
    norms: NDArray,
    weights: NDArray,
    mean_features: NDArray,
    *,
    solver: str = "newton",
    cvxpy_solver: str = "CLARABEL",
    initial: UncertaintySet | None = None,
    max_newton_iterations: int = MAX_ITERATIONS,
) -> UncertaintySet:
    r"""Solve problem (PT) of section 4.3 for the parameters of the uncertainty set.

    .. math::

        \min_{c, d \ge 0} \sum_{i=1}^n \langle d, s_i \rangle
        \quad\text{s.t.}\quad
        \frac{1}{|D|} \sum_{j \in D} w_j \frac{(\langle c, s_j\rangle - v_j)^2}
        {\langle d, s_j\rangle} \le 1

    The records are checked, rescaled and reduced to identifiable columns
    once (``_pt_problem``; coefficients of a feature that is zero in every
    record, or equal in every record to another feature, are fixed at 0).
    ``solver='newton'`` then runs projected Newton on the equivalent
    bound-constrained problem :math:`\min_{c,d\ge0} G(c,d) + \langle m, d\rangle`
    (``_newton``), warm-started from ``initial``; when it cannot certify its
    solution, cvxpy solves the same problem as a second-order cone program
    (``_cvxpy``) and ``fallback_reason`` says why. ``solver='cvxpy'`` goes
    to cvxpy directly. On one CPU thread at :math:`|D| = 20{,}000`
    (``benchmarks/bench_pt.py``): Newton about 15 ms from a cold start and
    7 ms warm-started from the previous solve, cvxpy with Clarabel about 4 s.

    Parameters
    ----------
    features : ndarray of shape (n_records, n_features)
        :math:`\tilde s_j`, the features at the time each norm was recorded.
    norms : ndarray of shape (n_records,)
        :math:`\tilde v_j`, the recorded gradient norms.
    weights : ndarray of shape (n_records,)
        :math:`\tilde w_j = 1 / (n p_j)` at record time.
    mean_features : ndarray of shape (n_features,)
        :math:`\frac1n \sum_i s_i` over the training set now: the
        objective divided by ``n``, which has the same minimiser.
    solver : {'newton', 'cvxpy'}, default='newton'
        See :data:`SOLVERS`.
    cvxpy_solver : str, default='CLARABEL'
        The cvxpy conic solver, for ``solver='cvxpy'`` and the fallback.
    initial : UncertaintySet, optional
        A previous solution, from which the Newton solver starts.
    max_newton_iterations : int, default=50
        Newton steps before the solve counts as uncertified.

    Returns
    -------
    uncertainty_set : UncertaintySet

    Raises
    ------
    SolverError
        When the records are not finite, or cvxpy fails or reports anything
        but an optimal status; after a Newton solve that could not certify,
        the message says why, then how the cvxpy fallback failed.
    ValueError
        For an unknown ``solver``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    start = time.perf_counter()
    problem = prepare_pt_problem(features, norms, weights, mean_features)
    fallback_reason = None
    if solver == "newton":
        warm = None if initial is None else to_problem_units(problem, initial.c, initial.d)
        try:
            found = solve_pt_newton(problem, warm, max_iterations=max_newton_iterations)
        except NewtonCertificationError as exc:
            fallback_reason = str(exc)
        else:
            return UncertaintySet(
                *to_original_units(problem, found.c, found.d),
                status="optimal",
                solve_seconds=time.perf_counter() - start,
                solver="newton",
                iterations=found.iterations,
            )
    try:
        found = solve_pt_cvxpy(problem, cvxpy_solver)
    except SolverError as exc:
        if fallback_reason is None:
            raise
        raise SolverError(f"{fallback_reason}, and its cvxpy fallback failed too: {exc}") from exc
    return UncertaintySet(
        *to_original_units(problem, found.c, found.d),
        status=found.status,
        solve_seconds=time.perf_counter() - start,
        solver="cvxpy",
        iterations=found.iterations,
        fallback_reason=fallback_reason,
    )
