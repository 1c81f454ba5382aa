"""Training data as tensors: :class:`TensorDataset` and the minibatches cut from it.

Batches are cut by indexing device-resident tensors, never by collating
examples; a training epoch's minibatches come in the order it is given (the
engine asks its minibatch policy for it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
import skorch.dataset
import torch
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split
from torch import Tensor


class Targets(NamedTuple):
    """What a labelled minibatch carries besides its inputs.

    Attributes
    ----------
    y : Tensor of shape (batch_size,)
        Encoded labels (class indices).
    sample_weight : Tensor of shape (batch_size,)
        The user's sample weights times class weights.
    indices : Tensor of shape (batch_size,) or slice
        The examples' positions in the dataset.
    """

    y: Tensor
    sample_weight: Tensor
    indices: Any


class Batch(NamedTuple):
    """A minibatch as skorch sees it, ``(X, targets)``; ``targets`` is ``None`` for prediction.

    skorch unpacks it as ``X, y = batch``, so that its evaluation and
    validation steps receive the :class:`Targets` as their ``y``.
    """

    X: Tensor
    targets: Targets | None


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
            return Batch(self.X[index], None)
        return Batch(self.X[index], Targets(self.y[index], self.sample_weight[index], index))

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
    X = batch.X.to(device, non_blocking=True)
    if batch.targets is None:
        return Batch(X, None)
    y, sample_weight, indices = batch.targets
    targets = Targets(
        y.to(device, non_blocking=True), sample_weight.to(device, non_blocking=True), indices
    )
    return Batch(X, targets)


class TensorBatches:
    """Iterable over a :class:`TensorDataset` in minibatches.

    With ``epoch_order``, each iteration is one training epoch whose
    minibatches are the index tensors ``epoch_order()`` yields; without, the
    dataset is cut into consecutive slices (evaluation).
    """

    def __init__(
        self,
        dataset: TensorDataset,
        batch_size: int,
        device: torch.device | str,
        epoch_order: Callable[[], Iterable[Tensor]] | None = None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.epoch_order = epoch_order

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.epoch_order is None:
            indices: Iterable[Any] = (
                slice(start, start + self.batch_size)
                for start in range(0, len(self.dataset), self.batch_size)
            )
        else:
            indices = self.epoch_order()
        target, data = torch.device(self.device), self.dataset.X.device
        on_device = target.type == data.type and target.index in (None, data.index)
        for index in indices:
            batch = self.dataset[index]
            yield batch if on_device else _to_device(batch, self.device)


def private_tensor(X: NDArray[np.float32], given: Any) -> torch.Tensor:
    """A tensor of the validated inputs ``X`` that shares no memory with the caller's ``given``.

    When validation converted the caller's data (float64 to float32, a
    DataFrame or a list to an array), ``X`` is a new array that owns its
    memory, and the tensor takes it over without a copy: 4 bytes per feature
    and row less at the peak of ``fit`` (191 MiB per million rows of 50
    features). Otherwise ``X`` is the caller's array or a view of it, and is
    copied, so that training never holds a view of the caller's data.
    """
    fresh = X is not given and X.flags.owndata and X.flags.writeable
    return torch.from_numpy(X) if fresh else torch.tensor(X)


def data_device(device: torch.device, nbytes: int) -> torch.device:
    """Where the training tensors live: on a GPU when they take under half of its free memory."""
    if device.type != "cuda":
        return device
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return device if nbytes < free_bytes // 2 else torch.device("cpu")


def train_validation_split(
    dataset: TensorDataset, y: NDArray[np.int64], validation_fraction: float | None, seed: int
) -> tuple[TensorDataset, TensorDataset | None, NDArray[np.intp]]:
    """The training set, the validation set and the positions of the training examples.

    ``validation_fraction=None`` keeps every example for training. The
    split is stratified whenever both parts can hold every class of ``y``
    (class indices ``0 .. n_classes - 1``).
    """
    if validation_fraction is None:
        return dataset, None, np.arange(len(y))
    n_valid = int(np.ceil(validation_fraction * len(y)))
    if n_valid >= len(y):
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training data "
            f"out of {len(y)} samples."
        )
    counts = np.bincount(y)
    can_stratify = min(n_valid, len(y) - n_valid) >= len(counts) and counts.min() >= 2
    train, valid = train_test_split(
        np.arange(len(y)),
        test_size=n_valid,
        random_state=seed,
        stratify=y if can_stratify else None,
    )
    return dataset.subset(train), dataset.subset(valid), train


def largest_feature_scale(X: Tensor) -> float:
    r"""The largest root mean square of an input feature (a pixel, for images) over the examples.

    :math:`\max_j \sqrt{\frac1n \sum_i x_{ij}^2}`: about 1 for standardised
    features, at most 1 for features in :math:`[0, 1]`, in the hundreds for
    raw pixel values or unscaled measurements (wine's proline: about 800).
    One reduction on ``X``'s device, without a squared copy of it.
    """
    rows = X.reshape(len(X), -1).float()
    return float(torch.linalg.vector_norm(rows, dim=0).max()) / len(X) ** 0.5
