"""Default networks: a multilayer perceptron for tables, a compact VGG-style CNN for images.

Both output unnormalised class scores (logits); the engine applies the
cross-entropy loss and prediction applies the softmax.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ._batchnorm import WeightedBatchNorm2d
from ._dropout import FitDropout

ModuleFactory = Callable[[tuple[int, ...], int], nn.Module]
"""``module(input_shape, n_classes)`` builds the network for examples of ``input_shape``."""

HEAD_GRID = 7
"""Largest side of the feature maps that :class:`CompactVGG` flattens into its head."""


def _dense_stack(
    n_inputs: int, hidden_layer_sizes: Sequence[int], dropout: float
) -> nn.Sequential:
    """Linear -> ReLU (-> Dropout) blocks, one per entry of ``hidden_layer_sizes``."""
    layers: list[nn.Module] = []
    for width in hidden_layer_sizes:
        layers += [nn.Linear(n_inputs, width), nn.ReLU()]
        if dropout > 0:
            layers.append(FitDropout(dropout))
        n_inputs = width
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Fully connected ReLU network.

    Parameters
    ----------
    n_features : int
        Width of the input.
    n_classes : int
        Number of output logits.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer, as in :class:`sklearn.neural_network.MLPClassifier`.
    dropout : float
        Dropout probability after every hidden activation (0 disables it).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden_layer_sizes: Sequence[int] = (100,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = _dense_stack(n_features, hidden_layer_sizes, dropout)
        self.output = nn.Linear(
            hidden_layer_sizes[-1] if hidden_layer_sizes else n_features, n_classes
        )

    def forward(self, X: Tensor) -> Tensor:
        return self.output(self.hidden(X))


def _pooled_side(side: int) -> int:
    """A side's length after a 2x2 max-pool that keeps a partial last window (``ceil_mode``)."""
    return -(-side // 2)


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    """3x3 convolution (same padding, no bias) -> weighted batch norm -> ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        WeightedBatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class CompactVGG(nn.Module):
    """A compact VGG-style network: three 3x3 convolution blocks, two max-pools, a dense head.

    ``conv(32) -> BN -> ReLU -> max-pool -> conv(64) -> BN -> ReLU -> max-pool
    -> conv(64) -> BN -> ReLU -> average pool to at most 7x7 -> flatten ->
    hidden dense layers -> logits``. The features keep their spatial layout up
    to the head (28x28 images reach it as 64 maps of 7x7), which global
    pooling would discard. The 2x2 max-pools keep a partial last window, so a
    side of ``s`` pixels becomes ``ceil(s / 2)`` and no image, however small
    (down to 1x1), is pooled to nothing; images larger than 28x28 are averaged
    down to a 7x7 grid before the head, which keeps its size bounded.

    Parameters
    ----------
    in_channels : int
        Channels of the input images, shaped ``(n, C, H, W)``.
    image_size : tuple of int
        ``(H, W)``.
    n_classes : int
        Number of output logits.
    hidden_layer_sizes : sequence of int
        Widths of the dense layers after the convolutions.
    dropout : float
        Dropout probability in the dense head.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        n_classes: int,
        hidden_layer_sizes: Sequence[int] = (100,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        height, width = (_pooled_side(_pooled_side(side)) for side in image_size)
        grid = (min(height, HEAD_GRID), min(width, HEAD_GRID))
        self.features = nn.Sequential(
            *_conv_block(in_channels, 32),
            nn.MaxPool2d(2, ceil_mode=True),
            *_conv_block(32, 64),
            nn.MaxPool2d(2, ceil_mode=True),
            *_conv_block(64, 64),
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
        )
        self.head = MLP(64 * grid[0] * grid[1], n_classes, hidden_layer_sizes, dropout)

    def forward(self, X: Tensor) -> Tensor:
        return self.head(self.features(X))


def default_module(
    input_shape: tuple[int, ...],
    n_classes: int,
    hidden_layer_sizes: Sequence[int] = (100,),
    dropout: float = 0.0,
) -> nn.Module:
    """Choose the default network from the shape of one example.

    ``(n_features,)`` gives an ``MLP``: the hidden dense layers with ReLU and
    dropout, then the logits. ``(C, H, W)`` gives a ``CompactVGG``: three 3x3
    convolution blocks (32, 64 and 64 channels) with weighted batch
    normalisation (weights :math:`1/(n p_i)` under RAIS, section 4.5 of its
    paper), a 2x2 max-pool after each of the first two, the feature maps
    flattened (averaged down to at most 7x7 first), then the same dense head.
    Both end in a :class:`torch.nn.Linear` layer, as
    ``RAISClassifier(grad_norm='last_layer')`` requires.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one example: ``(n_features,)`` or ``(C, H, W)``.
    n_classes : int
        Number of logits.
    hidden_layer_sizes : sequence of int, default=(100,)
        Widths of the hidden dense layers.
    dropout : float, default=0.0
        Dropout probability after every hidden dense layer.

    The defaults are the classifiers', so that ``module=default_module``
    builds the default network for whatever input layout ``X`` has (the
    classifiers refuse images that look channels last only for
    ``module=None``).

    Returns
    -------
    module : torch.nn.Module
        A freshly initialised network.

    Examples
    --------
    >>> from sk_reweight import default_module
    >>> net = default_module((1, 28, 28), 10, (100,), 0.0)
    >>> type(net).__name__, net.head.hidden[0]
    ('CompactVGG', Linear(in_features=3136, out_features=100, bias=True))
    >>> net.head.output
    Linear(in_features=100, out_features=10, bias=True)
    """
    if len(input_shape) == 1:
        return MLP(input_shape[0], n_classes, hidden_layer_sizes, dropout)
    channels, height, width = input_shape
    return CompactVGG(channels, (height, width), n_classes, hidden_layer_sizes, dropout)


def hidden_widths(hidden_layer_sizes: Any) -> tuple[int, ...]:
    """The ``hidden_layer_sizes`` parameter as a tuple of positive widths."""
    widths = tuple(int(width) for width in np.atleast_1d(hidden_layer_sizes))
    if not all(width >= 1 for width in widths):
        raise ValueError(
            f"hidden_layer_sizes must contain positive integers; got {hidden_layer_sizes!r}."
        )
    return widths


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise every submodule that knows how (``reset_parameters``)."""
    for submodule in module.modules():
        if callable(getattr(submodule, "reset_parameters", None)):
            submodule.reset_parameters()


def build_module(
    module: nn.Module | ModuleFactory | None,
    input_shape: tuple[int, ...],
    n_classes: int,
    hidden_layer_sizes: Sequence[int],
    dropout: float,
) -> nn.Module:
    """A freshly initialised network, as the ``module`` parameter asks for.

    ``None``: :func:`default_module`; an instance: a deep copy, re-initialised
    (:func:`reset_parameters`); a callable: ``module(input_shape, n_classes)``,
    which must return a :class:`torch.nn.Module`.
    """
    if module is None:
        return default_module(input_shape, n_classes, hidden_layer_sizes, dropout)
    if isinstance(module, nn.Module):
        built = copy.deepcopy(module)
        reset_parameters(built)
        return built
    built = module(input_shape, n_classes)
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"module(input_shape, n_classes) must return a torch.nn.Module; "
            f"got {type(built).__name__}."
        )
    return built


def check_module_output(module: nn.Module, X_probe: NDArray, n_classes: int) -> None:
    """Refuse a network that fails on ``X_probe`` or does not return one logit per class."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            # A copy of two rows: torch warns about (and may not) view a read-only array.
            output = module(torch.tensor(X_probe))
    except Exception as exc:
        raise ValueError(
            f"module failed on input of shape {X_probe.shape}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        module.train(was_training)
    if tuple(output.shape) != (len(X_probe), n_classes):
        raise ValueError(
            f"module must return logits of shape (n_samples, n_classes) = "
            f"{(len(X_probe), n_classes)}; got {tuple(output.shape)}."
        )
