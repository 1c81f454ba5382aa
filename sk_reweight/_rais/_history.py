"""Per-example gradient-norm histories, the RAIS features, and the (PT) training records.

Section 6 of the RAIS paper builds each example's feature vector from the
gradient norms recorded the last times the example was drawn: simple moving
averages over windows of 1, 2, 4, 8 and 16 records, the variance and standard
deviation of the windows of at least 4 records, and a constant bias. Section
4.3 trains the uncertainty set on the most recent (features, norm, weight)
triples. Both live here, vectorised over the whole dataset, on the training
device.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

HISTORY_LENGTH = 16
"""Gradient norms remembered per example: the longest moving-average window."""

WINDOWS = (1, 2, 4, 8, 16)
"""Moving-average windows of the features."""

SPREAD_WINDOWS = tuple(window for window in WINDOWS if window >= 4)
"""Windows that also contribute a variance and a standard deviation."""

FEATURE_NAMES: tuple[str, ...] = (
    *(f"mean_{window}" for window in WINDOWS),
    *(f"var_{window}" for window in SPREAD_WINDOWS),
    *(f"std_{window}" for window in SPREAD_WINDOWS),
    "bias",
)
"""Names of the columns of :func:`norm_history_features`, in order."""


def norm_history_features(history: Tensor, counts: Tensor) -> Tensor:
    r"""RAIS features of examples from their recorded gradient norms (section 6).

    For every window :math:`w \in \{1, 2, 4, 8, 16\}` the mean of the example's
    last :math:`\min(w, k)` recorded norms (:math:`k` the number recorded so
    far); for :math:`w \geq 4` also their population variance and standard
    deviation; then a constant bias of 1. An example with no record has zero
    features except the bias. Every feature is non-negative, as (PT) requires.

    Parameters
    ----------
    history : Tensor of shape (n_examples, 16)
        Recorded norms, oldest first; the last ``counts[i]`` entries of row
        ``i`` are valid.
    counts : Tensor of shape (n_examples,)
        Number of valid records per example (values above 16 count as 16).

    Returns
    -------
    features : Tensor of shape (n_examples, len(FEATURE_NAMES))
        Columns in the order of :data:`FEATURE_NAMES`.
    """
    n_examples, length = history.shape
    # Sums of the last j values (j = 1..16) by a cumulative sum from the newest end; each
    # window w reads the sum of its min(w, count) valid values. The values are taken relative
    # to the newest one, which leaves the variances unchanged and keeps E[x^2] - E[x]^2 free
    # of cancellation when the norms barely vary.
    newest_first = history.flip(1)
    newest = newest_first[:, :1]
    relative = newest_first - newest
    sums = relative.cumsum(dim=1)
    square_sums = relative.square().cumsum(dim=1)
    windows = torch.tensor(WINDOWS, device=history.device)
    valid = torch.minimum(counts.clamp(max=length).unsqueeze(1), windows)
    column = (valid - 1).clamp_min(0)
    size = valid.clamp_min(1).to(history.dtype)
    empty = valid == 0
    relative_means = sums.gather(1, column) / size
    means = (newest + relative_means).masked_fill(empty, 0.0)
    first = WINDOWS.index(SPREAD_WINDOWS[0])
    mean_squares = square_sums.gather(1, column[:, first:]) / size[:, first:]
    mean_squares = mean_squares.masked_fill(empty[:, first:], 0.0)
    variances = (mean_squares - relative_means[:, first:].square()).clamp_min(0.0)
    bias = torch.ones(n_examples, 1, dtype=history.dtype, device=history.device)
    return torch.cat([means, variances, variances.sqrt(), bias], dim=1)


class NormHistory:
    """The last 16 gradient norms of every training example and their features.

    Parameters
    ----------
    n_examples : int
        Size of the training set.
    device : torch.device
        Where the history and the feature matrix live.
    """

    def __init__(self, n_examples: int, device: torch.device) -> None:
        self.history = torch.zeros(n_examples, HISTORY_LENGTH, device=device)
        self.counts = torch.zeros(n_examples, dtype=torch.long, device=device)
        self.features = norm_history_features(self.history, self.counts)

    def record(self, indices: Tensor, norms: Tensor) -> Tensor:
        """Append one norm to each example's history and refresh its features.

        An example drawn several times in one minibatch (sampling is with
        replacement) is recorded once, with its first norm: all copies share
        the same parameters.

        Returns
        -------
        updated : Tensor
            The distinct indices whose features changed.
        """
        indices, first = _first_occurrences(indices)
        rows = torch.cat([self.history[indices, 1:], norms[first].unsqueeze(1)], dim=1)
        self.history[indices] = rows
        self.counts[indices] += 1
        self.features[indices] = norm_history_features(rows, self.counts[indices])
        return indices


def _first_occurrences(indices: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct values of ``indices`` and the position of each one's first occurrence."""
    unique, inverse = torch.unique(indices, return_inverse=True)
    positions = torch.arange(len(indices), device=indices.device)
    first = torch.full_like(unique, len(indices)).scatter_reduce_(
        0, inverse, positions, reduce="amin"
    )
    return unique, first


class RecentRecords:
    r"""Ring buffer of the most recent (features, gradient norm, importance weight) triples.

    These are the weighted training data :math:`(\tilde w_j, \tilde s_j, \tilde v_j)`
    of (PT), section 4.3: the features an example had when it was drawn, the
    norm then measured and :math:`1 / (n p_j)` at that time.

    Parameters
    ----------
    capacity : int
        :math:`|\mathcal D|`, the number of records kept.
    n_features : int
        Length of a feature vector.
    device : torch.device
        Where the buffer lives.
    """

    def __init__(self, capacity: int, n_features: int, device: torch.device) -> None:
        self.features = torch.zeros(capacity, n_features, device=device)
        self.norms = torch.zeros(capacity, device=device)
        self.weights = torch.zeros(capacity, device=device)
        self.capacity = capacity
        self.size = 0
        self._next = 0

    def add(self, features: Tensor, norms: Tensor, weights: Tensor) -> None:
        """Append a minibatch of records, overwriting the oldest once full."""
        n_new = len(norms)
        if n_new > self.capacity:
            features, norms, weights = (t[-self.capacity :] for t in (features, norms, weights))
            n_new = self.capacity
        slots = (torch.arange(n_new, device=norms.device) + self._next) % self.capacity
        self.features[slots] = features
        self.norms[slots] = norms
        self.weights[slots] = weights
        self._next = (self._next + n_new) % self.capacity
        self.size = min(self.size + n_new, self.capacity)

    def snapshot(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Copies of the filled records as float64 numpy arrays (features, norms, weights)."""
        return tuple(
            t[: self.size].detach().to("cpu", torch.float64).numpy()
            for t in (self.features, self.norms, self.weights)
        )
