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
from typing import Any

import torch
from torch import Tensor

from ._state_dict import ADVICE, checked_keys, restored_tensor


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


GAIN_STATE_KEYS = ("batch_size", "moments", "level", "steps")
"""The keys of :meth:`GainRatioEstimator.state_dict`."""

LEVEL_SPEEDUP = 10
"""How much faster than the moments the level of :math:`c` that normalises them forgets."""


def nominal_batch_moment(
    batch_gradient_sq_norm: Tensor, sampled_single: Tensor, size: int, batch_size: int
) -> Tensor:
    r"""An unbiased estimate of :math:`\mathbb E\|g_p\|^2` for minibatches of ``batch_size``.

    One minibatch of :math:`m` independent draws gives :math:`\|g_R\|^2`,
    unbiased for :math:`\|\bar g\|^2 + (\mathbb E\|g_{R1}\|^2 - \|\bar g\|^2)/m`
    (eq. 5), and :math:`\hat b = \mathrm{mean}_j\, w_j^2 v_j^2`, unbiased for
    :math:`\mathbb E\|g_{R1}\|^2`; so :math:`\hat g^2 = (m \|g_R\|^2 - \hat b)/(m-1)`
    is unbiased for :math:`\|\bar g\|^2`, and

    .. math:: \hat c_M = \hat g^2 + (\hat b - \hat g^2) / M

    for :math:`\mathbb E\|g_p\|^2` at the nominal size :math:`M`: the identity
    :math:`\|g_R\|^2` when :math:`m = M`. An epoch's short last minibatch
    would otherwise count as a full one, with :math:`M/m` times its variance.
    Needs :math:`m \ge 2`.
    """
    mean_gradient_sq_norm = (size * batch_gradient_sq_norm - sampled_single) / (size - 1)
    return mean_gradient_sq_norm + (sampled_single - mean_gradient_sq_norm) / batch_size


class GainRatioEstimator:
    r"""Online estimate of the gain ratio from the minibatches actually drawn (eq. 7).

    .. math::

        \hat r = 1 + \frac{\widehat{\mathbb E\|g_{U1}\|^2}
        - \widehat{\mathbb E\|g_{R1}\|^2}}{M\, \widehat{\mathbb E\|g_R\|^2}}

    From each minibatch, with :math:`w_j = 1 / (n p_j)` and :math:`v_j` the
    drawn examples' gradient norms, the unbiased estimates
    :math:`a_t = \mathrm{mean}_j\, w_j v_j^2` of :math:`\mathbb E\|g_{U1}\|^2`,
    :math:`b_t = \mathrm{mean}_j\, w_j^2 v_j^2` of :math:`\mathbb E\|g_{R1}\|^2`
    and :math:`c_t` (:func:`nominal_batch_moment`, the squared norm of the
    minibatch gradient for a full minibatch) of :math:`\mathbb E\|g_R\|^2`
    are each smoothed by an exponential moving average with parameter
    ``alpha`` (section 4.4).

    **Each step counts alike.** Plain moving averages of the moments make
    :math:`\hat r - 1` an average of the steps' gains weighted by their
    :math:`c_t`, which falls many-fold within a window of :math:`1/\alpha`
    steps: measured on real training (``docs/benchmarks.md``), the oldest
    steps dominated and the estimate was 0.2-0.8 times the exact eq. 6
    ratio. So every step's three moments are divided by the level of
    :math:`c` just before it (a bias-corrected moving average of the
    :math:`c_t` of the previous steps, with the same ``alpha``): a scale
    known before the draw, which keeps each normalised moment unbiased and
    makes the window an average of the per-step gains. The level forgets
    :data:`LEVEL_SPEEDUP` times faster than the moments (10 steps at the
    paper's :math:`\alpha`), so that it follows :math:`c` closely. The averages share
    one bias correction, which cancels in the ratio; the ratio is clipped to
    :math:`[1, M]` and starts at 1, as in AdaScale (Johnson et al., 2020).
    All three moments must be measured in the same space: the one the norms
    :math:`v_j` are computed in.

    The state stays on the device: :meth:`update` takes one minibatch or a
    block of them, folded in order exactly as one update per minibatch would
    be (:math:`m \leftarrow (1-\alpha)^K m + \sum_{k<K} \alpha
    (1-\alpha)^{K-1-k} x_k`, the scales of a block by a cumulative sum), and
    launches a few kernels; only :meth:`read` synchronises.

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
        self.level_alpha = min(LEVEL_SPEEDUP * alpha, 0.5)
        self.batch_size = batch_size
        self._moments = torch.zeros(3, dtype=torch.float64, device=device)
        self._level = torch.zeros((), dtype=torch.float64, device=device)  # EMA of c, unbiased
        self._steps = 0

    def update(self, norms: Tensor, weights: Tensor, batch_gradient_sq_norm: Tensor) -> None:
        """Account for one minibatch, or for ``K`` minibatches of equal size in order.

        A minibatch of one example says nothing about the mean gradient and
        is left out.

        Parameters
        ----------
        norms : Tensor of shape (n_drawn,) or (K, n_drawn)
            Gradient norms :math:`v_j` of the drawn examples.
        weights : Tensor of the shape of ``norms``
            Their importance weights :math:`w_j = 1/(n p_j)`.
        batch_gradient_sq_norm : Tensor of shape () or (K,)
            :math:`\\|g_R\\|^2` of each minibatch gradient, in the same space.
        """
        size = norms.shape[-1]
        if size < 2:
            return
        weighted = (weights * norms.square()).double().reshape(-1, size)
        uniform_single = weighted.mean(dim=1)
        sampled_single = (weights.double().reshape(-1, size) * weighted).mean(dim=1)
        batch = nominal_batch_moment(
            batch_gradient_sq_norm.double().reshape(-1), sampled_single, size, self.batch_size
        )
        # The level follows max(c_t, b_t / M): c_t is at least b_t / M unless it is noise below 0.
        scales = self._levels_before(torch.maximum(batch, sampled_single / self.batch_size))
        samples = torch.stack([uniform_single, sampled_single, batch]) / scales
        n_steps = samples.shape[1]
        keep = 1.0 - self.alpha
        ages = torch.arange(n_steps - 1, -1, -1, dtype=torch.float64, device=samples.device)
        self._moments.mul_(keep**n_steps).add_(samples @ (self.alpha * keep**ages))
        self._steps += n_steps

    def update_in_order(
        self, norms: Tensor, weights: Tensor, batch_gradient_sq_norms: Tensor, size: int
    ) -> None:
        """Account for consecutive minibatches of ``size`` draws, the last one possibly shorter.

        Parameters
        ----------
        norms, weights : Tensor of shape (n_draws,)
            The draws of the minibatches, in order (see :meth:`update`).
        batch_gradient_sq_norms : Tensor of shape (n_minibatches,)
            :math:`\\|g_R\\|^2` of each minibatch.
        size : int
            Draws per minibatch, but for the last.
        """
        n_full = len(norms) // size
        full = n_full * size
        if n_full:
            self.update(
                norms[:full].view(n_full, size),
                weights[:full].view(n_full, size),
                batch_gradient_sq_norms[:n_full],
            )
        if full < len(norms):
            self.update(norms[full:], weights[full:], batch_gradient_sq_norms[-1])

    def _levels_before(self, batch: Tensor) -> Tensor:
        r"""The bias-corrected moving average of ``batch`` before each of the block's steps.

        With :math:`S` the uncorrected average and :math:`t_0` the steps so
        far, after step :math:`k` of the block
        :math:`S_k = q^{k+1} S + \alpha q^k \sum_{j \le k} q^{-j} c_j`
        (:math:`q = 1 - \alpha`), corrected by :math:`1 - q^{t_0 + k + 1}`.
        The very first step, with nothing before it, is scaled by its own
        :math:`c` (clamped positive, like every scale).
        """
        alpha = self.level_alpha
        keep = 1.0 - alpha
        positions = torch.arange(len(batch), dtype=torch.float64, device=batch.device)
        cumulative = torch.cumsum(batch * keep**-positions, dim=0)
        after = keep ** (positions + 1) * self._level + alpha * keep**positions * cumulative
        corrected = after / (1.0 - keep ** (self._steps + positions + 1))
        first = self._level / (1.0 - keep**self._steps) if self._steps else batch[0]
        self._level = after[-1]
        return torch.cat([first.reshape(1), corrected[:-1]]).clamp_min(1e-300)

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

    def state_dict(self) -> dict[str, Tensor | int]:
        """The checkpoint's ``gain``: the moving averages on the device and their age.

        ``batch_size``, :math:`M`; ``moments`` (3,) float64, the averages of
        :math:`a_t, b_t, c_t` (uncorrected); ``level`` () float64, the
        average of :math:`c` that normalises them; ``steps``, the minibatches
        folded in so far. ``alpha`` is the fit's ``gain_ema``.
        """
        return {
            "batch_size": self.batch_size,
            "moments": self._moments,
            "level": self._level,
            "steps": self._steps,
        }

    def load_state_dict(self, state: Any) -> None:
        """Continue from :meth:`state_dict`; a :class:`ValueError` for another ``batch_size``."""
        state = checked_keys(state, GAIN_STATE_KEYS, "gain")
        if state["batch_size"] != self.batch_size:
            raise ValueError(
                f"the checkpoint's gain estimate is for minibatches of {state['batch_size']!r}; "
                f"this fit draws {self.batch_size}. {ADVICE}"
            )
        self._moments = restored_tensor(state["moments"], self._moments, "gain.moments")
        self._level = restored_tensor(state["level"], self._level, "gain.level")
        self._steps = state["steps"]
