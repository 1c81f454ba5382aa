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

import math

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
    average with parameter ``alpha`` (section 4.4). The three averages share
    one bias correction :math:`1 - (1 - \alpha)^t`, which cancels in the
    ratio, so early estimates are plain means rather than shrunk towards zero;
    the ratio is clipped to :math:`[1, M]` and starts at 1, as in AdaScale
    (Johnson et al., 2020). All three moments must be measured in the same
    space: the one the norms :math:`v_j` are computed in.

    The moving averages stay on the device: :meth:`update` takes one
    minibatch or a block of them (folded in order, exactly as one update per
    minibatch would:
    :math:`m \leftarrow (1-\alpha)^K m + \sum_{k<K} \alpha (1-\alpha)^{K-1-k} x_k`)
    and launches a few kernels; only :meth:`read` synchronises.

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
        """Account for one minibatch, or for ``K`` minibatches of equal size in order.

        Parameters
        ----------
        norms : Tensor of shape (n_drawn,) or (K, n_drawn)
            Gradient norms :math:`v_j` of the drawn examples.
        weights : Tensor of the shape of ``norms``
            Their importance weights :math:`w_j = 1/(n p_j)`.
        batch_gradient_sq_norm : Tensor of shape () or (K,)
            :math:`\\|g_R\\|^2` of each minibatch gradient, in the same space.
        """
        weighted = (weights * norms.square()).double()
        samples = torch.stack(
            [
                weighted.mean(dim=-1),
                (weights * weighted).mean(dim=-1),
                batch_gradient_sq_norm.double(),
            ]
        ).reshape(3, -1)
        n_steps = samples.shape[1]
        keep = 1.0 - self.alpha
        ages = torch.arange(n_steps - 1, -1, -1, dtype=torch.float64, device=samples.device)
        self._moments.mul_(keep**n_steps).add_(samples @ (self.alpha * keep**ages))
        self._steps += n_steps

    def read(self) -> tuple[float, bool]:
        """The current estimate :math:`\\hat r` on the host, and whether every moment is finite.

        One device synchronisation. The estimate is clipped to
        ``[1, batch_size]`` and is 1 before the first update or while the
        minibatch gradient's moment is zero.
        """
        if self._steps == 0:
            return 1.0, True
        uniform_single, sampled_single, sampled_batch = self._moments.tolist()
        finite = all(map(math.isfinite, (uniform_single, sampled_single, sampled_batch)))
        if not finite or sampled_batch <= 0:
            return 1.0, finite
        ratio = 1.0 + (uniform_single - sampled_single) / (self.batch_size * sampled_batch)
        return min(max(ratio, 1.0), float(self.batch_size)), True

    @property
    def ratio(self) -> float:
        """:meth:`read`'s estimate alone."""
        return self.read()[0]
