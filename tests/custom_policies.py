"""Minibatch policies written as a user would, for the tests of the extension point.

They live in a module of their own, not in a test, so that a classifier holding one pickles
(pickle finds a class by its module and name) and saves with skops.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from sk_reweight import MinibatchPolicy, TrainingStep


class FocalPolicy(MinibatchPolicy):
    """The focal loss as loss weights: ``(1 - p_y) ** gamma``, ``p_y = exp(-loss)``."""

    def __init__(self, gamma: float = 2.0):
        self.gamma = gamma

    def loss_weights(self, step: TrainingStep) -> Tensor:
        return (1 - torch.exp(-step.losses)) ** self.gamma


class MistakesPolicy(MinibatchPolicy):
    """A sampling policy with state across epochs: each epoch trains on the examples
    misclassified when last seen and a random ``share`` of the others (the first on all).

    Its progress counts epochs, the drawn fraction of the current one included; its state
    (progress, the per-example record, the generator) is checkpointed. ``partial_fit`` would
    train every chunk under a fresh policy, i.e. on all of it: the policy does not offer it.
    """

    supports_partial_fit = False

    def __init__(self, share: float = 0.2):
        self.share = share

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.mistaken = torch.ones(n_samples, dtype=torch.bool, device=device)
        self.epochs = 0.0
        self.trained_fraction = 1.0

    @property
    def progress(self) -> float:
        return self.epochs

    def epoch_batches(self, batch_size: int):
        drawn = torch.rand(self.n_samples, generator=self.generator).to(self.device)
        chosen = torch.nonzero(self.mistaken | (drawn < self.share)).squeeze(1)
        order = chosen[torch.randperm(len(chosen), generator=self.generator).to(self.device)]
        self.trained_fraction = len(chosen) / self.n_samples
        first = self.epochs
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
            self.epochs = first + min(start + batch_size, len(order)) / len(order)

    def loss_weights(self, step: TrainingStep) -> None:
        self.mistaken[step.indices] = step.output.argmax(dim=1) != step.targets
        return None

    def epoch_statistics(self) -> dict[str, float]:
        return {"trained_fraction": self.trained_fraction}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "epochs": self.epochs, "mistaken": self.mistaken.cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.epochs = state["epochs"]
        self.mistaken.copy_(state["mistaken"])

    def end_training(self) -> None:
        super().end_training()
        self.mistaken = None


class DrawCountPolicy(MinibatchPolicy):
    """ERM that counts how often each example is drawn: per epoch in ``history_``
    (``examples_drawn``), per row of ``X`` as the fitted attribute ``draw_counts_``."""

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.counts = torch.zeros(n_samples, dtype=torch.int64, device=device)
        self.drawn_in_epoch = 0

    def loss_weights(self, step: TrainingStep) -> None:
        self.counts[step.indices] += 1
        self.drawn_in_epoch += len(step.indices)
        return None

    def epoch_statistics(self) -> dict[str, float]:
        drawn, self.drawn_in_epoch = self.drawn_in_epoch, 0
        return {"examples_drawn": drawn}

    def fitted_attributes(self, training_rows: np.ndarray, n_rows: int) -> dict:
        counts = np.zeros(n_rows, dtype=np.int64)
        counts[training_rows] = self.counts.cpu().numpy()
        return {"draw_counts_": counts}


class NoDropoutPolicy(MinibatchPolicy):
    """Refuses a network with dropout layers, as a policy that needs deterministic forward
    passes (e.g. to compare an example's losses between epochs) would."""

    def check_module(self, module: nn.Module, inputs: Tensor) -> None:
        if any(isinstance(layer, nn.Dropout) for layer in module.modules()):
            raise ValueError(
                "NoDropoutPolicy compares an example's losses between epochs, which dropout "
                "makes random; train a network without dropout (dropout=0)."
            )
