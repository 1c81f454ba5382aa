"""Training data as tensors: :class:`TensorDataset` and the minibatches cut from it.

Batches are cut by indexing device-resident tensors, never by collating
examples; a :class:`~sk_reweight._policies.MinibatchPolicy` chooses the indices
of each training minibatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import skorch.dataset
import torch
from numpy.typing import NDArray
from torch import Tensor

if TYPE_CHECKING:
    from ._policies import MinibatchPolicy

Batch = tuple[Tensor, tuple[Tensor, Tensor, Any] | None]


class TensorDataset(skorch.dataset.Dataset):
    """Inputs, encoded labels and sample weights held as tensors.

    Batches are cut by indexing the tensors, never by collating examples.
    A :class:`skorch.dataset.Dataset` only by type, so that skorch's scoring
    callbacks read ``X`` and ``y`` from it even without their prediction
    cache (``EpochScoring(use_caching=False)``); none of that class's
    conversions apply.

    Parameters
    ----------
    X : Tensor of shape (n_samples, ...)
        float32 inputs.
    y : Tensor of shape (n_samples,), optional
        int64 class indices; ``None`` for prediction.
    sample_weight : Tensor of shape (n_samples,), optional
        float32 weights; required when ``y`` is given.
    """

    def __init__(self, X: Tensor, y: Tensor | None = None, sample_weight: Tensor | None = None):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: Any) -> Batch:
        if self.y is None:
            return self.X[index], None
        return self.X[index], (self.y[index], self.sample_weight[index], index)

    def _map(self, function: Callable[[Tensor], Tensor]) -> TensorDataset:
        tensors = (self.X, self.y, self.sample_weight)
        return TensorDataset(*(None if t is None else function(t) for t in tensors))

    def to(self, device: torch.device | str) -> TensorDataset:
        """Return a copy of the dataset whose tensors live on ``device``."""
        return self._map(lambda tensor: tensor.to(device))

    def subset(self, indices: NDArray[np.intp]) -> TensorDataset:
        """Return the examples at ``indices`` as a new dataset."""
        index = torch.as_tensor(indices, device=self.X.device)
        return self._map(lambda tensor: tensor[index])

    @property
    def nbytes(self) -> int:
        """Memory the tensors occupy."""
        tensors = (t for t in (self.X, self.y, self.sample_weight) if t is not None)
        return sum(t.element_size() * t.nelement() for t in tensors)


def _to_device(batch: Batch, device: torch.device | str) -> Batch:
    X, target = batch
    X = X.to(device, non_blocking=True)
    if target is None:
        return X, None
    y, sample_weight, index = target
    return X, (y.to(device, non_blocking=True), sample_weight.to(device, non_blocking=True), index)


class TensorBatches:
    """Iterable over a :class:`TensorDataset` in minibatches.

    With a policy, each iteration is one training epoch in the policy's order;
    without, the dataset is cut into consecutive slices (evaluation).
    """

    def __init__(
        self,
        dataset: TensorDataset,
        batch_size: int,
        device: torch.device | str,
        policy: MinibatchPolicy | None = None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.policy = policy

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.policy is None:
            indices = (
                slice(start, start + self.batch_size)
                for start in range(0, len(self.dataset), self.batch_size)
            )
        else:
            indices = self.policy.epoch_batches(self.batch_size)
        target, data = torch.device(self.device), self.dataset.X.device
        on_device = target.type == data.type and target.index in (None, data.index)
        for index in indices:
            batch = self.dataset[index]
            yield batch if on_device else _to_device(batch, self.device)


def largest_feature_scale(X: Tensor) -> float:
    r"""The largest root mean square of an input feature (a pixel, for images) over the examples.

    :math:`\max_j \sqrt{\frac1n \sum_i x_{ij}^2}`: about 1 for standardised
    features, at most 1 for features in :math:`[0, 1]`, in the hundreds for
    raw pixel values or unscaled measurements (wine's proline: about 800).
    One reduction on ``X``'s device, without a squared copy of it.
    """
    rows = X.reshape(len(X), -1).float()
    return float(torch.linalg.vector_norm(rows, dim=0).max()) / len(X) ** 0.5
