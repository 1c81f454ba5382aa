"""Batch normalisation whose training statistics weight each example.

Under importance sampling an example drawn with probability :math:`p_i`
stands for :math:`1 / (n p_i)` examples of the training set; the RAIS paper
(section 4.5) weights the batch statistics accordingly, otherwise the
statistics — and the running averages used at prediction — describe the
sampling distribution instead of the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def weighted_batch_norm(
    X: Tensor,
    example_weight: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
) -> Tensor:
    r"""Training-mode batch normalisation with per-example weights.

    Per channel, over the examples :math:`i` and spatial positions,

    .. math::

        \mu = \frac{\sum_i w_i \sum_{h,w} x_{i,h,w}}{HW \sum_i w_i}, \qquad
        \sigma^2 = \frac{\sum_i w_i \sum_{h,w} (x_{i,h,w} - \mu)^2}{HW \sum_i w_i},

    the output is :math:`\gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`,
    and the running statistics move towards :math:`\mu` and the
    count-corrected :math:`\sigma^2 N / (N - 1)` (:math:`N` the number of
    values per channel), exactly as :func:`torch.nn.functional.batch_norm`
    does — which this equals when every weight is the same. Integer weights
    give the statistics of the batch with each example repeated that often.

    Parameters
    ----------
    X : Tensor of shape (N, C, ...)
    example_weight : Tensor of shape (N,)
        Non-negative weights, not all zero.
    running_mean, running_var : Tensor of shape (C,) or None
        Updated in place when given.
    weight, bias : Tensor of shape (C,) or None
        The affine parameters :math:`\gamma, \beta`.
    momentum : float
        Weight of the new statistics in the running averages.
    eps : float
        Added to the variance.
    """
    reduce = [0, *range(2, X.dim())]
    shape = [1, -1] + [1] * (X.dim() - 2)
    w = (example_weight / example_weight.sum()).reshape(-1, *([1] * (X.dim() - 1)))
    positions = X[0, 0].numel()
    mean = (w * X).sum(dim=reduce) / positions
    centred = X - mean.reshape(shape)
    var = (w * centred.square()).sum(dim=reduce) / positions
    if running_mean is not None and running_var is not None:
        count = X.numel() // X.shape[1]
        with torch.no_grad():
            running_mean.lerp_(mean.detach(), momentum)
            running_var.lerp_(var.detach() * count / max(count - 1, 1), momentum)
    out = centred * torch.rsqrt(var + eps).reshape(shape)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


class WeightedBatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` that uses :func:`weighted_batch_norm` when given weights.

    While :attr:`example_weight` is set (see :func:`example_weights`) and the
    layer is training, its statistics weight the examples; otherwise it is an
    ordinary ``BatchNorm2d`` with the same parameters and state dict.
    """

    example_weight: Tensor | None = None

    def forward(self, X: Tensor) -> Tensor:
        if not self.training or self.example_weight is None:
            return super().forward(X)
        if self.momentum is None:
            raise ValueError("WeightedBatchNorm2d needs a float momentum, not None.")
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return weighted_batch_norm(
            X,
            self.example_weight,
            self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None,
            self.weight,
            self.bias,
            self.momentum,
            self.eps,
        )


@contextmanager
def example_weights(layers: list[WeightedBatchNorm2d], weights: Tensor | None) -> Iterator[None]:
    """Give every layer of ``layers`` the per-example ``weights`` for the duration of the block."""
    if weights is None or not layers:
        yield
        return
    for layer in layers:
        layer.example_weight = weights
    try:
        yield
    finally:
        for layer in layers:
            layer.example_weight = None
