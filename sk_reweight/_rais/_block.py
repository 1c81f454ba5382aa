r"""A bookkeeping block of RAIS-SGD: what its steps leave, and their draws put end to end.

A step of :class:`~sk_reweight._rais._policy.RAISPolicy` itself only draws
from the sampling table of its
:class:`~sk_reweight._rais._sampling_state.SamplingState`, measures the drawn
norms and caps the outliers against precomputed bounds, and keeps a
:class:`BlockStep`. Recording the norms (steps 3 and 4 of Algorithm 4.1) is
done for ``refresh_interval`` steps at once, at the end of every block and of
every epoch, on one :class:`BlockDraws` (the steps concatenated):
:func:`~sk_reweight._rais._history.prepend_in_order` into the histories, the
(PT) records, the gain estimator's block update, together with the one read
of the device (the gain ratio, and a check that training has not diverged).
The scores are kept as the two projections :math:`\langle c, s_i
angle,
\langle d, s_i
angle` of every example, refreshed for the drawn rows only.
Within a block :math:`p` stays as it was at its start: sampling stays
unbiased (the weights are those of the :math:`p` actually used), only the
freshest norms of the block wait for its end. ``refresh_interval=1`` is the
paper's step-by-step algorithm; the default of 16 makes the bookkeeping of a
CPU step about 2.6 times cheaper (``docs/benchmarks.md``) and lets a GPU run
16 steps ahead of the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._norms import PerExampleGradients, batch_gradient_sq_norms


@dataclass(frozen=True)
class BlockStep:
    """What a step leaves for the end of its bookkeeping block (all on the device).

    Attributes
    ----------
    indices, norms : Tensor of shape (batch_size,)
        The drawn examples and their gradient norms.
    importance, scale : Tensor of shape (batch_size,) or None
        Their weights :math:`1/(n p_i)` and outlier multipliers; ``None`` for
        uniform draws.
    gradients, coefficients
        The per-example gradients in the norms' space and their loss
        coefficients, as kept for the block's minibatch gradients
        (:func:`~sk_reweight._rais._norms.batch_gradient_sq_norms`, for the
        gain ratio).
    """

    indices: Tensor
    norms: Tensor
    importance: Tensor | None
    scale: Tensor | None
    gradients: PerExampleGradients
    coefficients: Tensor

    @classmethod
    def uniform(
        cls,
        indices: Tensor,
        norms: Tensor,
        gradients: PerExampleGradients,
        relative_weight: Tensor | None,
    ) -> BlockStep:
        """A uniform draw's step: loss coefficients those of the engine's weighted mean."""
        if relative_weight is None:
            coefficients = torch.full_like(norms, 1.0 / len(norms))
        else:
            coefficients = relative_weight / relative_weight.sum().clamp_min(1e-30)
        return cls(indices, norms, None, None, *gradients.kept(coefficients))

    @classmethod
    def sampled(
        cls,
        indices: Tensor,
        norms: Tensor,
        importance: Tensor,
        scale: Tensor,
        multipliers: Tensor,
        gradients: PerExampleGradients,
        relative_weight: Tensor | None,
    ) -> BlockStep:
        """An importance-sampled step: coefficients :math:`w_i s_i u_i / (\\bar u M)`.

        ``importance`` :math:`w_i = 1/(n p_i)`, ``scale`` the outlier
        multipliers :math:`s_i`, ``multipliers`` their product (the loss
        multipliers), ``relative_weight`` :math:`u_i / \\bar u` (``None``
        for equal sample weights).
        """
        coefficients = multipliers / len(norms)
        if relative_weight is not None:
            coefficients = coefficients * relative_weight
        return cls(indices, norms, importance, scale, *gradients.kept(coefficients))


@dataclass(frozen=True)
class BlockDraws:
    """The draws of a block's steps, minibatch after minibatch.

    A block is all uniform or all importance-sampled, and all its
    minibatches but the last have the same size.

    Attributes
    ----------
    examples, norms : Tensor of shape (n_draws,)
        The drawn examples and their gradient norms.
    importance : Tensor of shape (n_draws,)
        Their weights :math:`1/(n p_i)` (ones for uniform draws).
    scales : Tensor of shape (n_draws,) or None
        Their outlier multipliers; ``None`` for uniform draws.
    minibatches : Tensor of shape (n_draws,)
        The minibatch of each draw, ``0 .. n_minibatches - 1``.
    n_minibatches, size : int
        Minibatches in the block, and draws per minibatch but the last.
    batch_gradient_sq_norms : Tensor of shape (n_minibatches,)
        :math:`\\|g_R\\|^2` of each minibatch gradient.
    """

    examples: Tensor
    norms: Tensor
    importance: Tensor
    scales: Tensor | None
    minibatches: Tensor
    n_minibatches: int
    size: int
    batch_gradient_sq_norms: Tensor

    @classmethod
    def of(cls, block: list[BlockStep]) -> BlockDraws:
        """Concatenate a non-empty block's steps."""
        examples = torch.cat([step.indices for step in block])
        norms = torch.cat([step.norms for step in block])
        uniform = block[0].importance is None
        size = len(block[0].indices)
        return cls(
            examples=examples,
            norms=norms,
            importance=(
                torch.ones_like(norms) if uniform else torch.cat([s.importance for s in block])
            ),
            scales=None if uniform else torch.cat([step.scale for step in block]),
            minibatches=torch.arange(len(examples), device=examples.device).div_(
                size, rounding_mode="floor"
            ),
            n_minibatches=len(block),
            size=size,
            batch_gradient_sq_norms=batch_gradient_sq_norms(
                [step.gradients for step in block], [step.coefficients for step in block]
            ),
        )

    @property
    def capped_norms(self) -> Tensor:
        """The norms as the steps used them: times the outlier multipliers, if any."""
        return self.norms if self.scales is None else self.norms * self.scales
