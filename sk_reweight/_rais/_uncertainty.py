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

import cvxpy as cp
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor


def robust_scores(features: Tensor, c: Tensor, d: Tensor) -> Tensor:
    r"""The worst-case gradient norms of Proposition 4.1, to which sampling is proportional.

    .. math::

        v_i = \langle c, s_i \rangle + k \langle d, s_i \rangle,
        \qquad k = \sqrt{n \big/ \textstyle\sum_j \langle d, s_j \rangle}

    is the maximiser of :math:`(\sum_i v_i)^2` over :math:`\mathcal U_{cd}`
    (problem PRC'), so sampling with :math:`p \propto v` is minimax optimal
    for the variance of the stochastic gradient (PRC). The first term
    estimates the norm, the second adds robustness to the estimate's error.
    When :math:`\sum_j \langle d, s_j\rangle = 0` the set is a point and
    :math:`v_i = \langle c, s_i\rangle`.

    Parameters
    ----------
    features : Tensor of shape (n_examples, n_features)
        Non-negative features :math:`s_i`.
    c, d : Tensor of shape (n_features,)
        Non-negative parameters of the set.

    Returns
    -------
    scores : Tensor of shape (n_examples,)
    """
    estimate = features @ c
    uncertainty = features @ d
    total = uncertainty.sum()
    if total <= 0:
        return estimate
    return estimate + torch.sqrt(len(features) / total) * uncertainty


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


def outlier_scale(
    features: Tensor, norms: Tensor, c: Tensor, d: Tensor, threshold: float
) -> Tensor:
    r"""Per-example loss multipliers that cap :math:`Q_{cd}` of outliers at ``threshold``.

    Section 4.5: an example whose norm lies so far above its estimate that
    :math:`Q_{cd}(s_i, v_i) > \tau` has its loss scaled down until
    :math:`Q = \tau`, i.e. its norm is clipped to
    :math:`\langle c, s_i\rangle + \sqrt{\tau \langle d, s_i\rangle}`. Examples
    whose norm falls *below* the estimate are left alone: they cannot inflate
    the gradient's variance.

    Returns
    -------
    scale : Tensor of shape (batch_size,)
        In ``(0, 1]``; 1 for every non-outlier.
    """
    bound = features @ c + torch.sqrt(threshold * (features @ d))
    return torch.where(norms > bound, bound / norms, torch.ones_like(norms))


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
        cvxpy's status of the solve that produced them.
    solve_seconds : float
        Wall-clock time of that solve.
    """

    c: NDArray[np.float64]
    d: NDArray[np.float64]
    status: str
    solve_seconds: float


class SolverError(RuntimeError):
    """(PT) could not be solved to optimality; the message says why."""


def solve_uncertainty_set(
    features: NDArray,
    norms: NDArray,
    weights: NDArray,
    mean_features: NDArray,
    solver: str = "CLARABEL",
) -> UncertaintySet:
    r"""Solve problem (PT) of section 4.3 with cvxpy, as a second-order cone program.

    .. math::

        \min_{c, d \ge 0} \sum_{i=1}^n \langle d, s_i \rangle
        \quad\text{s.t.}\quad
        \frac{1}{|D|} \sum_{j \in D} w_j \frac{(\langle c, s_j\rangle - v_j)^2}
        {\langle d, s_j\rangle} \le 1

    Each term is a quadratic over a linear function, jointly convex; with
    :math:`a_j = \sqrt{w_j}(\langle c, s_j\rangle - v_j)` and
    :math:`b_j = \langle d, s_j\rangle` the constraint becomes the rotated
    cones :math:`a_j^2 \le t_j b_j`, i.e. :math:`\|(2 a_j, t_j - b_j)\| \le
    t_j + b_j`, and :math:`\sum_j t_j \le |D|`, posed as one vectorised
    ``cp.SOC`` constraint. (A DPP-parameterised version that compiles once
    needs memory quadratic in :math:`|D|`, so the problem is rebuilt for
    every solve.)

    The data are rescaled before solving (feature columns by their mean,
    norms by their weighted root mean square), which leaves the solution
    unchanged (:math:`c` scales like :math:`v`, :math:`d` like :math:`v^2`)
    and keeps the interior-point solver well conditioned at any loss scale.
    A feature that is zero in every record (a variance before any example has
    two recorded norms) does not enter the constraint, so nothing would bound
    its coefficient in :math:`c`: such coefficients are fixed at 0.

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
    solver : str, default='CLARABEL'
        A cvxpy conic solver. Clarabel solves |D| = 20,000 in seconds to
        optimality; SCS takes minutes and ends "inaccurate"
        (``../shared/notes/rais.md``).

    Returns
    -------
    uncertainty_set : UncertaintySet

    Raises
    ------
    SolverError
        When the solver fails or reports anything but an optimal status.
    """
    start = time.perf_counter()
    features = np.asarray(features, dtype=np.float64)
    norms = np.asarray(norms, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if not all(np.isfinite(a).all() for a in (features, norms, weights, mean_features)):
        raise SolverError("the (PT) records contain NaN or infinite values")
    column_scale = features.mean(axis=0)
    column_scale[column_scale <= 0] = 1.0
    norm_scale = float(np.sqrt(np.mean(weights * norms**2)))
    if not np.isfinite(norm_scale) or norm_scale <= 0:
        norm_scale = 1.0
    scaled = features / column_scale
    root_weights = np.sqrt(weights)
    n_records, n_features = scaled.shape
    c = cp.Variable(n_features, nonneg=True)
    d = cp.Variable(n_features, nonneg=True)
    slack = cp.Variable(n_records, nonneg=True)
    residual = (root_weights[:, None] * scaled) @ c - root_weights * norms / norm_scale
    uncertainty = scaled @ d
    constraints = [
        cp.SOC(slack + uncertainty, cp.vstack([2 * residual, slack - uncertainty]), axis=0),
        cp.sum(slack) <= n_records,
    ]
    constant = np.flatnonzero(np.all(features == 0, axis=0))
    if len(constant):
        # A feature that is zero in every record leaves its coefficients unidentified.
        constraints += [c[constant] == 0, d[constant] == 0]
    problem = cp.Problem(cp.Minimize((mean_features / column_scale) @ d), constraints)
    try:
        problem.solve(solver=solver)
    except cp.error.SolverError as exc:
        raise SolverError(f"{solver} failed on (PT): {exc}") from exc
    if problem.status != cp.OPTIMAL or c.value is None or d.value is None:
        raise SolverError(f"{solver} returned status {problem.status!r} for (PT)")
    return UncertaintySet(
        c=np.clip(c.value, 0.0, None) * norm_scale / column_scale,
        d=np.clip(d.value, 0.0, None) * norm_scale**2 / column_scale,
        status=problem.status,
        solve_seconds=time.perf_counter() - start,
    )
