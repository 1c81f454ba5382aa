"""What RAIS-SGD and the oracle O-SGD share: importance-sampled minibatches with gain-ratio steps.

Section 3 of the paper: a minibatch of :math:`M` examples drawn independently,
with replacement, from :math:`p`, each loss multiplied by :math:`1/(n p_i)`
(eq. 4), and the learning rate multiplied by the gain ratio :math:`r`
(section 3.2), so that training progresses by :math:`r` uniform steps per
step: its *epochs equivalent* drive the schedule and the stop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from .._data import TensorDataset
from .._policies import MinibatchPolicy
from ._history import FEATURE_NAMES
from ._norms import GradientProbe, check_logits_from_last_layer
from ._uncertainty import effective_sample_size


class SamplingTable:
    r"""A distribution :math:`p \propto` ``scores`` ready for many minibatch draws.

    Built once (a cumulative sum in float64 and the importance weights
    :math:`1/(n p_i)`), it draws a minibatch of :math:`M` examples
    independently and with replacement by inverse transform sampling, in
    :math:`O(M \log n)` and three kernels, without reading the device:
    :math:`u \sim U(0, 1]`, :math:`i = \min\{i : F_i \geq u F_n\}`, so an
    example of score 0 is never drawn.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        Non-negative, finite, not all zero; proportional to :math:`p`.
    """

    def __init__(self, scores: Tensor) -> None:
        self.cumulative = scores.cumsum(0, dtype=torch.float64)
        self.total = self.cumulative[-1]
        # 1 / (n p_i) = total / (n s_i); infinite for never-drawn zero scores.
        self.weights = (self.total / (len(scores) * scores.double())).float()

    def draw(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Indices of ``batch_size`` independent draws."""
        uniform = torch.rand(
            batch_size, generator=generator, dtype=torch.float64, device=self.total.device
        )
        return torch.searchsorted(self.cumulative, uniform.neg_().add_(1.0).mul_(self.total))


class ImportanceSamplingPolicy(MinibatchPolicy):
    r"""Base of the importance-sampling policies: draws, unbiasing weights, epochs equivalent.

    Subclasses decide the scores :math:`p \propto v` (:meth:`probabilities`)
    and the gain ratio of each step (``self._ratio``, a host float that
    :meth:`_advance` and :meth:`lr_factor` read without touching the device).

    Parameters
    ----------
    grad_norm : {'logits', 'last_layer', 'exact'}
        Space of the per-example gradients (see ``_norms``).
    lr_scaling : bool
        Multiply the learning rate by the gain ratio and drive the schedule
        by epochs equivalent; ``False`` keeps uniform SGD's step sizes.
    """

    progress_unit = "epochs equivalent"
    supports_partial_fit = False  # the norm histories would start over with every chunk

    def __init__(self, grad_norm: str = "last_layer", lr_scaling: bool = True) -> None:
        self.grad_norm = grad_norm
        self.lr_scaling = lr_scaling

    def check_module(self, module: nn.Module, inputs: Tensor) -> None:
        if self.grad_norm == "last_layer":
            check_logits_from_last_layer(module, inputs)

    def fitted_attributes(self, training_rows: NDArray[np.intp], n_rows: int) -> dict[str, Any]:
        """``sampling_probabilities_`` (over the rows of the ``X`` passed to ``fit``; 0 for
        those held out), ``uncertainty_set_`` (``None`` without a (PT) solve) and
        ``feature_names_uncertainty_``."""
        probabilities = np.zeros(n_rows)
        probabilities[training_rows] = self.final_probabilities.double().cpu().numpy()
        return {
            "sampling_probabilities_": probabilities,
            "uncertainty_set_": getattr(self, "uncertainty_set", None),
            "feature_names_uncertainty_": FEATURE_NAMES,
        }

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.samples_equivalent = 0.0
        seed = int(torch.randint(2**62, (1,), generator=generator))
        self.sampler = torch.Generator(device).manual_seed(seed)
        self._ratio = 1.0
        self._batch_weights: Tensor | None = None
        self.final_probabilities: Tensor | None = None
        self._reset_epoch_statistics()

    def _reset_epoch_statistics(self) -> None:
        self._ratio_sum = 0.0
        self._steps_in_epoch = 0

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        self.module = module
        self.dataset = dataset
        self.probe = GradientProbe(self.grad_norm, module)
        sample_weight = dataset.sample_weight
        self.relative_weight = None
        # Equal sample weights (the usual case) need no per-step reweighting at all.
        if not bool((sample_weight == sample_weight[0]).all()):
            mean_weight = sample_weight.mean()
            positive = mean_weight > 0
            self.relative_weight = sample_weight / mean_weight if positive else sample_weight

    def end_training(self) -> None:
        self.final_probabilities = self.probabilities()
        self.probe.release()
        super().end_training()
        # Training data, per-example state and the device generator are not part of the
        # fitted model.
        self.module = self.dataset = self.probe = self.relative_weight = None
        self._batch_weights = self.sampler = None

    def probabilities(self) -> Tensor:
        """The sampling distribution over the training set for the next minibatch."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "samples_equivalent": self.samples_equivalent,
            "ratio": self._ratio,
            "sampler": self.sampler.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.samples_equivalent = state["samples_equivalent"]
        self._ratio = state["ratio"]
        self.sampler.set_state(state["sampler"])

    # ------------------------------------------------------------- sampling

    @property
    def progress(self) -> float:
        """Epochs equivalent :math:`\\hat t M / n`: steps weighted by their gain ratio."""
        return self.samples_equivalent / self.n_samples

    def step_ratio(self) -> float:
        """Gain ratio of the next step: the uniform steps it is worth (1 for a uniform step)."""
        return self._ratio

    def lr_factor(self) -> float:
        return self.step_ratio() if self.lr_scaling else 1.0

    def sampling_weights(self) -> Tensor | None:
        return self._batch_weights

    def _draw(self, table: SamplingTable, n_drawn: int) -> Tensor:
        """Draw a minibatch from ``table`` and keep its weights :math:`1/(n p_i)`."""
        indices = table.draw(n_drawn, self.sampler)
        self._batch_weights = table.weights.index_select(0, indices)
        return indices

    def _advance(self, n_drawn: int) -> None:
        super()._advance(n_drawn)
        self.samples_equivalent += self.lr_factor() * n_drawn
        self._ratio_sum += self.step_ratio()
        self._steps_in_epoch += 1

    def _relative_weight(self, indices: Tensor) -> Tensor | None:
        """The drawn examples' sample weights over the mean; ``None`` when all are equal."""
        return None if self.relative_weight is None else self.relative_weight[indices]

    @staticmethod
    def _unbiased(multipliers: Tensor, relative_weight: Tensor | None) -> Tensor:
        r"""Loss multipliers that make the engine's step unbiased for the weighted mean loss.

        The engine divides by the batch's summed sample weights; the factor
        :math:`\sum_{\text{batch}} (u_i / \bar u) / M` turns the step into
        :math:`\frac1M \sum_i (u_i/\bar u)\, r_i \ell_i`.
        """
        if relative_weight is None:
            return multipliers
        return multipliers * (relative_weight.sum() / len(relative_weight))

    # ----------------------------------------------------------- statistics

    def epoch_statistics(self) -> dict[str, float | str]:
        # The last minibatch of the epoch was drawn uniformly (no weights) or from probabilities().
        probabilities = None if self._batch_weights is None else self.probabilities()
        statistics = {
            "gain_ratio": self._ratio_sum / self._steps_in_epoch if self._steps_in_epoch else 1.0,
            "epochs_equivalent": self.progress,
            "effective_sample_size": (
                1.0 if probabilities is None else effective_sample_size(probabilities)
            ),
        }
        self._reset_epoch_statistics()
        return statistics
