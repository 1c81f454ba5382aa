"""A user's own network, defined in an importable module, as a cluster's workers need it.

Dask pickles a class by reference (module and name), so a worker process can
rebuild :class:`TwoLayerNet` only if it can import this module; a class defined
inside a test function or a notebook cell would be pickled by value instead.
"""

from __future__ import annotations

from torch import nn


class TwoLayerNet(nn.Module):
    """``module(input_shape, n_classes)``: a small MLP with a tanh hidden layer."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(input_shape[0], width), nn.Tanh(), nn.Linear(width, n_classes)
        )

    def forward(self, X):
        return self.layers(X)
