r"""A fast exact solver of (PT): projected Newton on its homogeneous, bound-constrained form.

**Reformulation.** The constraint function of (PT),
:math:`G(c, d) = \frac1{|D|}\sum_j w_j a_j^2 / b_j` with
:math:`a_j = \langle c, s_j\rangle - v_j` and :math:`b_j = \langle d, s_j\rangle`,
is homogeneous of degree :math:`-1` in :math:`d`:
:math:`G(c, t d) = G(c, d) / t`. (PT) is therefore equivalent to minimising

.. math::

    H(c, d) = G(c, d) + \langle m, d\rangle
    \quad\text{over}\quad c \ge 0,\ d \ge 0,

a smooth convex function (a sum of quadratic-over-linear terms plus a linear
one) on the non-negative orthant, with no nonlinear constraint. Writing
:math:`d = t\delta`, :math:`\min_{t > 0} G(c,\delta)/t + t\langle m,\delta\rangle
= 2\sqrt{G(c,\delta)\langle m,\delta\rangle}`, attained where
:math:`G(c, t\delta) = \langle m, t\delta\rangle`; and (PT) restricted to
the ray :math:`d = t\delta` is feasible for :math:`t \ge G(c,\delta)`, with
value :math:`G(c,\delta)\langle m,\delta\rangle`. Both problems thus minimise
the same function of :math:`(c, \delta)`. From a minimiser
:math:`(c, d_H)` of :math:`H` the solution of (PT) is

.. math::

    c^\star = c, \qquad d^\star = G(c, d_H)\, d_H,

on which :math:`G(c^\star, d^\star) = 1` exactly, by homogeneity, with value
:math:`\langle m, d^\star\rangle = \langle m, d_H\rangle^2`. Conversely a
previous solution :math:`d^\star` of (PT) starts :math:`H` at
:math:`d_H = d^\star / \sqrt{\langle m, d^\star\rangle}`.

**Derivatives.** Each term :math:`w a^2 / b` has gradient
:math:`(2 w a / b)\, s` in :math:`c`, :math:`-(w a^2 / b^2)\, s` in :math:`d`,
and the rank-one Hessian :math:`(2 w / b)\, u u^\top`,
:math:`u = (s, -(a/b) s)`. The Hessian of :math:`H` (the linear term adds
nothing) is :math:`U^\top U` with rows
:math:`U_j = \sqrt{2 w_j / (|D| b_j)}\,(s_j, -r_j s_j)`, :math:`r_j = a_j / b_j`:
one product of a :math:`|D| \times 2k` matrix, :math:`O(|D| k^2)`.

**Algorithm.** Projected Newton for bounds (D. P. Bertsekas, "Projected
Newton methods for optimization problems with simple constraints", SIAM J.
Control Optim. 20(2), 1982). At each iteration a variable at zero with a
positive gradient stays there (its columns of :math:`U` are not even formed:
an iteration costs :math:`O(|D|\,|F|^2)` for the :math:`|F|` others); one
within :math:`\varepsilon` of zero with a positive gradient (Bertsekas'
:math:`\varepsilon`-active set) takes a diagonally scaled gradient step
towards it; the free ones take the Newton step of their block of the
Hessian, except that a variable at zero whose Newton step points below zero
is held there and the step recomputed without it, so that the projection
never truncates a Newton step at its start. The block is scaled to a unit
diagonal and inverted on its eigenvectors of eigenvalue above
:math:`10^{-11}` times the largest: nearly collinear features would
otherwise ask for huge, meaningless steps. The iterate
:math:`x(\alpha) = \max(x + \alpha p, 0)` is searched by Armijo backtracking
(a trial with some :math:`b_j \le 0` has :math:`H = +\infty` and is
rejected), so every iterate is exactly non-negative, and so is the solution:
nothing is clipped afterwards.

**Certificate.** The solution is returned when every held variable is
exactly 0 with a positive gradient, and on the free ones both the Newton
decrement :math:`\lambda^2 = g_F^\top [\nabla^2 H]_{FF}^{-1} g_F` (an
affine-invariant estimate of twice the suboptimality) and the Jacobi-scaled
gradient :math:`\sum_{i \in F} g_i^2 / [\nabla^2 H]_{ii}` are at most
``2 * tolerance * H``: the KKT conditions of :math:`\min_{x \ge 0} H`, to a
relative accuracy far below the conic solver's. Otherwise (iteration limit,
failed line search, no descent direction, no finite starting point)
:class:`NewtonCertificationError` is raised and the caller falls back to the
conic solver.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._pt_problem import PTProblem, SolverError, constraint_value

MAX_ITERATIONS = 50
"""Newton iterations before giving up (a cold start typically needs 10 to 20)."""

TOLERANCE = 1e-13
"""Certified relative suboptimality of :math:`H` (see the module's docstring)."""

ACTIVE_THRESHOLD = 1e-3
r"""Bertsekas' :math:`\varepsilon`: variables at most this (or the last projected
gradient step) above zero with a positive gradient are active."""

EIGENVALUE_CUTOFF = 1e-11
"""Relative eigenvalue of the Jacobi-scaled Hessian below which a direction takes no step."""

SUFFICIENT_DECREASE = 1e-4
"""Armijo's fraction of the predicted decrease that a step must achieve."""

MAX_HALVINGS = 40
"""Step halvings of the line search before it fails."""

ROUNDOFF = 1e-15
"""Relative change of :math:`H` below rounding error, which the line search tolerates."""


class NewtonCertificationError(SolverError):
    """The Newton solver of (PT) could not certify an optimum; the message says why."""


class NewtonSolution(NamedTuple):
    """Solution of (PT) in the problem's units, exactly non-negative."""

    c: NDArray[np.float64]
    d: NDArray[np.float64]
    iterations: int


def homogeneous_objective(problem: PTProblem, x: NDArray) -> float:
    r""":math:`H(c, d) = G(c, d) + \langle m, d\rangle` at ``x = (c, d)``;
    :math:`+\infty` where some :math:`\langle d, s_j\rangle \le 0`."""
    c, d = np.split(x, [problem.estimate_features.shape[1]])
    return constraint_value(problem, c, d) + float(problem.objective @ d)


class FirstOrder(NamedTuple):
    r"""Gradient of :math:`H` and the row scales of its Hessian's factor :math:`U`.

    :math:`U_j = (\sigma_j s^c_j,\ \tau_j s^d_j)` with
    :math:`\sigma_j = \sqrt{2 w_j / (|D| b_j)}` and :math:`\tau_j = -\sigma_j r_j`.
    """

    gradient: NDArray[np.float64]
    estimate_scale: NDArray[np.float64]
    uncertainty_scale: NDArray[np.float64]


def first_order(problem: PTProblem, x: NDArray) -> FirstOrder:
    r"""Gradient of :math:`H` at ``x = (c, d)``, and the scales that give its Hessian.

    .. math::

        \nabla H = \frac1{|D|}\sum_j (2 w_j r_j s_j,\ -w_j r_j^2 s_j) + (0, m),
        \qquad r_j = a_j / b_j.
    """
    estimate, uncertainty = problem.estimate_features, problem.uncertainty_features
    c, d = np.split(x, [estimate.shape[1]])
    b = uncertainty @ d
    r = (estimate @ c - problem.norms) / b
    scaled_weights = problem.weights / len(b)
    gradient = np.concatenate(
        [
            estimate.T @ (2 * scaled_weights * r),
            problem.objective - uncertainty.T @ (scaled_weights * r**2),
        ]
    )
    root = np.sqrt(2 * scaled_weights / b)
    return FirstOrder(gradient, root, -root * r)


def hessian_block(problem: PTProblem, first: FirstOrder, variables: NDArray[np.bool_]) -> NDArray:
    r"""The Hessian of :math:`H` among ``variables``: :math:`U_V^\top U_V`.

    One product of a :math:`|D| \times |V|` matrix, :math:`O(|D|\,|V|^2)`.
    """
    estimate_variables, uncertainty_variables = np.split(
        variables, [problem.estimate_features.shape[1]]
    )
    estimate = selected_columns(problem.estimate_features, estimate_variables)
    uncertainty = selected_columns(problem.uncertainty_features, uncertainty_variables)
    n_estimate = estimate.shape[1]
    rows = np.empty((len(estimate), n_estimate + uncertainty.shape[1]), order="F")
    np.multiply(estimate, first.estimate_scale[:, None], out=rows[:, :n_estimate])
    np.multiply(uncertainty, first.uncertainty_scale[:, None], out=rows[:, n_estimate:])
    return rows.T @ rows


def selected_columns(matrix: NDArray, columns: NDArray[np.bool_]) -> NDArray:
    """``matrix[:, columns]``, without a copy when every column is selected."""
    return matrix if columns.all() else matrix[:, columns]


def active_variables(x: NDArray, gradient: NDArray, curvature: NDArray) -> NDArray[np.bool_]:
    r"""Bertsekas' :math:`\varepsilon`-active set: :math:`x_i \le \varepsilon` and :math:`g_i > 0`.

    :math:`\varepsilon = \min(\varepsilon_0, \|x - \max(x - g / \mathrm{diag}
    \nabla^2 H, 0)\|)`, which shrinks to 0 at a solution, so that a variable
    is held at its bound only when the bound is near and binding.
    """
    step = x - np.maximum(x - gradient / curvature, 0.0)
    threshold = min(ACTIVE_THRESHOLD, float(np.linalg.norm(step)))
    return (x <= threshold) & (gradient > 0)


def solve_free_block(hessian: NDArray, gradient: NDArray) -> NDArray:
    r"""Newton step :math:`-[\nabla^2 H]^{+} g` of the free variables.

    The block is scaled to a unit diagonal (Jacobi) and inverted on its
    eigenvectors whose eigenvalue exceeds :data:`EIGENVALUE_CUTOFF` times the
    largest: nearly collinear features leave directions of almost no
    curvature, along which a Newton step would be huge and meaningless; they
    take no step (the least-norm step), and the certificate's scaled gradient
    tells whether that cost optimality.
    """
    if len(gradient) == 0:
        return gradient
    scale = np.sqrt(np.diag(hessian))
    scale[scale <= 0] = 1.0
    values, vectors = np.linalg.eigh(hessian / np.outer(scale, scale))
    kept = values > EIGENVALUE_CUTOFF * values[-1]
    basis = vectors[:, kept]
    return -(basis @ ((basis.T @ (gradient / scale)) / values[kept])) / scale


class NewtonStep(NamedTuple):
    r"""A search direction, the variables held at their bound, and two optimality measures.

    ``decrement`` is :math:`\lambda^2 = -g_F^\top p_F` and ``scaled_gradient``
    :math:`\sum_{i \in F} g_i^2 / [\nabla^2 H]_{ii}`, over the free variables
    :math:`F`; each estimates twice the suboptimality of :math:`H` on their face.
    """

    direction: NDArray[np.float64]
    held: NDArray[np.bool_]
    decrement: float
    scaled_gradient: float


def projected_newton_direction(x: NDArray, gradient: NDArray, hessian: NDArray) -> NewtonStep:
    """The projected Newton step of Bertsekas (1982), with held variables refined.

    ``x``, ``gradient`` and ``hessian`` are those of the variables that may
    move (not at zero with a positive gradient).

    The :func:`active_variables` take a diagonally scaled gradient step
    towards their bound. The others take the Newton step of their block of
    the Hessian, except that a variable at zero whose Newton step points
    below zero is held there (step 0) and the step recomputed without it:
    otherwise the projection would clip it and spoil the step of the others.
    """
    curvature = np.diag(hessian).copy()
    curvature[curvature <= 0] = np.finfo(np.float64).tiny
    held = active_variables(x, gradient, curvature)
    direction = np.where(held, -gradient / curvature, 0.0)
    while True:
        free = ~held
        direction[free] = solve_free_block(hessian[np.ix_(free, free)], gradient[free])
        blocked = free & (x == 0) & (direction < 0)
        if not blocked.any():
            break
        held |= blocked
        direction[blocked] = 0.0
    decrement = -float(gradient[free] @ direction[free])
    if not np.isfinite(direction).all() or decrement < 0:
        raise NewtonCertificationError("the Hessian of (PT) gives no descent direction")
    scaled_gradient = float(gradient[free] ** 2 @ (1 / curvature[free]))
    return NewtonStep(direction, held, decrement, scaled_gradient)


def certified_optimal(x: NDArray, gradient: NDArray, step: NewtonStep, bound: float) -> bool:
    r"""Whether ``x`` satisfies the KKT conditions of :math:`\min_{x \ge 0} H`, up to ``bound``.

    Every held variable is at zero with a positive gradient, and on the free
    ones both the Newton decrement and the scaled gradient are at most
    ``2 * bound`` (an estimated suboptimality of at most ``bound``).
    """
    held = step.held
    return bool(
        (x[held] == 0).all()
        and (gradient[held] > 0).all()
        and max(step.decrement, step.scaled_gradient) <= 2 * bound
    )


def projected_line_search(
    problem: PTProblem, x: NDArray, direction: NDArray, gradient: NDArray, value: float
) -> tuple[NDArray, float]:
    r"""Armijo backtracking along the projected path :math:`\max(x + \alpha p, 0)`.

    Accepts the first :math:`\alpha \in \{1, 1/2, 1/4, \dots\}` with
    :math:`H(x(\alpha)) \le H(x) + \sigma \langle g, x(\alpha) - x\rangle`,
    up to rounding error in :math:`H`.
    """
    step = 1.0
    for _ in range(MAX_HALVINGS):
        trial = np.maximum(x + step * direction, 0.0)
        trial_value = homogeneous_objective(problem, trial)
        predicted = SUFFICIENT_DECREASE * float(gradient @ (trial - x))
        if trial_value <= value + predicted + ROUNDOFF * value:
            return trial, trial_value
        step /= 2
    raise NewtonCertificationError("the line search of the Newton solver of (PT) failed")


def cold_start(problem: PTProblem) -> NDArray:
    r"""A starting point of :math:`H`: :math:`c = 0` and :math:`d` uniform at its best scale.

    With :math:`\delta = (1, \dots, 1)` every record with a non-zero feature
    has :math:`\langle \delta, s_j\rangle > 0`, and
    :math:`t = \sqrt{G(0, \delta) / \langle m, \delta\rangle}` minimises
    :math:`H(0, t\delta)`.

    Raises
    ------
    NewtonCertificationError
        If some record has no non-zero feature: then :math:`H = +\infty`
        everywhere (the conic form accepts such a record when its norm is 0).
    """
    c = np.zeros(problem.estimate_features.shape[1])
    direction = np.ones(problem.uncertainty_features.shape[1])
    spread = constraint_value(problem, c, direction)
    if not np.isfinite(spread):
        raise NewtonCertificationError("a record without features leaves H no finite point")
    return np.concatenate([c, np.sqrt(spread / (problem.objective @ direction)) * direction])


def warm_start(problem: PTProblem, c: NDArray, d: NDArray) -> NDArray | None:
    r"""The point of :math:`H` that corresponds to a solution :math:`(c, d)` of (PT).

    :math:`d_H = d / \sqrt{\langle m, d\rangle}`, both in the problem's units;
    ``None`` when :math:`\langle m, d\rangle = 0` (the previous :math:`d` lay
    on columns that are no longer identifiable).
    """
    c, d = np.maximum(c, 0.0), np.maximum(d, 0.0)
    scale = problem.objective @ d
    if not scale > 0:
        return None
    return np.concatenate([c, d / np.sqrt(scale)])


def pt_solution(problem: PTProblem, x: NDArray) -> tuple[NDArray, NDArray]:
    r"""(PT)'s solution :math:`(c, G(c, d_H)\, d_H)` from a minimiser :math:`(c, d_H)` of H."""
    c, d = np.split(x, [problem.estimate_features.shape[1]])
    return c, constraint_value(problem, c, d) * d


def solve_pt_newton(
    problem: PTProblem,
    initial: tuple[NDArray, NDArray] | None = None,
    *,
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
) -> NewtonSolution:
    r"""Solve (PT) by projected Newton on its homogeneous form (see the module's docstring).

    Parameters
    ----------
    problem : PTProblem
    initial : (c, d) in the problem's units, optional
        A previous solution of (PT) to start from; the cold start is used
        instead when it is worse or lies outside the domain of :math:`H`.
    max_iterations : int
        Newton steps allowed before the solve counts as uncertified.
    tolerance : float
        Certified relative suboptimality of :math:`H`; that of (PT)'s
        objective :math:`\langle m, d^\star\rangle = (H^\star/2)^2` is twice it.

    Returns
    -------
    NewtonSolution

    Raises
    ------
    NewtonCertificationError
        When no optimum could be certified within ``max_iterations``, the
        line search failed, the Hessian gave no descent direction, or a
        record without features leaves :math:`H` no finite point.
    """
    # Trial points outside H's domain evaluate to inf/nan on purpose: the line search rejects
    # them and the certificate refuses them, so numpy's warnings about them are noise.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _projected_newton(problem, initial, max_iterations, tolerance)


def _projected_newton(
    problem: PTProblem,
    initial: tuple[NDArray, NDArray] | None,
    max_iterations: int,
    tolerance: float,
) -> NewtonSolution:
    x = cold_start(problem)
    value = homogeneous_objective(problem, x)
    warm = None if initial is None else warm_start(problem, *initial)
    if warm is not None:
        warm_value = homogeneous_objective(problem, warm)
        if warm_value < value:
            x, value = warm, warm_value
    for iteration in range(max_iterations + 1):
        first = first_order(problem, x)
        gradient = first.gradient
        # Variables at zero with a positive gradient stay there this step; the others move.
        movable = (x > 0) | (gradient <= 0)
        step = projected_newton_direction(
            x[movable], gradient[movable], hessian_block(problem, first, movable)
        )
        if certified_optimal(x[movable], gradient[movable], step, tolerance * value):
            c, d = pt_solution(problem, x)
            if not (np.isfinite(c).all() and np.isfinite(d).all()):
                raise NewtonCertificationError(
                    "the Newton solver of (PT) ended at a point where the constraint is not "
                    "finite (a record whose features the solution ignores)"
                )
            return NewtonSolution(c, d, iterations=iteration)
        if iteration == max_iterations:
            break
        direction = np.zeros_like(x)
        direction[movable] = step.direction
        x, value = projected_line_search(problem, x, direction, gradient, value)
    raise NewtonCertificationError(
        f"the Newton solver of (PT) certified no optimum in {max_iterations} iterations"
    )
