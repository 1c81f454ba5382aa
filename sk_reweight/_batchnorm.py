"""Batch normalisation whose training statistics weight each example.

Under importance sampling an example drawn with probability :math:`p_i`
stands for :math:`1 / (n p_i)` examples of the training set; the RAIS paper
(section 4.5) weights the batch statistics accordingly, otherwise the
statistics — and the running averages used at prediction — describe the
sampling distribution instead of the data.

:func:`weighted_batch_norm` states the computation as a readable chain of tensor
operations (the reference the tests hold the fast path to);
:func:`fused_weighted_batch_norm` computes the same values and gradients at the cost
of torch's native batch norm: two reductions and one native normalisation forward, a
closed-form backward (:class:`WeightedBatchNormFunction`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable


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
    r"""Training-mode batch normalisation with per-example weights: the reference formula.

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

    See Also
    --------
    fused_weighted_batch_norm : the same values and gradients at native cost (what
        :class:`WeightedBatchNorm2d` runs); this chain of elementwise operations is its
        definition and its test reference.
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


class WeightedBatchNormFunction(torch.autograd.Function):
    r"""Weighted batch normalisation (training mode) with a closed-form backward.

    Forward, per channel, with the per-value shares
    :math:`a_i = w_i / (HW \sum_k w_k)` (summing to one over the :math:`N HW` values of
    a channel) of :func:`weighted_batch_norm`:

    .. math::

        \mu = \sum_i a_i \sum_{h,w} x_{i,h,w}, \qquad
        \sigma^2 = \sum_i a_i \sum_{h,w} (x_{i,h,w} - \mu)^2, \qquad
        y = \gamma \hat x + \beta, \quad \hat x = (x - \mu)\, r, \quad
        r = (\sigma^2 + \epsilon)^{-1/2}.

    The per-example sums are plain reductions over the last dimensions, the weighted
    sums over examples are products with :math:`a`, and the normalisation of the
    centred input is one call of torch's native batch norm in evaluation mode with
    :math:`(0, \sigma^2)` as its statistics. The centred input (not :math:`x`) is
    what is squared and what backward keeps, so inputs with a large mean lose no more
    than the reference formula, which also centres before squaring.

    Backward, with :math:`g = \partial L / \partial \hat x = \gamma\, \partial L / \partial y`
    and sums over all values of the channel (the weights :math:`a` appear only
    through :math:`\partial \mu / \partial x_j = a_j` and
    :math:`\partial \sigma^2 / \partial x_j = 2 a_j (x_j - \mu)`, the term through
    :math:`\mu` vanishing because :math:`\sum_k a_k (x_k - \mu) = 0`):

    .. math::

        \frac{\partial L}{\partial x_j} = r \Bigl(g_j - a_j \sum_k g_k
            - a_j \hat x_j \sum_k g_k \hat x_k\Bigr), \qquad
        \frac{\partial L}{\partial \gamma} = \sum_k \frac{\partial L}{\partial y_k} \hat x_k,
        \qquad
        \frac{\partial L}{\partial \beta} = \sum_k \frac{\partial L}{\partial y_k}.

    The two channel sums are those of native batch norm's backward (one call, which
    also returns the gradients of :math:`\gamma` and :math:`\beta`); the input's
    gradient is then :math:`r\gamma\,(\partial L/\partial y + u_i (x - \mu) - a_i
    \sum_k \partial L/\partial y_k)` with :math:`u_i = -a_i r\, \partial L / \partial \gamma`:
    one fused multiply-add and two in-place passes. The
    example weights get no gradient, and the backward is not differentiable itself
    (second derivatives raise; :func:`weighted_batch_norm` has them), nor has it a
    rule for :mod:`torch.func` transforms (RAIS's exact per-example gradients run the
    network in evaluation mode, where the layer is torch's batch norm). RAIS paper,
    section 4.5.

    Arguments of :meth:`apply` are those of :func:`fused_weighted_batch_norm`, in the
    order ``X, example_weight, weight, bias, running_mean, running_var, momentum, eps``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        X: Tensor,
        example_weight: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
    ) -> Tensor:
        dtype = torch.promote_types(X.dtype, torch.float32)  # statistics in float32 at least
        per_example = tuple(range(2, X.dim()))
        positions = math.prod(X.shape[2:])
        channel_shape = (1, -1) + (1,) * len(per_example)
        probability = example_weight if example_weight.dtype == dtype else example_weight.to(dtype)
        probability = probability / probability.sum()  # a_i = probability_i / positions
        if not per_example:
            sums = X.to(dtype)
        else:
            sums = X.sum(per_example) if X.dtype == dtype else X.sum(per_example, dtype=dtype)
        zero = sums.new_zeros(X.shape[1])
        mean = torch.addmv(zero, sums.t(), probability, beta=0, alpha=1 / positions)
        centred = X - mean.view(channel_shape)  # in `dtype` by type promotion
        if per_example:
            squares = torch.linalg.vector_norm(centred, dim=per_example).square_()
        else:
            squares = centred.square()
        var = torch.addmv(zero, squares.t(), probability, beta=0, alpha=1 / positions)
        if running_mean is not None and running_var is not None:
            # The momentum lerp towards the mean and the count-corrected variance, each
            # with its weighted sum over the examples redone in place (one call, not two).
            count = X.numel() // X.shape[1]
            correction = count / max(count - 1, 1)
            running_mean.lerp_(mean, momentum)
            running_var.addmv_(
                squares.t(),
                probability,
                beta=1 - momentum,
                alpha=momentum * correction / positions,
            )
        out = torch.batch_norm(
            centred, weight, bias, zero, var, False, 0.0, eps, torch.backends.cudnn.enabled
        )
        ctx.save_for_backward(centred, probability, weight, zero, (var + eps).rsqrt_())
        ctx.positions = positions
        ctx.input_dtype = X.dtype
        return out if out.dtype == X.dtype else out.to(X.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        centred, probability, weight, zero, inv_std = ctx.saved_tensors
        if grad_out.dtype != centred.dtype:
            grad_out = grad_out.to(centred.dtype)
        # sum(grad_out * centred * inv_std) and sum(grad_out) per channel, in one pass.
        _, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward.default(
            grad_out, centred, None, None, None, zero, inv_std, True, 0.0, [False, True, True]
        )
        grad_X = None
        if ctx.needs_input_grad[0]:
            example_shape = centred.shape[:2] + (1,) * (centred.dim() - 2)
            channel_shape = (1, -1) + (1,) * (centred.dim() - 2)
            share = 1 / ctx.positions
            slope = torch.addr(zero, probability, inv_std * grad_weight, beta=0, alpha=-share)
            offset = torch.addr(zero, probability, grad_bias, beta=0, alpha=share)
            scale = inv_std if weight is None else inv_std * weight
            grad_X = torch.addcmul(grad_out, slope.view(example_shape), centred)
            grad_X.sub_(offset.view(example_shape)).mul_(scale.view(channel_shape))
            if grad_X.dtype != ctx.input_dtype:
                grad_X = grad_X.to(ctx.input_dtype)
        return (
            grad_X,
            None,
            grad_weight if ctx.needs_input_grad[2] else None,
            grad_bias if ctx.needs_input_grad[3] else None,
            None,
            None,
            None,
            None,
        )


def autocast_enabled(device_type: str) -> bool:
    """Whether :func:`torch.autocast` is on for ``device_type`` (always True before torch 2.4,
    whose ``torch.is_autocast_enabled`` takes no device type: the caller then leaves an
    autocast that may be off, which costs a few microseconds)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return True


def fused_weighted_batch_norm(
    X: Tensor,
    example_weight: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
) -> Tensor:
    """:func:`weighted_batch_norm`'s values and gradients at native batch norm's cost.

    Same parameters and result as :func:`weighted_batch_norm` (equal to float32
    round-off), computed by :class:`WeightedBatchNormFunction`. Under
    :func:`torch.autocast` the statistics are computed in float32 and the output has
    the input's dtype, as torch's batch norm does.
    """
    device = X.device.type
    if autocast_enabled(device):  # its matrix-vector products must stay in float32
        with torch.autocast(device, enabled=False):
            return WeightedBatchNormFunction.apply(
                X, example_weight, weight, bias, running_mean, running_var, momentum, eps
            )
    return WeightedBatchNormFunction.apply(
        X, example_weight, weight, bias, running_mean, running_var, momentum, eps
    )


class WeightedBatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose statistics weight the examples while given weights.

    While :attr:`example_weight` is set (see :func:`example_weights`) and the
    layer is training, its statistics weight the examples
    (:func:`fused_weighted_batch_norm`, which computes :func:`weighted_batch_norm`);
    otherwise it is an ordinary ``BatchNorm2d`` with the same parameters and state dict.
    """

    example_weight: Tensor | None = None

    def forward(self, X: Tensor) -> Tensor:
        if not self.training or self.example_weight is None:
            return super().forward(X)
        if self.momentum is None:
            raise ValueError("WeightedBatchNorm2d needs a float momentum, not None.")
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return fused_weighted_batch_norm(
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
