r"""Per-example gradients of the cross-entropy, in three spaces of increasing cost.

RAIS needs, for every drawn example, the norm :math:`v_i = \|\nabla \ell_i\|`
of its loss gradient, and for the gain ratio the squared norm of the
minibatch gradient :math:`g = \sum_i a_i \nabla \ell_i` *in the same space*
(section 4.4). Three spaces are offered:

``'logits'``
    The paper's proxy (section 4.5): the gradient of the loss with respect to
    the logits, :math:`\delta_i = \mathrm{softmax}(z_i) - e_{y_i}`, which is
    also the gradient of the output layer's bias. Free from the forward pass.
``'last_layer'``
    The exact gradient of the output linear layer's weight and bias,
    :math:`\delta_i \otimes (h_i, 1)` with :math:`h_i` the layer's input, of
    norm :math:`\|\delta_i\| \sqrt{\|h_i\|^2 + 1}`. Needs only :math:`h_i`,
    captured by a forward hook.
``'exact'``
    Every parameter's per-example gradient, by ``torch.func`` (``vmap`` of
    ``grad``): one extra forward and backward per example, for small models,
    tests and the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional

GRAD_NORMS = ("logits", "last_layer", "exact")


def logit_gradients(logits: Tensor, y: Tensor) -> Tensor:
    r"""Gradient of each example's cross-entropy with respect to its logits.

    .. math:: \partial \ell_i / \partial z_i = \mathrm{softmax}(z_i) - e_{y_i}
    """
    delta = torch.softmax(logits.detach().float(), dim=1)
    return delta.scatter_add_(1, y.unsqueeze(1), torch.full_like(delta[:, :1], -1.0))


@dataclass
class FlatGradients:
    r"""Per-example gradients as rows: logit gradients :math:`\delta_i` or flattened full ones."""

    rows: Tensor

    @property
    def norms(self) -> Tensor:
        """Euclidean norm of every example's gradient."""
        return torch.linalg.vector_norm(self.rows, dim=1)

    def weighted_sum(self, coefficients: Tensor) -> Tensor:
        r""":math:`\sum_i a_i g_i`, the minibatch gradient with loss coefficients :math:`a_i`."""
        return coefficients @ self.rows

    def kept(self, coefficients: Tensor) -> tuple[FlatGradients, Tensor]:
        """What a bookkeeping block keeps of this minibatch for :func:`batch_gradient_sq_norms`.

        The minibatch gradient itself (one row, coefficient 1): the rows of
        ``'exact'`` gradients are as wide as the network.
        """
        return FlatGradients(self.weighted_sum(coefficients).unsqueeze(0)), coefficients[
            :1
        ] * 0 + 1


@dataclass
class LastLayerGradients:
    r"""Per-example gradients :math:`\delta_i \otimes (h_i, 1)` of the output layer."""

    delta: Tensor
    inputs: Tensor

    @property
    def norms(self) -> Tensor:
        r""":math:`\|\delta_i\| \sqrt{\|h_i\|^2 + 1}` of every example."""
        one = torch.ones((), device=self.inputs.device)
        augmented = torch.hypot(torch.linalg.vector_norm(self.inputs, dim=1), one)
        return torch.linalg.vector_norm(self.delta, dim=1).mul_(augmented)

    def weighted_sum(self, coefficients: Tensor) -> Tensor:
        r""":math:`\sum_i a_i \delta_i (h_i, 1)^\top`, the layer's minibatch gradient.

        The bias column :math:`\sum_i a_i \delta_i` is the last column.
        """
        scaled = coefficients.unsqueeze(1) * self.delta
        return torch.cat([scaled.T @ self.inputs, scaled.sum(dim=0).unsqueeze(1)], dim=1)

    def kept(self, coefficients: Tensor) -> tuple[LastLayerGradients, Tensor]:
        """What a bookkeeping block keeps of this minibatch: all of it, for one batched product."""
        return self, coefficients


def batch_gradient_sq_norms(
    gradients: list[PerExampleGradients], coefficients: list[Tensor]
) -> Tensor:
    r""":math:`\|\sum_i a_i g_i\|^2` of each of a block's minibatches, in order.

    For last-layer gradients :math:`g_i = \delta_i \otimes (h_i, 1)` of
    minibatches of equal size the :math:`K` weight gradients
    :math:`\sum_i a_i \delta_i h_i^\top` are one batched product
    (:func:`torch.bmm`), and the bias columns :math:`\sum_i a_i \delta_i` one
    sum, instead of :math:`K` small products, one per training step.

    Parameters
    ----------
    gradients, coefficients : list
        Per minibatch, what :meth:`LastLayerGradients.kept` (or
        :meth:`FlatGradients.kept`) returned: its gradients and loss
        coefficients :math:`a_i`.

    Returns
    -------
    squared_norms : Tensor of shape (K,)
    """
    sizes = {len(a) for a in coefficients}
    if len(sizes) == 1 and all(isinstance(g, LastLayerGradients) for g in gradients):
        scaled = torch.stack(coefficients).unsqueeze(2) * torch.stack([g.delta for g in gradients])
        weight = torch.bmm(scaled.transpose(1, 2), torch.stack([g.inputs for g in gradients]))
        return weight.square().sum(dim=(1, 2)).add_(scaled.sum(dim=1).square().sum(dim=1))
    sums = [g.weighted_sum(a).flatten() for g, a in zip(gradients, coefficients, strict=True)]
    return torch.linalg.vector_norm(torch.stack(sums), dim=1).square_()


PerExampleGradients = FlatGradients | LastLayerGradients


def output_layer(module: nn.Module) -> nn.Linear:
    """The module's last :class:`~torch.nn.Linear` layer, presumed to produce the logits."""
    linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
    if not linears:
        raise ValueError(
            "grad_norm='last_layer' needs a module whose logits come from an nn.Linear "
            "layer; this module has none. Use grad_norm='logits' or 'exact'."
        )
    return linears[-1]


def check_logits_from_last_layer(module: nn.Module, inputs: Tensor) -> None:
    """Refuse, before training, a network for ``grad_norm='last_layer'`` whose output on
    ``inputs`` is not the output of its last :class:`~torch.nn.Linear` layer, unchanged."""
    layer = output_layer(module)
    outputs: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _layer, _inputs, output: outputs.append(output))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            logits = module(inputs)
    finally:
        handle.remove()
        module.train(was_training)
    if not (outputs and outputs[-1] is logits):
        raise ValueError(
            f"grad_norm='last_layer' needs the module's output to be that of its last nn.Linear "
            f"layer ({layer}), unchanged; this module transforms it (or calls another layer "
            "last). Use grad_norm='logits' or 'exact', or end the module with that layer."
        )


def exact_gradients(module: nn.Module, X: Tensor, y: Tensor) -> FlatGradients:
    """Per-example gradients of every parameter by ``torch.func.vmap(grad(...))``.

    The module is evaluated in evaluation mode (dropout off, batch
    normalisation on its running statistics), because per-example gradients
    are not defined for layers that couple the examples of a batch.
    """
    params = {name: param.detach() for name, param in module.named_parameters()}
    buffers = dict(module.named_buffers())

    def example_loss(params: dict[str, Tensor], x: Tensor, target: Tensor) -> Tensor:
        logits = functional_call(module, (params, buffers), (x.unsqueeze(0),))
        return functional.cross_entropy(logits, target.unsqueeze(0))

    was_training = module.training
    module.eval()
    try:
        grads = vmap(grad(example_loss), in_dims=(None, 0, 0), randomness="different")(
            params, X, y
        )
    finally:
        module.train(was_training)
    return FlatGradients(torch.cat([g.flatten(1) for g in grads.values()], dim=1))


class GradientProbe:
    """Per-example gradients of a module's training minibatches in one of :data:`GRAD_NORMS`.

    For ``'last_layer'`` a forward hook on the output layer keeps the inputs
    of its most recent call; :meth:`release` removes it.

    Parameters
    ----------
    grad_norm : {'logits', 'last_layer', 'exact'}
        The space the gradients are measured in.
    module : torch.nn.Module
        The network being trained.
    """

    def __init__(self, grad_norm: str, module: nn.Module) -> None:
        self.grad_norm = grad_norm
        self.module = module
        self._hook = None
        self._last_call: tuple[Tensor, Tensor] | None = None
        if grad_norm == "last_layer":
            self._hook = output_layer(module).register_forward_hook(self._keep_call)

    def _keep_call(self, layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self._last_call = (inputs[0], output)

    def release(self) -> None:
        """Remove the forward hook, if any."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._last_call = None

    def gradients(self, X: Tensor, logits: Tensor, y: Tensor) -> PerExampleGradients:
        """Per-example gradients of the examples ``X`` whose forward pass gave ``logits``."""
        if self.grad_norm == "exact":
            return exact_gradients(self.module, X, y)
        delta = logit_gradients(logits, y)
        if self.grad_norm == "logits":
            return FlatGradients(delta)
        if self._last_call is None or self._last_call[1] is not logits:
            raise ValueError(
                "grad_norm='last_layer' needs the logits to be the output of the module's "
                "last nn.Linear layer, unchanged; use grad_norm='logits' or 'exact'."
            )
        inputs = self._last_call[0].detach().flatten(1).float()
        self._last_call = None
        return LastLayerGradients(delta, inputs)
