"""Weighted batch normalisation: the fused autograd function against the reference formula,
torch's batch norm and repeated examples; the layer in training, evaluation and autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional

from sk_reweight import RAISClassifier
from sk_reweight._batchnorm import (
    WeightedBatchNorm2d,
    example_weights,
    fused_weighted_batch_norm,
    weighted_batch_norm,
)

IMPLEMENTATIONS = [weighted_batch_norm, fused_weighted_batch_norm]
MOMENTUM, EPS = 0.1, 1e-5


def forward_and_gradients(implementation, X, example_weight, gamma, beta, grad_out, running):
    """Output, gradients of (X, gamma, beta) for the output gradient ``grad_out``."""
    X, gamma, beta = (t.detach().clone().requires_grad_() for t in (X, gamma, beta))
    out = implementation(X, example_weight, *running, gamma, beta, MOMENTUM, EPS)
    return (out, *torch.autograd.grad(out, (X, gamma, beta), grad_out))


def problem(seed, shape, mean, scale, weight_kind, dtype=torch.float32):
    """Inputs of a weighted batch norm: X with a channel mean ``mean`` and spread ``scale``."""
    generator = torch.Generator().manual_seed(seed)
    n, channels = shape[:2]
    channel_shape = (1, channels) + (1,) * (len(shape) - 2)
    X = mean * (1 + torch.rand(channel_shape, generator=generator))
    X = X + scale * torch.randn(shape, generator=generator, dtype=torch.float64)
    if weight_kind == "positive":
        example_weight = 0.1 + 5 * torch.rand(n, generator=generator, dtype=torch.float64)
    elif weight_kind == "with zeros":
        example_weight = torch.randint(0, 3, (n,), generator=generator).double()
        example_weight[0] = 1.0
    else:  # one nonzero weight
        example_weight = torch.zeros(n, dtype=torch.float64)
        example_weight[n // 2] = 2.5
    gamma = 1 + torch.randn(channels, generator=generator, dtype=torch.float64)
    beta = torch.randn(channels, generator=generator, dtype=torch.float64)
    grad_out = torch.randn(shape, generator=generator, dtype=torch.float64)
    return [t.to(dtype) for t in (X, example_weight, gamma, beta, grad_out)]


shapes = st.tuples(
    st.integers(1, 6), st.integers(1, 3), st.lists(st.integers(1, 5), max_size=3)
).map(lambda t: (t[0], t[1], *t[2]))


def round_off_scales(X, example_weight, gamma, grad_out):
    """The size of the terms each result is computed from (in float64), and the condition
    number max |mean| / std of the centring: float32 round-off is relative to the terms,
    not to the result, which may cancel to zero, and the mean's own round-off (relative to
    the mean) reaches the normalised values multiplied by the condition number."""
    reduce = [0, *range(2, X.dim())]
    shape = [1, -1] + [1] * (X.dim() - 2)
    share = example_weight.reshape(-1, *[1] * (X.dim() - 1)) / example_weight.sum()
    mean = (share * X).sum(reduce) / X[0, 0].numel()
    centred = X - mean.reshape(shape)
    inv_std = ((share * centred.square()).sum(reduce) / X[0, 0].numel() + EPS).rsqrt()
    normalised = centred * inv_std.reshape(shape)
    condition = (mean.abs() * inv_std).max().item()
    return condition, {
        "output": (normalised.abs().max() * gamma.abs().max()).item(),
        "grad X": (grad_out.abs().max() * (gamma.abs() * inv_std).max()).item(),
        "grad gamma": (grad_out * normalised).abs().sum(reduce).max().item(),
        "grad beta": grad_out.abs().sum(reduce).max().item(),
        "running mean": 0.0,
        "running var": 0.0,
    }


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    shape=shapes,
    mean=st.sampled_from([0.0, 3.0, 1e3]),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
    weight_kind=st.sampled_from(["positive", "with zeros", "one nonzero"]),
)
@example(seed=0, shape=(6, 2, 5, 5), mean=1e3, scale=1e-2, weight_kind="positive")
@example(seed=0, shape=(8, 2, 6, 6), mean=1e3, scale=1.0, weight_kind="positive")
@example(seed=0, shape=(1, 1), mean=0.0, scale=1e-2, weight_kind="with zeros")
def test_fused_equals_the_reference_formula_to_float32_round_off(
    seed, shape, mean, scale, weight_kind
):
    """Output, the three gradients and the running statistics: the fused function's float32
    error (against the formula in float64) is at most that of the formula run in float32,
    up to a small factor, or a few hundred units in the last place of the terms it sums
    (times the condition number): both centre before squaring, so large means cost both
    alike (the variance as E[x^2] - mean^2 fails this test at mean 1e3)."""
    inputs = problem(seed, shape, mean, scale, weight_kind, torch.float64)
    channels = shape[1]
    truth_running = (torch.zeros(channels, dtype=torch.float64), torch.ones(channels).double())
    truth = forward_and_gradients(weighted_batch_norm, *inputs, truth_running)
    condition, scales = round_off_scales(*inputs[:3], inputs[4])
    single = [t.float() for t in inputs]
    results = {}
    for implementation in IMPLEMENTATIONS:
        running = (torch.zeros(channels), torch.ones(channels))
        values = forward_and_gradients(implementation, *single, running)
        results[implementation.__name__] = [*values, *running]
    for (name, scale_of_terms), reference, fused, exact in zip(
        scales.items(),
        results["weighted_batch_norm"],
        results["fused_weighted_batch_norm"],
        [*truth, *truth_running],
        strict=True,
    ):
        magnitude = exact.abs().max().item()
        reference_error = (reference.double() - exact).abs().max().item()
        fused_error = (fused.double() - exact).abs().max().item()
        assert fused.dtype == torch.float32
        terms = max(magnitude, scale_of_terms) + 1e-3
        tolerance = 4 * reference_error + 2e-5 * terms + 1e-6 * condition * terms
        assert fused_error <= tolerance, name


def test_gradcheck_in_float64():
    X, example_weight, gamma, beta, _ = problem(3, (5, 3, 4, 2), 2.0, 1.0, "with zeros")
    inputs = [t.double().requires_grad_() for t in (X, gamma, beta)]

    def function(X, gamma, beta):
        return fused_weighted_batch_norm(
            X, example_weight.double(), None, None, gamma, beta, MOMENTUM, EPS
        )

    assert torch.autograd.gradcheck(function, inputs)
    X1d = X.double().reshape(5, 3, 8).requires_grad_()
    assert torch.autograd.gradcheck(lambda X: function(X, *inputs[1:]), [X1d])


def test_second_derivatives_are_refused():
    X, example_weight, gamma, beta, _ = problem(3, (5, 3, 4), 0.0, 1.0, "positive")
    X.requires_grad_()
    out = fused_weighted_batch_norm(X, example_weight, None, None, gamma, beta, MOMENTUM, EPS)
    (grad,) = torch.autograd.grad(out.square().sum(), X, create_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        grad.sum().backward()


def test_gradcheck_without_affine_parameters():
    X, example_weight, *_ = problem(4, (4, 2, 3), 0.0, 1.0, "positive", torch.float64)

    def function(X):
        return fused_weighted_batch_norm(X, example_weight, None, None, None, None, 0.1, EPS)

    assert torch.autograd.gradcheck(function, [X.requires_grad_()])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", [(6, 2, 3, 3), (16, 4, 7), (5, 3), (4, 2, 3, 2, 2)])
def test_equal_weights_are_torch_batch_norm(implementation, shape):
    X, _, gamma, beta, grad_out = problem(5, shape, 1.0, 2.0, "positive")
    running, expected_running = ((torch.zeros(shape[1]), torch.ones(shape[1])) for _ in range(2))
    out = forward_and_gradients(
        implementation, X, torch.full((shape[0],), 0.3), gamma, beta, grad_out, running
    )

    def native(X, _, running_mean, running_var, gamma, beta, momentum, eps):
        return functional.batch_norm(
            X, running_mean, running_var, gamma, beta, True, momentum, eps
        )

    expected = forward_and_gradients(native, X, None, gamma, beta, grad_out, expected_running)
    for value, reference in zip([*out, *running], [*expected, *expected_running], strict=True):
        torch.testing.assert_close(value, reference, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_integer_weights_are_the_batch_with_examples_repeated(implementation):
    """Output, running mean and gradients: weighting example i by w_i (statistics and
    loss) is training on the batch in which example i appears w_i times."""
    X, _, gamma, beta, grad_out = problem(6, (5, 3, 4, 4), 0.5, 1.0, "positive")
    repeats = torch.tensor([1, 3, 0, 2, 1])
    running, repeated_running = ((torch.zeros(3), torch.ones(3)) for _ in range(2))
    weighted_grad_out = grad_out * repeats.float().reshape(-1, 1, 1, 1)
    out = forward_and_gradients(
        implementation, X, repeats.float(), gamma, beta, weighted_grad_out, running
    )

    def repeated_batch_norm(X, _, running_mean, running_var, gamma, beta, momentum, eps):
        repeated = X.repeat_interleave(repeats, dim=0)
        return functional.batch_norm(
            repeated, running_mean, running_var, gamma, beta, True, momentum, eps
        )

    expected = forward_and_gradients(
        repeated_batch_norm,
        X,
        None,
        gamma,
        beta,
        grad_out.repeat_interleave(repeats, dim=0),
        repeated_running,
    )
    first_copies = torch.cumsum(repeats, 0) - repeats
    kept = repeats > 0
    torch.testing.assert_close(out[0][kept], expected[0][first_copies[kept]])
    # The running variance is not compared: its count correction N / (N - 1) counts the
    # values of the batch (5 examples), not the repeated batch's (7).
    for value, reference in zip(
        [*out[1:], running[0]], [*expected[1:], repeated_running[0]], strict=True
    ):
        torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-5)


def test_channels_last_input():
    X, example_weight, gamma, beta, grad_out = problem(7, (4, 3, 5, 5), 0.0, 1.0, "positive")
    running = (None, None)
    expected = forward_and_gradients(
        weighted_batch_norm, X, example_weight, gamma, beta, grad_out, running
    )
    out = forward_and_gradients(
        fused_weighted_batch_norm,
        X.to(memory_format=torch.channels_last),
        example_weight,
        gamma,
        beta,
        grad_out.to(memory_format=torch.channels_last),
        running,
    )
    for value, reference in zip(out, expected, strict=True):
        torch.testing.assert_close(value, reference)


def test_autocast_bfloat16_keeps_the_input_dtype_and_computes_in_float32():
    """Under autocast the convolution's bfloat16 output is normalised with float32 statistics
    into a bfloat16 output (as torch's batch norm does); gradients reach the convolution."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    layer = WeightedBatchNorm2d(4)
    reference = WeightedBatchNorm2d(4)
    X = 3 + torch.randn(8, 1, 6, 6)
    weights = torch.rand(8) + 0.5
    with example_weights([layer], weights), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = conv(X)
        out = layer(hidden)
    assert hidden.dtype == out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    assert torch.isfinite(conv.weight.grad).all()
    expected = weighted_batch_norm(
        hidden.detach().float(),
        weights,
        reference.running_mean,
        reference.running_var,
        reference.weight,
        reference.bias,
        0.1,
        1e-5,
    )
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    torch.testing.assert_close(layer.running_mean, reference.running_mean)
    torch.testing.assert_close(layer.running_var, reference.running_var)


def test_rais_trains_the_default_cnn_in_bfloat16(digits):
    X, y = digits
    images = X.reshape(-1, 8, 8)[:600]
    model = RAISClassifier(
        max_epochs=3, lr=0.05, batch_size=64, random_state=0, precision="bf16"
    ).fit(images, y[:600])
    batch_norm = model.net_.module_.features[1]
    assert isinstance(batch_norm, WeightedBatchNorm2d)
    assert torch.isfinite(batch_norm.running_var).all()
    assert model.score(images, y[:600]) > 0.3


def test_layer_uses_the_weights_only_while_training():
    torch.manual_seed(1)
    layer, plain = WeightedBatchNorm2d(3), nn.BatchNorm2d(3)
    plain.load_state_dict(layer.state_dict())
    assert layer.state_dict().keys() == plain.state_dict().keys()
    X = torch.randn(6, 3, 4, 4)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    running = (torch.zeros(3), torch.ones(3))
    with example_weights([layer], weights):
        out = layer(X)
        expected = weighted_batch_norm(X, weights, *running, plain.weight, plain.bias, 0.1, 1e-5)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(layer.running_mean, running[0])
        torch.testing.assert_close(layer.running_var, running[1])
        assert layer.num_batches_tracked.item() == 1
        layer.eval()
        plain.load_state_dict(layer.state_dict())
        plain.eval()
        torch.testing.assert_close(layer(X), plain(X))  # evaluation ignores the weights
    assert layer.example_weight is None
    layer.train()
    plain.train()
    torch.testing.assert_close(layer(X), plain(X))  # no weights: torch's batch norm
    np.testing.assert_array_equal(layer.running_var.numpy(), plain.running_var.numpy())
