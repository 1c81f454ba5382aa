"""Minibatch policies: which examples form a minibatch and how their losses are weighted.

ERM, RGD and RAIS share one training engine and differ only in the policy it
consults: the order in which examples are drawn, the per-example multipliers of
their losses and, for RAIS, a factor on the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from ._data import TensorDataset


@dataclass(frozen=True)
class TrainingStep:
    """What the engine knows about a minibatch after its forward pass.

    Attributes
    ----------
    inputs : Tensor of shape (batch_size, ...)
        The examples.
    targets : Tensor of shape (batch_size,)
        Their encoded labels.
    indices : Tensor of shape (batch_size,)
        Their positions in the training set.
    sample_weight : Tensor of shape (batch_size,)
        The user's sample weights (times class weights) of those examples.
    logits : Tensor of shape (batch_size, n_classes)
        The network's output, still attached to the autograd graph.
    losses : Tensor of shape (batch_size,)
        Detached per-example cross-entropies.
    """

    inputs: Tensor
    targets: Tensor
    indices: Tensor
    sample_weight: Tensor
    logits: Tensor
    losses: Tensor


class MinibatchPolicy:
    """Uniform minibatches without replacement and unit loss weights (plain ERM).

    Each epoch visits a fresh random permutation of the training set in
    consecutive slices of ``batch_size`` examples. Subclasses override
    :meth:`loss_weights` to reweight examples and :meth:`epoch_batches`,
    :attr:`progress` or :meth:`lr_factor` to sample them differently.

    The engine calls :meth:`reset` once before training and
    :meth:`begin_training` once the network exists, iterates
    :meth:`epoch_batches` once per epoch, asks :meth:`sampling_weights` before
    and :meth:`loss_weights` after each minibatch's forward pass, records
    :meth:`epoch_statistics` in the history at the end of each epoch and calls
    :meth:`end_training` when training stops.

    Attributes
    ----------
    progress_limit : float
        The engine ends training once :attr:`progress` reaches it (its
        ``max_epochs``); a policy whose progress runs ahead of its epochs may
        end an epoch early there, instead of drawing minibatches that the
        schedule no longer wants.
    """

    progress_limit: float = math.inf

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        """Prepare for training on ``n_samples`` examples stored on ``device``.

        Parameters
        ----------
        n_samples : int
            Size of the training set.
        generator : torch.Generator
            The seeded CPU generator every random draw of the policy uses.
        device : torch.device
            Where the training tensors live; index tensors are put there.
        """
        self.n_samples = n_samples
        self.generator = generator
        self.device = device
        self.samples_seen = 0
        self.epochs_started = 0

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        """Training of ``module`` on ``dataset`` (the training set) starts."""

    def end_training(self) -> None:
        """Training stopped; release what :meth:`begin_training` acquired, and the generator."""
        self.generator = None

    def checkpoint_state(self) -> dict[str, Any]:
        """What a resumed fit needs to go on where this one is, at the end of an epoch.

        Progress (which drives the learning-rate schedule and the stop), the
        epoch count and the state of the random generator: tensors and plain
        values only.
        """
        return {
            "n_samples": self.n_samples,
            "samples_seen": self.samples_seen,
            "epochs_started": self.epochs_started,
            "generator": self.generator.get_state(),
        }

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`checkpoint_state` (after :meth:`begin_training`)."""
        if state["n_samples"] != self.n_samples:
            raise ValueError(
                f"the checkpoint was written while training on {state['n_samples']} examples; "
                f"this fit trains on {self.n_samples}."
            )
        self.samples_seen = state["samples_seen"]
        self.epochs_started = state["epochs_started"]
        self.generator.set_state(state["generator"])

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        """Yield the index tensors of one epoch's minibatches."""
        self.epochs_started += 1
        order = torch.randperm(self.n_samples, generator=self.generator).to(self.device)
        for start in range(0, self.n_samples, batch_size):
            indices = order[start : start + batch_size]
            yield indices
            self._advance(len(indices))

    def _advance(self, n_drawn: int) -> None:
        """Account for a finished step that drew ``n_drawn`` examples."""
        self.samples_seen += n_drawn

    @property
    def progress(self) -> float:
        """Training progress in epochs: examples drawn so far over ``n_samples``."""
        return self.samples_seen / self.n_samples

    def sampling_weights(self) -> Tensor | None:
        """Importance weights :math:`1 / (n p_i)` of the minibatch just drawn.

        ``None`` when sampling is uniform. Weighted batch-normalisation layers
        use them for their training statistics.
        """
        return None

    def lr_factor(self) -> float:
        """Multiplier of the scheduled learning rate for the next step."""
        return 1.0

    def loss_weights(self, step: TrainingStep) -> Tensor | None:
        """Per-example multipliers of the minibatch's losses, or ``None`` for all ones.

        Called once per training step, after the forward pass and before the
        backward pass; a policy may update its state from ``step`` here.
        """
        return None

    def epoch_statistics(self) -> dict[str, float]:
        """Statistics of the epoch that just ended, recorded in ``history_``."""
        return {}


class WeightStatistics:
    """Minimum, mean and maximum of the per-example loss weights of an epoch.

    :meth:`update` only keeps a reference to each minibatch's weights, so the
    training loop launches no extra kernel and waits for no device; the
    statistics are reduced once, in :meth:`summary`.
    """

    def __init__(self) -> None:
        self._batches: list[Tensor] = []

    def update(self, weights: Tensor) -> None:
        """Account for one minibatch's weights."""
        self._batches.append(weights)

    def summary(self, prefix: str = "weight") -> dict[str, float]:
        """``{prefix}_min``, ``_mean`` and ``_max`` since the last summary, then forget them.

        All three are 1 when no weights were recorded (e.g. a warm-up epoch).
        """
        if not self._batches:
            return {f"{prefix}_min": 1.0, f"{prefix}_mean": 1.0, f"{prefix}_max": 1.0}
        weights = torch.cat(self._batches)
        self._batches = []
        low, high = torch.aminmax(weights)
        return {
            f"{prefix}_min": low.item(),
            f"{prefix}_mean": weights.mean().item(),
            f"{prefix}_max": high.item(),
        }
