"""The Newton solver of (PT) against cvxpy (Clarabel), on random and on recorded instances.

Recorded instances (``tests/data/pt_*.npz``) are the arguments of real solves
during RAIS training on digits and on a ``make_classification`` dataset
(``tests/data/record_pt_instances.py``); random ones are drawn by
``tests/pt_instances.py`` the way training produces them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sk_reweight._rais._newton import (
    NewtonCertificationError,
    first_order,
    hessian_block,
    homogeneous_objective,
    solve_pt_newton,
    warm_start,
)
from sk_reweight._rais._pt_problem import (
    identifiable_columns,
    prepare_pt_problem,
    to_original_units,
    to_problem_units,
)
from sk_reweight._rais._uncertainty import (
    SOLVERS,
    SolverError,
    UncertaintySet,
    check_conic_solver,
    robust_scores,
    sampling_distribution,
    solve_uncertainty_set,
    uncertainty_constraint,
)

from .pt_instances import PTRecords, draw_pt_records

DATA = Path(__file__).parent / "data"
RECORDED = sorted(path.name for path in DATA.glob("pt_*.npz"))
CONSECUTIVE = [
    ("pt_digits_27.npz", "pt_digits_28.npz"),
    ("pt_classification_29.npz", "pt_classification_30.npz"),
]


def load_records(name: str) -> PTRecords:
    with np.load(DATA / name) as stored:
        return PTRecords(*(stored[key].astype(np.float64) for key in PTRecords._fields))


@functools.cache
def cvxpy_reference(name: str) -> UncertaintySet:
    return solve_uncertainty_set(*load_records(name), solver="cvxpy")


def objective(records: PTRecords, found: UncertaintySet) -> float:
    """(PT)'s objective divided by n: :math:`\\langle m, d\\rangle`."""
    return float(records.mean_features @ found.d)


def constraint(records: PTRecords, found: UncertaintySet) -> float:
    return uncertainty_constraint(found.c, found.d, *records[:3])


def sampling(features: np.ndarray, found: UncertaintySet) -> np.ndarray:
    """The sampling distribution of Proposition 4.1 over examples with ``features``."""
    scores = robust_scores(*(torch.as_tensor(features @ v) for v in (found.c, found.d)))
    return sampling_distribution(scores).numpy()


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def assert_agrees_with_cvxpy(
    records: PTRecords, newton: UncertaintySet, reference: UncertaintySet, *more_features
) -> None:
    """Same optimum, feasibility, exact non-negativity and the same sampling distribution."""
    assert (newton.solver, newton.status, newton.fallback_reason) == ("newton", "optimal", None)
    assert reference.solver == "cvxpy"
    assert objective(records, newton) == pytest.approx(objective(records, reference), rel=1e-5)
    assert constraint(records, newton) <= 1 + 1e-6
    assert (newton.c >= 0).all()
    assert (newton.d >= 0).all()
    for features in (records.features, *more_features):
        distance = total_variation(sampling(features, newton), sampling(features, reference))
        assert distance <= 1e-4


def finite_difference_gradient(function, x: np.ndarray, step: float) -> np.ndarray:
    """Central differences (also at zero coordinates: G is defined a little beyond)."""
    return np.array(
        [(function(x + step * e) - function(x - step * e)) / (2 * step) for e in np.eye(len(x))]
    )


def constraint_gradient(records: PTRecords, c: np.ndarray, d: np.ndarray) -> tuple:
    r""":math:`\nabla_c G` and :math:`\nabla_d G` in the records' units, and the
    magnitudes of the sums that form them (the same sums of absolute values)."""
    features, norms, weights, _ = records
    ratio = (features @ c - norms) / (features @ d)
    gradient_c = 2 * np.mean(weights * ratio * features.T, axis=1)
    gradient_d = -np.mean(weights * ratio**2 * features.T, axis=1)
    magnitude_c = 2 * np.mean(weights * np.abs(ratio) * features.T, axis=1)
    return gradient_c, gradient_d, magnitude_c, -gradient_d


def kkt_violation(records: PTRecords, found: UncertaintySet) -> float:
    r"""Largest relative violation of (PT)'s KKT conditions.

    With multiplier :math:`\mu` of the constraint, the conditions are
    :math:`m + \mu \nabla_d G \ge 0`, :math:`\nabla_c G \ge 0`, each
    :math:`= 0` where the coefficient is positive, and :math:`G = 1`. By
    homogeneity :math:`\langle \nabla_d G, d\rangle = -G`, so
    :math:`\mu = \langle m, d\rangle`. Each entry is measured against the
    magnitude of the terms that form it. The gradient is computed here, in the
    records' units, independently of the solver (and checked against finite
    differences below).
    """
    c, d, mean_features = found.c, found.d, records.mean_features
    gradient_c, gradient_d, magnitude_c, magnitude_d = constraint_gradient(records, c, d)
    multiplier = mean_features @ d
    lagrangian_c = multiplier * gradient_c
    lagrangian_d = mean_features + multiplier * gradient_d
    violations = np.concatenate(
        [
            np.where(c > 0, np.abs(lagrangian_c), -lagrangian_c) / (multiplier * magnitude_c),
            np.where(d > 0, np.abs(lagrangian_d), -lagrangian_d)
            / (mean_features + multiplier * magnitude_d),
            [abs(constraint(records, found) - 1)],
        ]
    )
    return float(violations.max())


# ------------------------------------------------------------- agreement


@settings(max_examples=8, deadline=None, derandomize=True)
@example(seed=1, n_records=400, max_records=16, tail=1.0, noise=0.4, weight_spread=100.0)
@example(seed=2, n_records=300, max_records=4, tail=1.5, noise=0.2, weight_spread=300.0)
@given(
    seed=st.integers(0, 2**20),
    n_records=st.integers(150, 400),
    max_records=st.sampled_from([1, 2, 4, 16]),
    tail=st.floats(0.3, 1.5),
    noise=st.floats(0.2, 1.0),
    weight_spread=st.floats(10.0, 300.0),
)
def test_newton_agrees_with_cvxpy_on_random_instances(
    seed, n_records, max_records, tail, noise, weight_spread
):
    """Also on a fresh set of examples drawn like the records: the distributions coincide."""
    shape = {
        "population_seed": seed,
        "max_records": max_records,
        "tail": tail,
        "noise": noise,
        "weight_spread": weight_spread,
    }
    records = draw_pt_records(seed, n_records, **shape)
    fresh = draw_pt_records(seed + 1, n_records, **shape)
    newton = solve_uncertainty_set(*records)
    reference = solve_uncertainty_set(*records, solver="cvxpy")
    assert_agrees_with_cvxpy(records, newton, reference, fresh.features)


@pytest.mark.parametrize("name", RECORDED)
def test_newton_agrees_with_cvxpy_on_recorded_instances(name):
    records = load_records(name)
    assert_agrees_with_cvxpy(records, solve_uncertainty_set(*records), cvxpy_reference(name))


@pytest.mark.parametrize("name", RECORDED)
def test_newton_solution_satisfies_the_kkt_conditions(name):
    records = load_records(name)
    assert kkt_violation(records, solve_uncertainty_set(*records)) <= 1e-5


@pytest.mark.parametrize("name", RECORDED)
def test_gradient_of_the_kkt_check_matches_finite_differences(name):
    records = load_records(name)
    found = solve_uncertainty_set(*records)
    gradient_c, gradient_d, magnitude_c, magnitude_d = constraint_gradient(
        records, found.c, found.d
    )
    step, scale_c, scale_d = 1e-7, max(1.0, found.c.max()), found.d.max()
    numeric_c = finite_difference_gradient(
        lambda x: uncertainty_constraint(x * scale_c, found.d, *records[:3]),
        found.c / scale_c,
        step,
    )
    numeric_d = finite_difference_gradient(
        lambda x: uncertainty_constraint(found.c, x * scale_d, *records[:3]),
        found.d / scale_d,
        step,
    )
    assert np.abs(numeric_c / scale_c - gradient_c).max() <= 1e-6 * magnitude_c.max()
    assert np.abs(numeric_d / scale_d - gradient_d).max() <= 1e-6 * magnitude_d.max()


def test_kkt_check_rejects_a_suboptimal_point():
    records = load_records(RECORDED[0])
    found = solve_uncertainty_set(*records)
    c = found.c.copy()
    c[np.argmax(c)] *= 1.01
    perturbed = UncertaintySet(c, found.d, "optimal", 0.0, "newton", 0)
    assert kkt_violation(records, perturbed) > 1e-3


def test_newton_returns_its_iterates_unclipped():
    """The dispatcher only changes units: the solver's own output is already >= 0."""
    records = load_records(RECORDED[0])
    problem = prepare_pt_problem(*records)
    raw = solve_pt_newton(problem)
    assert (raw.c >= 0).all()
    assert (raw.d >= 0).all()
    found = solve_uncertainty_set(*records)
    c, d = to_original_units(problem, raw.c, raw.d)
    np.testing.assert_array_equal(found.c, c)
    np.testing.assert_array_equal(found.d, d)


# ------------------------------------------------------------- warm start


def warm_start_pairs():
    recorded = [(load_records(a), load_records(b)) for a, b in CONSECUTIVE]
    drawn = [(draw_pt_records(seed, 2000), draw_pt_records(seed + 1, 2000)) for seed in (0, 1)]
    return recorded + drawn


@pytest.mark.parametrize("pair", range(4))
def test_warm_start_reaches_the_same_solution_in_fewer_iterations(pair):
    previous, current = warm_start_pairs()[pair]
    initial = solve_uncertainty_set(*previous)
    cold = solve_uncertainty_set(*current)
    warm = solve_uncertainty_set(*current, initial=initial)
    assert warm.solver == cold.solver == "newton"
    assert warm.iterations < cold.iterations
    assert objective(current, warm) == pytest.approx(objective(current, cold), rel=1e-10)
    assert (
        total_variation(sampling(current.features, warm), sampling(current.features, cold)) < 1e-8
    )


@pytest.mark.parametrize("name", RECORDED[:2])
def test_warm_start_at_the_solution_is_certified_at_once(name):
    r"""(PT)'s solution maps to H's minimiser :math:`d^\star/\sqrt{\langle m, d^\star\rangle}`."""
    records = load_records(name)
    problem = prepare_pt_problem(*records)
    solution = solve_pt_newton(problem)
    again = solve_pt_newton(problem, (solution.c, solution.d))
    assert again.iterations == 0
    np.testing.assert_allclose(again.d, solution.d, rtol=1e-12)


def test_homogeneous_form_has_the_optimum_of_pt():
    r"""At H's minimiser :math:`G(c, d_H) = \langle m, d_H\rangle`, the root of (PT)'s value."""
    records = load_records(RECORDED[0])
    problem = prepare_pt_problem(*records)
    solution = solve_pt_newton(problem)
    x = warm_start(problem, solution.c, solution.d)
    d_h = x[len(solution.c) :]
    pt_value = problem.objective @ solution.d
    assert homogeneous_objective(problem, x) == pytest.approx(2 * np.sqrt(pt_value), rel=1e-12)
    assert problem.objective @ d_h == pytest.approx(np.sqrt(pt_value), rel=1e-12)
    for factor in (0.9, 1.1):  # the scale of d_H minimises H along its ray
        scaled = np.concatenate([solution.c, factor * d_h])
        assert homogeneous_objective(problem, scaled) > homogeneous_objective(problem, x)


def test_gradient_and_hessian_match_finite_differences():
    records = draw_pt_records(3, 200)
    problem = prepare_pt_problem(*records)
    n_variables = 2 * problem.estimate_features.shape[1]
    x = np.random.default_rng(0).uniform(0.2, 1.0, n_variables)
    first = first_order(problem, x)
    step = 1e-6
    np.testing.assert_allclose(
        first.gradient,
        finite_difference_gradient(lambda y: homogeneous_objective(problem, y), x, step),
        rtol=1e-6,
        atol=1e-8,
    )
    hessian = hessian_block(problem, first, np.ones(n_variables, dtype=bool))
    numeric = np.column_stack(
        [
            (
                first_order(problem, x + step * e).gradient
                - first_order(problem, x - step * e).gradient
            )
            / (2 * step)
            for e in np.eye(n_variables)
        ]
    )
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-8)
    some = np.arange(n_variables) % 3 == 0
    np.testing.assert_allclose(hessian_block(problem, first, some), hessian[np.ix_(some, some)])


# ---------------------------------------------------------- identifiability


def test_identifiable_columns_drop_zero_and_merge_equal_columns():
    features = np.array([[0.0, 1.0, 1.0, 2.0, 1.0 + 1e-9, 1.0], [0.0, 2.0, 2.0, 3.0, 2.0, 1.0]])
    mean_features = np.array([1.0, 5.0, 3.0, 1.0, 4.0, 1.0])
    estimate, uncertainty = identifiable_columns(features, mean_features)
    np.testing.assert_array_equal(estimate, [1, 3, 5])
    np.testing.assert_array_equal(uncertainty, [2, 3, 5])


@pytest.mark.parametrize("solver", SOLVERS)
def test_unidentified_coefficients_are_zero_in_both_solvers(solver):
    """Every example has at most 4 norms: windows 4, 8 and 16 coincide in every record."""
    records = draw_pt_records(5, 300, max_records=4)
    records.features[:, 6] = 0.0
    estimate, uncertainty = identifiable_columns(records.features, records.mean_features)
    assert len(estimate) == len(uncertainty) < records.features.shape[1] - 3
    found = solve_uncertainty_set(*records, solver=solver)
    assert not np.delete(found.c, estimate).any()
    assert not np.delete(found.d, uncertainty).any()


# ------------------------------------------------------------ failures


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("argument", PTRecords._fields)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_records_raise_a_solver_error(solver, argument, value):
    records = draw_pt_records(0, 50)
    getattr(records, argument).flat[7 % getattr(records, argument).size] = value
    with pytest.raises(SolverError, match="NaN or infinite"):
        solve_uncertainty_set(*records, solver=solver)


def test_uncertified_newton_solve_falls_back_to_cvxpy():
    name = RECORDED[0]
    records = load_records(name)
    problem = prepare_pt_problem(*records)
    with pytest.raises(NewtonCertificationError, match="in 1 iterations"):
        solve_pt_newton(problem, max_iterations=1)
    found = solve_uncertainty_set(*records, max_newton_iterations=1)
    assert found.solver == "cvxpy"
    assert "in 1 iterations" in found.fallback_reason
    assert found.status == "optimal"
    assert objective(records, found) == pytest.approx(objective(records, cvxpy_reference(name)))


def test_records_outside_the_domain_of_h_fall_back_to_cvxpy():
    """A record without features and with zero norm: 0/0 in G, which the cones accept."""
    records = draw_pt_records(0, 100)
    records.features[0] = 0.0
    records.norms[0] = 0.0
    with pytest.raises(NewtonCertificationError, match="no finite point"):
        solve_pt_newton(prepare_pt_problem(*records))
    found = solve_uncertainty_set(*records)
    assert found.solver == "cvxpy"
    assert "no finite point" in found.fallback_reason


def test_requested_cvxpy_has_no_fallback_reason():
    records = draw_pt_records(0, 100)
    found = solve_uncertainty_set(*records, solver="cvxpy")
    assert (found.solver, found.fallback_reason) == ("cvxpy", None)
    assert found.iterations > 0


def test_check_conic_solver_names_the_installed_ones():
    check_conic_solver("CLARABEL")
    with pytest.raises(ValueError, match=r"installed ones: .*CLARABEL"):
        check_conic_solver("OSQP")  # installed, but no cones


def test_unknown_solver_is_a_value_error():
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_uncertainty_set(*draw_pt_records(0, 20), solver="CLARABEL")


def test_units_round_trip():
    records = draw_pt_records(0, 100)
    problem = prepare_pt_problem(*records)
    rng = np.random.default_rng(0)
    c, d = rng.uniform(0, 1, (2, len(problem.estimate_columns)))
    np.testing.assert_allclose(
        to_problem_units(problem, *to_original_units(problem, c, d)), (c, d)
    )
