"""O-SGD, the oracle importance sampler of section 3: exact norms of every example, every step."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .._policies import TrainingStep
from ._gain import exact_gain_ratio
from ._sampling import ImportanceSamplingPolicy, SamplingTable
from ._uncertainty import sampling_distribution

ORACLE_CHUNK = 1024
"""Examples per forward pass when the oracle measures the whole training set."""


class OraclePolicy(ImportanceSamplingPolicy):
    r"""Minibatches drawn with :math:`p_i \propto \|\nabla f_i\|`, measured before every step.

    Proposition 3.1: sampling proportionally to the true per-example gradient
    norms minimises the variance of the unbiased stochastic gradient; the
    learning rate is multiplied by the exact gain ratio of eq. 6. It costs a
    pass over the training set per step: the reference that RAIS
    approximates, for small problems and tests. No history, no (PT).

    Parameters
    ----------
    grad_norm : {'logits', 'last_layer', 'exact'}
        Space of the per-example gradients (see ``_norms``).
    lr_scaling : bool
        Multiply the learning rate by the exact gain ratio and drive the
        schedule by epochs equivalent.
    """

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        self.epochs_started += 1
        self._batch_size = batch_size
        for start in range(0, self.n_samples, batch_size):
            if self.progress >= self.progress_limit:
                return  # the schedule is complete: the engine stops before the next epoch
            n_drawn = min(batch_size, self.n_samples - start)
            indices = self._draw(SamplingTable(self._measure(update_ratio=True)), n_drawn)
            yield indices
            self._advance(n_drawn)

    def probabilities(self) -> Tensor:
        return self._measure(update_ratio=False)

    def loss_weights(self, step: TrainingStep) -> Tensor:
        # The oracle measured every example before drawing: nothing to record.
        return self._unbiased(self._batch_weights, self._relative_weight(step.indices))

    def _measure(self, update_ratio: bool) -> Tensor:
        """Exact norms of every example (O-SGD); optionally set the exact gain ratio."""
        norms, mean_gradient = [], 0.0
        was_training = self.module.training
        self.module.eval()
        try:
            for start in range(0, self.n_samples, ORACLE_CHUNK):
                X, targets = self.dataset[slice(start, start + ORACLE_CHUNK)]
                with torch.no_grad():
                    logits = self.module(X)
                gradients = self.probe.gradients(X, logits, targets.y)
                relative_weight = self._relative_weight(targets.indices)
                chunk_norms = gradients.norms
                coefficients = torch.full_like(chunk_norms, 1.0 / self.n_samples)
                if relative_weight is not None:
                    chunk_norms = chunk_norms * relative_weight
                    coefficients = coefficients * relative_weight
                norms.append(chunk_norms)
                mean_gradient = mean_gradient + gradients.weighted_sum(coefficients)
        finally:
            self.module.train(was_training)
        norms = torch.cat(norms)
        probabilities = sampling_distribution(norms)
        if update_ratio:
            ratio = exact_gain_ratio(
                norms, probabilities, mean_gradient.square().sum().item(), self._batch_size
            )
            self._ratio = min(max(ratio, 1.0), float(self._batch_size))
        return probabilities
