r"""The gain ratio of importance sampling over uniform sampling (sections 3.2 and 4.4).

For a minibatch of :math:`M` examples drawn independently from :math:`p`, each
gradient weighted by :math:`1 / (n p_i)` (eq. 4), the expected squared norm of
the stochastic gradient is (eq. 5, with :math:`\bar g` the full gradient)

.. math::

    \mathbb E\|g_p\|^2 = \frac{1}{n^2 M} \sum_i \frac{v_i^2}{p_i}
    - \frac1M \|\bar g\|^2 + \|\bar g\|^2 .

The gain ratio :math:`r = \mathbb E\|g_U\|^2 / \mathbb E\|g_R\|^2` (eq. 6) is
how many uniform steps one importance-sampled step is worth (Proposition 3.2)
when the learning rate is multiplied by :math:`r`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def expected_squared_norm(
    norms: Tensor, probabilities: Tensor, mean_gradient_sq_norm: float, batch_size: int
) -> float:
    r"""Exact :math:`\mathbb E\|g_p\|^2` of eq. 5 from every example's gradient norm.

    Parameters
    ----------
    norms : Tensor of shape (n,)
        :math:`v_i = \|\nabla f_i\|` for the whole training set.
    probabilities : Tensor of shape (n,)
        The sampling distribution :math:`p`.
    mean_gradient_sq_norm : float
        :math:`\|\bar g\|^2`, the squared norm of the mean gradient.
    batch_size : int
        :math:`M`.
    """
    n = len(norms)
    drawn = probabilities > 0
    second_moment = (norms[drawn].square() / probabilities[drawn]).sum().item() / n**2
    return (second_moment - mean_gradient_sq_norm) / batch_size + mean_gradient_sq_norm


def exact_gain_ratio(
    norms: Tensor, probabilities: Tensor, mean_gradient_sq_norm: float, batch_size: int
) -> float:
    r"""The gain ratio of eq. 6 computed exactly, as the oracle (O-SGD) knows it.

    .. math:: r = \mathbb E\|g_U\|^2 / \mathbb E\|g_p\|^2

    with both moments from :func:`expected_squared_norm`, :math:`g_U` under
    uniform sampling.
    """
    uniform = torch.full_like(probabilities, 1.0 / len(probabilities))
    sampled = expected_squared_norm(norms, probabilities, mean_gradient_sq_norm, batch_size)
    if sampled <= 0:
        return 1.0
    return expected_squared_norm(norms, uniform, mean_gradient_sq_norm, batch_size) / sampled


class GainRatioEstimator:
    r"""Online estimate of the gain ratio from the minibatches actually drawn (eq. 7).

    .. math::

        \hat r = 1 + \frac{\widehat{\mathbb E\|g_{U1}\|^2}
        - \widehat{\mathbb E\|g_{R1}\|^2}}{M\, \widehat{\mathbb E\|g_R\|^2}}

    From each minibatch, with :math:`w_j = 1 / (n p_j)` and :math:`v_j` the
    drawn examples' gradient norms, the unbiased estimates
    :math:`\mathrm{mean}_j\, w_j v_j^2` of :math:`\mathbb E\|g_{U1}\|^2` and
    :math:`\mathrm{mean}_j\, w_j^2 v_j^2` of :math:`\mathbb E\|g_{R1}\|^2`, and
    the squared norm of the minibatch gradient itself for
    :math:`\mathbb E\|g_R\|^2`, are each smoothed by an exponential moving
    average with parameter ``alpha`` (section 4.4). The averages are bias
    corrected (divided by :math:`1 - (1 - \alpha)^t`), so early estimates
    are plain means rather than shrunk towards zero, and the ratio is clipped
    to :math:`[1, M]` and starts at 1, as in AdaScale (Johnson et al., 2020).
    All three moments must be measured in the same space — the one the norms
    :math:`v_j` are computed in.

    The state stays on the device: :meth:`update` launches a few kernels and
    never waits for them; reading :attr:`ratio` synchronises.

    Parameters
    ----------
    alpha : float
        Weight of the newest minibatch in the moving averages (0.01 in the paper).
    batch_size : int
        :math:`M`, the nominal minibatch size, which is also the upper clip.
    device : torch.device
        Where the moving averages live.
    """

    def __init__(self, alpha: float, batch_size: int, device: torch.device) -> None:
        self.alpha = alpha
        self.batch_size = batch_size
        self._moments = torch.zeros(3, dtype=torch.float64, device=device)
        self._steps = 0

    def update(self, norms: Tensor, weights: Tensor, batch_gradient_sq_norm: Tensor) -> None:
        """Account for one minibatch.

        Parameters
        ----------
        norms : Tensor of shape (batch_size,)
            Gradient norms :math:`v_j` of the drawn examples.
        weights : Tensor of shape (batch_size,)
            Their importance weights :math:`w_j = 1/(n p_j)`.
        batch_gradient_sq_norm : Tensor (scalar)
            :math:`\\|g_R\\|^2` of the minibatch gradient, in the same space.
        """
        weighted = (weights * norms.square()).double()
        sample = torch.stack(
            [
                weighted.mean(),
                (weights.double() * weighted).mean(),
                batch_gradient_sq_norm.double(),
            ]
        )
        self._moments.lerp_(sample, self.alpha)
        self._steps += 1

    @property
    def ratio(self) -> float:
        """The current estimate :math:`\\hat r`, clipped to ``[1, batch_size]``; 1 at first."""
        if self._steps == 0:
            return 1.0
        uniform_single, sampled_single, sampled_batch = self._moments.tolist()
        if sampled_batch <= 0:
            return 1.0
        # The bias corrections of the three averages are equal and cancel in the ratio.
        ratio = 1.0 + (uniform_single - sampled_single) / (self.batch_size * sampled_batch)
        return min(max(ratio, 1.0), float(self.batch_size))
