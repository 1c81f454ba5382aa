r"""(PT) as a second-order cone program, solved by cvxpy: the reference and the fallback.

cvxpy is imported only when this path runs, so that importing the library
does not pay for it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._pt_problem import PTProblem, SolverError

CVXPY_SOLVERS = (
    "CLARABEL",
    "SCS",
    "ECOS",
    "MOSEK",
    "GUROBI",
    "CPLEX",
    "COPT",
    "XPRESS",
    "CVXOPT",
    "QOCO",
    "KNITRO",
    "NAG",
)
"""cvxpy solvers that accept second-order cones (cvxpy 1.9), installed or not."""


def check_conic_solver(name: str) -> None:
    """Raise ``ValueError`` unless cvxpy has the conic solver ``name`` (imports cvxpy).

    ``name`` must be one of :data:`CVXPY_SOLVERS` and installed.
    """
    import cvxpy as cp

    installed = sorted(set(CVXPY_SOLVERS).intersection(cp.installed_solvers()))
    if name not in installed:
        raise ValueError(
            f"cvxpy solver {name!r} is not an installed solver of second-order cone "
            f"programs; installed ones: {installed}."
        )


class ConicSolution(NamedTuple):
    """Solution of (PT) in the problem's units, with the conic solver's report."""

    c: NDArray[np.float64]
    d: NDArray[np.float64]
    status: str
    iterations: int


def cvxpy_pt_problem(problem: PTProblem) -> tuple[Any, Any, Any]:
    """(PT) as a cvxpy problem: one vectorised second-order cone constraint.

    Returns the problem and its variables ``c`` and ``d`` (see
    :func:`solve_pt_cvxpy` for the formulation).
    """
    import cvxpy as cp

    estimate, uncertainty = problem.estimate_features, problem.uncertainty_features
    n_records = len(problem.norms)
    root_weights = np.sqrt(problem.weights)
    c = cp.Variable(estimate.shape[1], nonneg=True)
    d = cp.Variable(uncertainty.shape[1], nonneg=True)
    slack = cp.Variable(n_records, nonneg=True)
    residual = (root_weights[:, None] * estimate) @ c - root_weights * problem.norms
    spread = uncertainty @ d
    constraints = [
        cp.SOC(slack + spread, cp.vstack([2 * residual, slack - spread]), axis=0),
        cp.sum(slack) <= n_records,
    ]
    return cp.Problem(cp.Minimize(problem.objective @ d), constraints), c, d


def solve_pt_cvxpy(problem: PTProblem, solver: str = "CLARABEL") -> ConicSolution:
    r"""Solve (PT) with cvxpy as a second-order cone program.

    Each term of the constraint is a quadratic over a linear function, jointly
    convex; with :math:`a_j = \sqrt{w_j}(\langle c, s_j\rangle - v_j)` and
    :math:`b_j = \langle d, s_j\rangle` the constraint becomes the rotated
    cones :math:`a_j^2 \le t_j b_j`, i.e. :math:`\|(2 a_j, t_j - b_j)\| \le
    t_j + b_j`, and :math:`\sum_j t_j \le |D|`, posed as one vectorised
    ``cp.SOC`` constraint. (A DPP-parameterised version that compiles once
    needs memory quadratic in :math:`|D|`, so the problem is rebuilt for
    every solve.) Interior-point solutions may undershoot the bound
    :math:`c, d \ge 0` by rounding error; they are clipped at 0.

    Parameters
    ----------
    problem : PTProblem
    solver : str, default='CLARABEL'
        A cvxpy conic solver. Clarabel solves |D| = 20,000 in seconds to
        optimality; SCS takes minutes and ends "inaccurate"
        (``../shared/notes/rais.md``).

    Returns
    -------
    ConicSolution
        ``iterations`` is the solver's count where cvxpy reports it, else 0.

    Raises
    ------
    SolverError
        When the solver fails or reports anything but an optimal status
        (cvxpy's own warning about an inaccurate solution is not issued: the
        status is in the error's message).
    """
    import cvxpy as cp

    pt, c, d = cvxpy_pt_problem(problem)
    try:
        # cvxpy's documented steps of Problem.solve, taken one by one: solve() itself warns
        # ("Solution may be inaccurate...") from this solver thread, raw; here every status
        # but optimal becomes a SolverError that the caller reports in its own words.
        data, chain, inverse_data = pt.get_problem_data(solver, solver_opts={})
        raw = chain.solve_via_data(pt, data, solver_opts={})
        solution = chain.invert(raw, inverse_data)
    except cp.error.SolverError as exc:
        raise SolverError(f"cvxpy's {solver} failed on (PT): {exc}") from exc
    if solution.status != cp.OPTIMAL:
        raise SolverError(f"cvxpy's {solver} returned status {solution.status!r} for (PT)")
    pt.unpack(solution)
    return ConicSolution(
        c=np.clip(c.value, 0.0, None),
        d=np.clip(d.value, 0.0, None),
        status=solution.status,
        iterations=int(solution.attr.get("num_iters") or 0),
    )
