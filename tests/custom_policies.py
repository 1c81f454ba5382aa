"""Minibatch policies written as a user would, for the tests of the extension point."""

from __future__ import annotations

import torch
from torch import Tensor

from sk_reweight import MinibatchPolicy, TrainingStep


class FocalPolicy(MinibatchPolicy):
    """The focal loss as loss weights: ``(1 - p_y) ** gamma``, ``p_y = exp(-loss)``."""

    def __init__(self, gamma: float = 2.0):
        self.gamma = gamma

    def loss_weights(self, step: TrainingStep) -> Tensor:
        return (1 - torch.exp(-step.losses)) ** self.gamma
