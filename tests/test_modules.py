"""The default networks: their shapes for any image size, their head and their output layer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional

from sk_reweight import default_module
from sk_reweight._batchnorm import WeightedBatchNorm2d
from sk_reweight._modules import CompactVGG
from sk_reweight._rais._norms import GradientProbe


def flattened_features(height: int, width: int) -> int:
    """What the head receives: 64 maps, each side halved twice (rounded up), capped at 7."""
    return 64 * min(math.ceil(height / 4), 7) * min(math.ceil(width / 4), 7)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    channels=st.integers(1, 4),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    n_classes=st.integers(2, 5),
)
def test_images_of_any_size_give_one_logit_per_class(channels, height, width, n_classes):
    torch.manual_seed(0)
    net = default_module((channels, height, width), n_classes, (16,), 0.0)
    assert isinstance(net, CompactVGG)
    assert net.head.hidden[0].in_features == flattened_features(height, width)
    X = torch.randn(3, channels, height, width)
    for training in (True, False):
        logits = net.train(training)(X)
        assert logits.shape == (3, n_classes)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("shape", "features"),
    [((1, 8, 8), 64 * 2 * 2), ((1, 28, 28), 64 * 7 * 7), ((3, 32, 32), 64 * 7 * 7)],
)
def test_common_image_sizes_keep_a_spatial_grid_up_to_the_head(shape, features):
    net = default_module(shape, 10, (100,), 0.0)
    assert net.head.hidden[0].in_features == features


def test_hidden_layer_sizes_and_dropout_shape_the_head():
    net = default_module((1, 28, 28), 10, (32, 16), 0.25)
    widths = [layer.out_features for layer in net.head.modules() if isinstance(layer, nn.Linear)]
    assert widths == [32, 16, 10]
    dropouts = [layer.p for layer in net.head.modules() if isinstance(layer, nn.Dropout)]
    assert dropouts == [0.25, 0.25]
    without_hidden = default_module((1, 28, 28), 10, (), 0.0)
    assert without_hidden.head.output.in_features == 64 * 7 * 7


def test_every_batch_norm_weights_its_examples():
    net = default_module((3, 32, 32), 10, (100,), 0.0)
    batch_norms = [layer for layer in net.modules() if isinstance(layer, nn.BatchNorm2d)]
    assert len(batch_norms) == 3
    assert all(isinstance(layer, WeightedBatchNorm2d) for layer in batch_norms)


def test_last_layer_norms_are_those_of_the_output_layer_gradients():
    """RAIS's ``last_layer`` probe hooks the last nn.Linear: it must produce the logits."""
    torch.manual_seed(0)
    net = default_module((1, 8, 8), 4, (12,), 0.0).eval()
    X, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 1])
    probe = GradientProbe("last_layer", net)
    norms = probe.gradients(X, net(X), y).norms
    probe.release()
    output = net.head.output
    for i in range(len(y)):
        net.zero_grad()
        functional.cross_entropy(net(X[i : i + 1]), y[i : i + 1]).backward()
        expected = torch.cat([output.weight.grad.flatten(), output.bias.grad])
        torch.testing.assert_close(norms[i], torch.linalg.vector_norm(expected))
