"""The RGD weighting function, against an independent NumPy computation and its DRO meaning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sk_reweight import rgd_weights

losses_strategy = arrays(
    np.float64, st.integers(1, 64), elements=st.floats(0, 50, allow_nan=False, width=32)
)
tau_strategy = st.floats(0.05, 20)


def reference_weights(losses: np.ndarray, tau: float) -> np.ndarray:
    """The paper's formula written directly in NumPy."""
    return np.exp(np.minimum(losses, tau) / (tau + 1))


@given(losses=losses_strategy, tau=tau_strategy)
def test_matches_paper_formula(losses, tau):
    weights = rgd_weights(torch.tensor(losses), tau)
    np.testing.assert_allclose(weights.numpy(), reference_weights(losses, tau), rtol=1e-12)


@given(losses=losses_strategy, tau=tau_strategy)
def test_weights_are_bounded_and_monotone(losses, tau):
    weights = rgd_weights(torch.tensor(losses), tau).numpy()
    assert np.all(weights >= 1.0)
    assert np.all(weights <= math.exp(tau / (tau + 1)) * (1 + 1e-12))
    order = np.argsort(losses, kind="stable")
    assert np.all(np.diff(weights[order]) >= 0)


@given(losses=losses_strategy, tau=tau_strategy)
def test_losses_beyond_tau_share_the_cap(losses, tau):
    weights = rgd_weights(torch.tensor(losses), tau).numpy()
    np.testing.assert_allclose(weights[losses >= tau], math.exp(tau / (tau + 1)), rtol=1e-12)


@settings(max_examples=50)
@given(losses=losses_strategy, tau=tau_strategy, data=st.data())
def test_normalized_weights_are_the_clipped_kl_dro_distribution(losses, tau, data):
    """Normalised weights are n * softmax(min(l, tau) / (tau + 1)): the KL-DRO optimum times n."""
    sample_weight = data.draw(
        arrays(np.float64, losses.shape, elements=st.floats(0.1, 5, allow_nan=False))
    )
    losses_t, sample_weight_t = torch.tensor(losses), torch.tensor(sample_weight)
    weights = rgd_weights(losses_t, tau, normalize=True)
    softmax = torch.softmax(losses_t.clamp(max=tau) / (tau + 1), dim=0)
    np.testing.assert_allclose(weights.numpy(), len(losses) * softmax.numpy(), rtol=1e-9)
    assert weights.mean().item() == pytest.approx(1.0, rel=1e-12)

    weighted = rgd_weights(losses_t, tau, normalize=True, sample_weight=sample_weight_t)
    weighted_mean = (sample_weight_t * weighted).sum() / sample_weight_t.sum()
    assert weighted_mean.item() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(
        (weighted / weights).numpy(), (weighted / weights)[0].item(), rtol=1e-9
    )


def test_weights_carry_no_gradient():
    losses = torch.tensor([0.1, 2.0, 5.0], requires_grad=True)
    weights = rgd_weights(losses, 1.0)
    assert not weights.requires_grad
    (weights * losses).sum().backward()
    np.testing.assert_allclose(losses.grad.numpy(), weights.numpy())


def test_input_losses_are_not_modified():
    losses = torch.tensor([0.5, 3.0])
    rgd_weights(losses, 1.0)
    np.testing.assert_array_equal(losses.numpy(), np.array([0.5, 3.0], dtype=np.float32))


def test_kl_dro_gradient_is_the_normalised_weighted_gradient():
    """Danskin: grad of tau' * log mean exp(l / tau') = sum_i softmax_i grad l_i (no clipping)."""
    torch.manual_seed(0)
    theta = torch.randn(3, requires_grad=True)
    features = torch.randn(8, 3)
    tau = 1e6  # clipping never active; temperature tau + 1

    def per_example_losses():
        return torch.nn.functional.softplus(features @ theta)

    temperature = tau + 1
    dro = temperature * torch.logsumexp(per_example_losses() / temperature, 0)
    (grad_dro,) = torch.autograd.grad(dro, theta)
    losses = per_example_losses()
    weights = rgd_weights(losses, tau, normalize=True)
    (grad_rgd,) = torch.autograd.grad((weights * losses).mean(), theta)
    np.testing.assert_allclose(grad_rgd.numpy(), grad_dro.numpy(), rtol=1e-5)
