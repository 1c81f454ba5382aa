"""Default networks: a multilayer perceptron for tables, a small CNN for images.

Both output unnormalised class scores (logits); the engine applies the
cross-entropy loss and prediction applies the softmax.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._batchnorm import WeightedBatchNorm2d
from ._dropout import FitDropout


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


class SmallCNN(nn.Module):
    """Two 3x3 convolution blocks with batch normalisation, global pooling and a dense head.

    ``conv(32) -> BN -> ReLU -> [max-pool] -> conv(64) -> BN -> ReLU ->
    global average pool -> hidden dense layers -> logits``. The max-pool is
    used only when both image sides are at least 8 pixels, so tiny images
    (scikit-learn's 8x8 digits) keep their resolution for the second block.

    Parameters
    ----------
    in_channels : int
        Channels of the input images, shaped ``(n, C, H, W)``.
    image_size : tuple of int
        ``(H, W)``.
    n_classes : int
        Number of output logits.
    hidden_layer_sizes : sequence of int
        Widths of the dense layers after pooling.
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
        pool: list[nn.Module] = [nn.MaxPool2d(2)] if min(image_size) >= 8 else []
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1, bias=False),
            WeightedBatchNorm2d(32),
            nn.ReLU(),
            *pool,
            nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False),
            WeightedBatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = MLP(64, n_classes, hidden_layer_sizes, dropout)

    def forward(self, X: Tensor) -> Tensor:
        return self.head(self.features(X))


def default_module(
    input_shape: tuple[int, ...],
    n_classes: int,
    hidden_layer_sizes: Sequence[int],
    dropout: float,
) -> nn.Module:
    """Choose the default network from the shape of one example.

    ``(n_features,)`` gives an ``MLP``: the hidden dense layers with ReLU and
    dropout, then the logits. ``(C, H, W)`` gives a ``SmallCNN``: two 3x3
    convolution blocks with weighted batch normalisation (weights
    :math:`1/(n p_i)` under RAIS, section 4.5 of its paper), max-pooling
    between them for images of at least 8x8 pixels, global average pooling,
    then the same dense head. Both end in a :class:`torch.nn.Linear` layer,
    as ``RAISClassifier(grad_norm='last_layer')`` requires.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one example: ``(n_features,)`` or ``(C, H, W)``.
    n_classes : int
        Number of logits.
    hidden_layer_sizes : sequence of int
        Widths of the hidden dense layers.
    dropout : float
        Dropout probability after every hidden dense layer.

    Returns
    -------
    module : torch.nn.Module
        A freshly initialised network.

    Examples
    --------
    >>> from sk_reweight import default_module
    >>> default_module((1, 8, 8), 10, (100,), 0.0).head.output
    Linear(in_features=100, out_features=10, bias=True)
    """
    if len(input_shape) == 1:
        return MLP(input_shape[0], n_classes, hidden_layer_sizes, dropout)
    channels, height, width = input_shape
    return SmallCNN(channels, (height, width), n_classes, hidden_layer_sizes, dropout)
