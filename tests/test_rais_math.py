"""RAIS mathematics, each piece against an independent computation (no skorch)."""

from __future__ import annotations

import itertools
import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional

from sk_reweight._data import TensorDataset
from sk_reweight._engine import weighted_mean_loss
from sk_reweight._policies import TrainingStep
from sk_reweight._rais._gain import (
    GainRatioEstimator,
    exact_gain_ratio,
    expected_squared_norm,
    nominal_batch_moment,
)
from sk_reweight._rais._history import (
    FEATURE_NAMES,
    HISTORY_LENGTH,
    NormHistory,
    RecentRecords,
    norm_history_features,
    prepend_in_order,
)
from sk_reweight._rais._norms import GradientProbe, exact_gradients, logit_gradients
from sk_reweight._rais._policy import REFRESH_INTERVAL, RAISPolicy
from sk_reweight._rais._sampling import SamplingTable
from sk_reweight._rais._sampling_state import SamplingState
from sk_reweight._rais._uncertainty import (
    SOLVERS,
    SolverError,
    UncertaintySet,
    outlier_bound,
    outlier_scale,
    robust_scores,
    solve_uncertainty_set,
    uncertainty_constraint,
)

# ---------------------------------------------------------------- features


def naive_features(recorded: list[float]) -> list[float]:
    """Section 6's features of one example, from the plain list of its recorded norms."""
    values = []
    for window in (1, 2, 4, 8, 16):
        last = recorded[-window:]
        values.append(np.mean(last) if last else 0.0)
    spreads = [np.var(recorded[-w:]) if recorded else 0.0 for w in (4, 8, 16)]
    return values + spreads + list(np.sqrt(spreads)) + [1.0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.floats(0, 50, width=32), max_size=40), min_size=1, max_size=6))
@example([[39.75, 39.734375]])  # nearly equal norms: E[x^2] - E[x]^2 cancels in float32
def test_features_match_a_naive_per_example_computation(recordings):
    history = NormHistory(len(recordings), torch.device("cpu"))
    for step in range(max(map(len, recordings), default=0)):
        drawn = [i for i, norms in enumerate(recordings) if step < len(norms)]
        if drawn:
            norms = torch.tensor([recordings[i][step] for i in drawn])
            history.record(
                torch.tensor(drawn), norms, torch.zeros(len(drawn), dtype=torch.long), 1
            )
    expected = np.array([naive_features(norms) for norms in recordings])
    np.testing.assert_allclose(history.features.numpy(), expected, rtol=1e-4, atol=1e-3)
    assert history.features.shape[1] == len(FEATURE_NAMES)


def test_features_are_non_negative_and_bias_is_one():
    counts = torch.randint(0, 30, (20,))
    history = torch.rand(20, HISTORY_LENGTH) * 5 * (torch.arange(HISTORY_LENGTH) < counts[:, None])
    features = norm_history_features(history, counts)
    assert (features >= 0).all()
    assert (features[:, FEATURE_NAMES.index("bias")] == 1).all()


def test_duplicate_draws_are_recorded_once():
    history = NormHistory(3, torch.device("cpu"))
    history.record(
        torch.tensor([1, 1, 2]), torch.tensor([4.0, 5.0, 2.0]), torch.zeros(3, dtype=torch.long), 1
    )
    assert history.counts.tolist() == [0, 1, 1]
    assert history.features[1, 0] == 4.0


def sequential_prepends(history, counts, minibatches):
    """The reference: one minibatch after another, each example once per minibatch."""
    history, counts = history.clone(), counts.clone()
    for examples, norms in minibatches:
        seen = set()
        for drawn, norm in zip(examples.tolist(), norms.tolist(), strict=True):
            if drawn not in seen:
                seen.add(drawn)
                history[drawn] = torch.cat(
                    [torch.tensor([norm], dtype=history.dtype), history[drawn, :-1]]
                )
                counts[drawn] += 1
    return history, counts


@settings(max_examples=60, deadline=None)
@given(
    n_examples=st.integers(1, 6),
    n_steps=st.integers(1, 5),
    batch_size=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_prepending_a_block_in_one_pass_equals_step_by_step(n_examples, n_steps, batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    history = torch.rand(n_examples, HISTORY_LENGTH, generator=generator, dtype=torch.float64)
    counts = torch.randint(0, 20, (n_examples,), generator=generator)
    examples = torch.randint(0, n_examples, (n_steps * batch_size,), generator=generator)
    norms = torch.rand(n_steps * batch_size, generator=generator, dtype=torch.float64)
    steps = torch.arange(n_steps).repeat_interleave(batch_size)
    rows, new_history, new_counts = prepend_in_order(
        history, counts, examples, norms, steps, n_steps
    )
    expected_history, expected_counts = sequential_prepends(
        history, counts, zip(examples.split(batch_size), norms.split(batch_size), strict=True)
    )
    torch.testing.assert_close(new_history, expected_history[rows])
    assert torch.equal(new_counts, expected_counts[rows])
    assert set(rows.tolist()) == set(examples.tolist())


def test_recent_records_keep_the_newest_in_a_ring():
    records = RecentRecords(capacity=5, n_features=2, device=torch.device("cpu"))
    for start in range(0, 12, 3):
        norms = torch.arange(start, start + 3, dtype=torch.float32)
        records.add(torch.stack([norms, norms], 1), norms, torch.ones(3))
    features, norms, _ = records.snapshot()
    assert sorted(norms) == [7, 8, 9, 10, 11]
    np.testing.assert_array_equal(features[:, 0], norms)


# ----------------------------------------------------- uncertainty set (PT)


def random_problem(seed, n=40, n_features=4):
    rng = np.random.default_rng(seed)
    features = np.column_stack([rng.uniform(0.1, 3, (n, n_features - 1)), np.ones(n)])
    c = rng.uniform(0, 1, n_features)
    d = rng.uniform(0.05, 1, n_features)
    return features, c, d


@pytest.mark.parametrize("seed", range(5))
def test_closed_form_robust_scores_solve_the_robust_counterpart(seed):
    """Proposition 4.1 against cvxpy's solution of (PRC'): max sum(v) over the ellipsoid."""
    features, c, d = random_problem(seed)
    n = len(features)
    estimate, uncertainty = features @ c, features @ d
    v = cp.Variable(n, nonneg=True)
    constraint = cp.sum(cp.multiply(1 / uncertainty, cp.square(estimate - v))) <= n
    cp.Problem(cp.Maximize(cp.sum(v)), [constraint]).solve(solver="CLARABEL")
    closed_form = robust_scores(torch.tensor(features @ c), torch.tensor(features @ d))
    np.testing.assert_allclose(closed_form.numpy(), v.value, rtol=2e-4)
    assert closed_form.sum().item() == pytest.approx(v.value.sum(), rel=1e-6)


def pt_records(seed, n=300):
    rng = np.random.default_rng(seed)
    history = torch.tensor(rng.lognormal(0, 0.7, (n, 1)) * rng.lognormal(0, 0.3, (n, 16)))
    features = norm_history_features(history.float(), torch.full((n,), 16)).double().numpy()
    norms = features[:, 0] * rng.lognormal(0, 0.4, n)
    weights = rng.uniform(0.5, 2, n)
    return features, norms, weights


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("seed", range(3))
def test_pt_solution_is_optimal_with_an_active_constraint(seed, solver):
    features, norms, weights = pt_records(seed)
    mean_features = features.mean(axis=0)
    solution = solve_uncertainty_set(features, norms, weights, mean_features, solver=solver)
    assert solution.status == "optimal"
    assert solution.solver == solver
    assert uncertainty_constraint(
        solution.c, solution.d, features, norms, weights
    ) == pytest.approx(1.0, abs=1e-4)
    optimum = mean_features @ solution.d
    rng = np.random.default_rng(seed)
    n_feasible = 0
    for _ in range(300):
        c = np.clip(solution.c + rng.normal(0, 0.05, solution.c.shape) * solution.c.max(), 0, None)
        d = np.clip(solution.d + rng.normal(0, 0.05, solution.d.shape) * solution.d.max(), 0, None)
        if (features @ d <= 0).any():
            continue
        if uncertainty_constraint(c, d, features, norms, weights) <= 1:
            n_feasible += 1
            assert mean_features @ d >= optimum * (1 - 1e-4)
    assert n_feasible > 10


@pytest.mark.parametrize("solver", SOLVERS)
def test_pt_solution_scales_with_the_norms(solver):
    """c scales like the norms and d like their square: the rescaling inside is exact."""
    features, norms, weights = pt_records(7)
    features_scaled = features.copy()
    features_scaled[:, :-1] *= 1e-3
    base = solve_uncertainty_set(features, norms, weights, features.mean(0), solver=solver)
    scaled = solve_uncertainty_set(
        features_scaled, norms * 1e-3, weights, features_scaled.mean(0), solver=solver
    )
    np.testing.assert_allclose(
        features_scaled @ scaled.c, 1e-3 * (features @ base.c), rtol=1e-3, atol=1e-9
    )
    np.testing.assert_allclose(
        features_scaled @ scaled.d, 1e-6 * (features @ base.d), rtol=1e-3, atol=1e-12
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_pt_fixes_coefficients_of_features_absent_from_every_record(solver):
    features, norms, weights = pt_records(3)
    features[:, 5] = 0.0
    mean_features = features.mean(axis=0)
    mean_features[5] = 2.0  # the feature is present in the training set now
    solution = solve_uncertainty_set(features, norms, weights, mean_features, solver=solver)
    assert solution.c[5] == pytest.approx(0, abs=1e-9)
    assert solution.d[5] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_pt_solver_failure_is_a_solver_error(solver):
    features, norms, weights = pt_records(0)
    with pytest.raises(SolverError, match="NaN"):
        solve_uncertainty_set(features, norms * np.nan, weights, features.mean(0), solver=solver)


def test_outliers_are_capped_at_the_threshold():
    features = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    c, d = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.01])
    norms = torch.tensor([1.05, 50.0, 0.0])
    scale = outlier_scale(norms, outlier_bound(features @ c, features @ d, threshold=100.0))
    capped = norms * scale
    q = (features @ c - capped) ** 2 / (features @ d)
    assert scale[0] == 1
    assert scale[2] == 1
    assert q[1].item() == pytest.approx(100.0, rel=1e-5)


# ----------------------------------------------------------------- sampling


def test_sampling_table_draws_follow_p_and_weights_are_inverse_probabilities():
    scores = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.5, 0.0])
    table = SamplingTable(scores)
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([table.draw(64, generator) for _ in range(300)])
    counts = np.bincount(draws.numpy(), minlength=len(scores))
    assert counts[-1] == 0  # a zero score is never drawn
    probabilities = (scores / scores.sum()).numpy()
    _, p_value = stats.chisquare(counts[:-1], probabilities[:-1] * len(draws))
    assert p_value > 1e-3
    np.testing.assert_allclose(table.weights[:-1].numpy(), 1 / (len(scores) * probabilities[:-1]))


def test_sampling_state_is_the_closed_form_of_its_set_after_every_refresh():
    """Refreshed rows only, the state equals the one built from scratch; the old one stays."""
    generator = torch.Generator().manual_seed(0)
    n, n_features, tau = 50, len(FEATURE_NAMES), 4.0
    features = torch.rand(n, n_features, generator=generator)
    found = UncertaintySet(
        np.linspace(0.1, 1, n_features), np.linspace(1, 0, n_features), "optimal", 0.0, "newton", 1
    )
    state = SamplingState.from_set(found, features, tau)
    before = state.projections.clone()
    rows = torch.tensor([3, 7, 7, 20])
    features[rows] = torch.rand(len(rows), n_features, generator=generator)
    refreshed = state.refreshed(rows, features[rows])
    torch.testing.assert_close(state.projections, before, rtol=0, atol=0)  # immutable
    scratch = SamplingState.from_set(found, features, tau)
    for key in ("coefficients", "projections", "bounds"):
        torch.testing.assert_close(getattr(refreshed, key), getattr(scratch, key))
    torch.testing.assert_close(refreshed.table.cumulative, scratch.table.cumulative)
    c, d = (torch.as_tensor(v, dtype=torch.float32) for v in (found.c, found.d))
    direct = robust_scores(features @ c, features @ d)
    torch.testing.assert_close(refreshed.probabilities(), direct / direct.sum())
    torch.testing.assert_close(refreshed.bounds, outlier_bound(features @ c, features @ d, tau))
    with pytest.raises(AttributeError):
        refreshed.projections = before  # frozen: present as a whole, or absent
    saved = SamplingState.from_state_dict(refreshed.state_dict(), n, torch.device("cpu"), tau)
    torch.testing.assert_close(saved.table.cumulative, refreshed.table.cumulative, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"sampling\.projections has shape \(2, 50\)"):
        SamplingState.from_state_dict(refreshed.state_dict(), n + 1, torch.device("cpu"), tau)


def test_nominal_batch_moment_is_unbiased_for_the_nominal_size():
    """Exact expectation over all minibatches of 2 (with replacement) against eq. 5 for M = 5."""
    generator = torch.Generator().manual_seed(3)
    gradients = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    probabilities = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    weights = 1 / (4 * probabilities)
    expectation = 0.0
    for pair in itertools.product(range(4), repeat=2):
        drawn = torch.tensor(pair)
        chance = probabilities[drawn].prod()
        batch = (weights[drawn, None] * gradients[drawn]).mean(0).square().sum()
        sampled_single = (weights[drawn] ** 2 * gradients[drawn].norm(dim=1) ** 2).mean()
        expectation += chance * nominal_batch_moment(batch, sampled_single, 2, 5)
    exact = expected_squared_norm(
        gradients.norm(dim=1), probabilities, gradients.mean(0).square().sum().item(), 5
    )
    assert expectation.item() == pytest.approx(exact)


def test_block_updates_of_the_gain_estimate_equal_step_by_step_updates():
    generator = torch.Generator().manual_seed(2)
    norms, weights = torch.rand(7, 5, generator=generator), torch.rand(7, 5, generator=generator)
    squared = torch.rand(7, generator=generator)
    stepwise, blockwise = (GainRatioEstimator(0.1, 5, "cpu") for _ in range(2))
    for k in range(7):
        stepwise.update(norms[k], weights[k], squared[k])
    blockwise.update(norms[:4], weights[:4], squared[:4])
    blockwise.update(norms[4:], weights[4:], squared[4:])
    torch.testing.assert_close(blockwise._moments, stepwise._moments)
    assert blockwise.ratio == pytest.approx(stepwise.ratio)


def tiny_problem(n=5, n_features=3, n_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n_features, generator=generator)
    y = torch.randint(0, n_classes, (n,), generator=generator)
    sample_weight = torch.rand(n, generator=generator) + 0.2
    module = nn.Linear(n_features, n_classes)
    with torch.no_grad():
        module.weight.copy_(torch.randn(n_classes, n_features, generator=generator))
    return X, y, sample_weight, module


def step_gradient(policy, module, X, y, sample_weight, indices):
    """The gradient of the engine's objective for one drawn minibatch."""
    module.zero_grad()
    logits = module(X[indices])
    losses = functional.cross_entropy(logits, y[indices], reduction="none")
    step = TrainingStep(
        X[indices], y[indices], indices, sample_weight[indices], logits, losses.detach()
    )
    weights = policy.loss_weights(step)
    weighted_mean_loss(losses, sample_weight[indices], weights).backward()
    return torch.cat([p.grad.flatten() for p in module.parameters()])


@pytest.mark.parametrize("batch_size", [1, 2])
def test_importance_weights_make_the_gradient_unbiased(batch_size):
    """The exact expectation over every possible minibatch equals the full weighted gradient."""
    X, y, sample_weight, module = tiny_problem()
    n = len(X)
    policy = RAISPolicy(grad_norm="logits", outlier_threshold=1e9)
    policy.reset(n, torch.Generator().manual_seed(0), torch.device("cpu"))
    policy.begin_training(module, TensorDataset(X, y, sample_weight))
    policy._gain = GainRatioEstimator(0.01, batch_size, torch.device("cpu"))
    probabilities = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
    # Sampling from p, with infinite outlier bounds (no outliers).
    projections = torch.stack([probabilities, torch.ones(n)])
    policy._sampling = SamplingState.of(torch.zeros(2, len(FEATURE_NAMES)), projections, math.inf)
    assert torch.isinf(policy._sampling.bounds).all()
    expected_gradient = 0
    for batch in itertools.product(range(n), repeat=batch_size):
        indices = torch.tensor(batch)
        policy._batch_weights = 1.0 / (n * probabilities[indices])
        chance = probabilities[indices].prod()
        expected_gradient = expected_gradient + chance * step_gradient(
            policy, module, X, y, sample_weight, indices
        )
    module.zero_grad()
    losses = functional.cross_entropy(module(X), y, reduction="none")
    weighted_mean_loss(losses, sample_weight).backward()
    full = torch.cat([p.grad.flatten() for p in module.parameters()])
    torch.testing.assert_close(expected_gradient, full, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- gain ratio


def test_expected_squared_norm_matches_enumeration():
    """Eq. 5 against the exact expectation over all minibatches of size 2."""
    generator = torch.Generator().manual_seed(1)
    gradients = torch.randn(4, 3, generator=generator)
    probabilities = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n, batch_size = 4, 2
    exact = 0.0
    for batch in itertools.product(range(n), repeat=batch_size):
        g = sum(gradients[i] / (n * probabilities[i]) for i in batch) / batch_size
        exact += probabilities[list(batch)].prod().item() * g.square().sum().item()
    mean_sq = gradients.mean(0).square().sum().item()
    formula = expected_squared_norm(gradients.norm(dim=1), probabilities, mean_sq, batch_size)
    assert formula == pytest.approx(exact, rel=1e-5)


def test_gain_ratio_estimator_converges_to_the_exact_ratio():
    generator = torch.Generator().manual_seed(0)
    n, batch_size = 200, 8
    scale = torch.rand(n, generator=generator) ** 3 * 10 + 0.01
    gradients = torch.randn(n, 5, generator=generator, dtype=torch.float64) * scale[:, None]
    gradients += 0.3
    norms = gradients.norm(dim=1)
    probabilities = norms / norms.sum()
    truth = exact_gain_ratio(
        norms, probabilities, gradients.mean(0).square().sum().item(), batch_size
    )
    assert truth > 1.5
    estimator = GainRatioEstimator(alpha=0.002, batch_size=batch_size, device="cpu")
    for _ in range(6000):
        drawn = SamplingTable(probabilities).draw(batch_size, generator)
        weights = 1.0 / (n * probabilities[drawn])
        batch_gradient = (weights[:, None] * gradients[drawn]).mean(0)
        estimator.update(norms[drawn], weights, batch_gradient.square().sum())
    assert estimator.ratio == pytest.approx(truth, rel=0.1)


def test_gain_ratio_is_one_under_uniform_sampling_and_clipped():
    estimator = GainRatioEstimator(alpha=0.1, batch_size=4, device="cpu")
    assert estimator.ratio == 1.0
    estimator.update(torch.tensor([1.0, 1.0]), torch.ones(2), torch.tensor(1.0))
    assert estimator.ratio == pytest.approx(1.0)
    # A one-example minibatch says nothing about the mean gradient: left out.
    estimator.update(torch.tensor([1e3]), torch.tensor([1e-3]), torch.tensor(1e-9))
    assert estimator.ratio == pytest.approx(1.0)
    estimator.update(torch.full((2,), 1e3), torch.full((2,), 1e-3), torch.tensor(0.5001))
    assert estimator.ratio == 4.0


# ------------------------------------------------------ per-example norms


def two_layer(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def torch_func_gradients(module, X, y, names):
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(params, x, target):
        out = functional_call(module, params, (x.unsqueeze(0),))
        return functional.cross_entropy(out, target.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([grads[name].flatten(1) for name in names], dim=1)


def test_last_layer_norms_equal_torch_func_last_layer_norms():
    module = two_layer()
    X, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    probe = GradientProbe("last_layer", module)
    logits = module(X)
    gradients = probe.gradients(X, logits, y)
    reference = torch_func_gradients(module, X, y, ["2.weight", "2.bias"])
    torch.testing.assert_close(gradients.norms, reference.norm(dim=1))
    coefficients = torch.rand(10)
    batch = gradients.weighted_sum(coefficients)
    expected = coefficients @ reference
    torch.testing.assert_close(batch[:, :-1].flatten(), expected[:18])
    torch.testing.assert_close(batch[:, -1], expected[18:])
    probe.release()
    assert not module[2]._forward_hooks


def test_logit_norms_are_the_output_bias_gradients():
    module = two_layer(1)
    X, y = torch.randn(7, 4), torch.randint(0, 3, (7,))
    delta = logit_gradients(module(X), y)
    reference = torch_func_gradients(module, X, y, ["2.bias"])
    torch.testing.assert_close(delta, reference)


def test_exact_gradients_match_autograd_per_example():
    module = two_layer(2)
    X, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    gradients = exact_gradients(module, X, y).rows
    for i in range(5):
        module.zero_grad()
        functional.cross_entropy(module(X[i : i + 1]), y[i : i + 1]).backward()
        expected = torch.cat([p.grad.flatten() for p in module.parameters()])
        torch.testing.assert_close(gradients[i], expected)


def test_last_layer_probe_rejects_modules_with_a_transformed_output():
    module = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    probe = GradientProbe("last_layer", module)
    X = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"last nn\.Linear"):
        probe.gradients(X, module(X), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        GradientProbe("last_layer", nn.Sequential(nn.Flatten()))


def test_diverged_training_stops_sampling_with_a_clear_error():
    """Non-finite gradient norms end training at the next gain read, naming the cause."""
    X, y, sample_weight, module = tiny_problem(n=4 * REFRESH_INTERVAL + 2)
    with torch.no_grad():
        module.weight.fill_(float("inf"))
    policy = RAISPolicy(grad_norm="logits")
    policy.reset(len(X), torch.Generator().manual_seed(0), torch.device("cpu"))
    policy.begin_training(module, TensorDataset(X, y, sample_weight))
    steps = []

    def train() -> None:
        for indices in policy.epoch_batches(2):
            logits = module(X[indices])
            losses = functional.cross_entropy(logits, y[indices], reduction="none")
            policy.loss_weights(
                TrainingStep(
                    X[indices], y[indices], indices, sample_weight[indices], logits, losses
                )
            )
            steps.append(indices)

    with pytest.raises(FloatingPointError, match="training diverged"):
        train()
    assert len(steps) == REFRESH_INTERVAL  # found at the end of the first bookkeeping block
