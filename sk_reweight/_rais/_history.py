"""Per-example gradient-norm histories, the RAIS features, and the (PT) training records.

Section 6 of the RAIS paper builds each example's feature vector from the
gradient norms recorded the last times the example was drawn: simple moving
averages over windows of 1, 2, 4, 8 and 16 records, the variance and standard
deviation of the windows of at least 4 records, and a constant bias. Section
4.3 trains the uncertainty set on the most recent (features, norm, weight)
triples. Both live here, vectorised over the whole dataset, on the training
device; recording a minibatch costs a fixed, small number of kernels and never
waits for the device.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ._state_dict import ADVICE, checked_keys, restored_tensor

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


@cache
def _window_constants(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """The windows of the means then of the spreads, and their 0/1 membership matrices.

    ``history @ means[:, w]`` sums the newest ``WINDOWS[w]`` entries of each
    row, ``history**2 @ spreads[:, w]`` the squares of the newest
    ``SPREAD_WINDOWS[w]``.
    """
    positions = torch.arange(HISTORY_LENGTH, device=device).unsqueeze(1)
    windows = torch.tensor(WINDOWS + SPREAD_WINDOWS, device=device)
    means = (positions < torch.tensor(WINDOWS, device=device)).double()
    spreads = (positions < torch.tensor(SPREAD_WINDOWS, device=device)).double()
    return windows, means, spreads


def norm_history_features(history: Tensor, counts: Tensor) -> Tensor:
    r"""RAIS features of examples from their recorded gradient norms (section 6).

    For every window :math:`w \in \{1, 2, 4, 8, 16\}` the mean of the example's
    last :math:`\min(w, k)` recorded norms (:math:`k` the number recorded so
    far); for :math:`w \geq 4` also their population variance and standard
    deviation; then a constant bias of 1. An example with no record has zero
    features except the bias. Every feature is non-negative, as (PT) requires.

    The window sums of :math:`x` and :math:`x^2` are two products with fixed
    0/1 matrices, in float64, so that :math:`\mathbb E[x^2] - \mathbb E[x]^2`
    does not cancel when the norms barely vary (float32 would lose every
    digit of a variance of :math:`10^{-4}` around norms of 40).

    Parameters
    ----------
    history : Tensor of shape (n_examples, 16)
        Recorded norms, **newest first**; the first ``counts[i]`` entries of
        row ``i`` are the records, the others are 0 (as :class:`NormHistory`
        keeps them).
    counts : Tensor of shape (n_examples,)
        Number of records per example (values above 16 count as 16).

    Returns
    -------
    features : Tensor of shape (n_examples, len(FEATURE_NAMES)), float32
        Columns in the order of :data:`FEATURE_NAMES`.
    """
    windows, mean_windows, spread_windows = _window_constants(history.device)
    values = history.double()
    sizes = torch.minimum(counts.unsqueeze(1), windows).clamp_min_(1)
    n_means = len(WINDOWS)
    means = (values @ mean_windows).div_(sizes[:, :n_means])
    mean_squares = (values * values @ spread_windows).div_(sizes[:, n_means:])
    first = n_means - len(SPREAD_WINDOWS)
    variances = mean_squares.sub_(means[:, first:].square()).clamp_min_(0.0)
    bias = torch.ones_like(means[:, :1])
    return torch.cat([means, variances, variances.sqrt(), bias], dim=1).float()


def prepend_in_order(
    history: Tensor, counts: Tensor, examples: Tensor, norms: Tensor, steps: Tensor, n_steps: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The histories after recording several minibatches in order, in one batch of kernels.

    Equivalent to prepending, minibatch after minibatch, each drawn example's
    norm to its history (newest first), where an example drawn more than once
    in one minibatch is recorded once, with its first norm. Done without a
    loop and without data-dependent shapes (so without a device
    synchronisation): the draws are sorted by (example, minibatch), stably;
    each example's :math:`r` distinct records of the block go to the front of
    its row, newest first, and its old values move :math:`r` places back.

    Parameters
    ----------
    history : Tensor of shape (n_examples, 16)
        Norms recorded so far, newest first.
    counts : Tensor of shape (n_examples,)
        Records so far per example.
    examples : Tensor of shape (n_draws,)
        The drawn examples of the block, minibatch after minibatch.
    norms : Tensor of shape (n_draws,)
        Their gradient norms.
    steps : Tensor of shape (n_draws,)
        The minibatch (``0 .. n_steps - 1``) of each draw, non-decreasing.
    n_steps : int
        Number of minibatches in the block.

    Returns
    -------
    rows : Tensor of shape (n_draws,)
        The example of every output row (each drawn example, once per draw).
    new_history : Tensor of shape (n_draws, 16)
        Its history after the block.
    new_counts : Tensor of shape (n_draws,)
        Its number of records after the block.
    """
    n_draws, length = len(examples), history.shape[1]
    keys, order = torch.sort(examples * n_steps + steps, stable=True)
    rows = torch.div(keys, n_steps, rounding_mode="floor")
    values = norms.index_select(0, order).to(history.dtype)
    true = torch.ones(1, dtype=torch.bool, device=examples.device)
    new_key = torch.cat([true, keys[1:] != keys[:-1]])  # first draw of an example in a minibatch
    boundary = rows[1:] != rows[:-1]
    positions = torch.arange(n_draws, device=examples.device)
    group_start = torch.cat([true, boundary]).long().mul_(positions).cummax(0).values
    is_end = torch.cat([boundary, true])
    group_end = torch.where(is_end, positions, n_draws).flip(0).cummin(0).values.flip(0)
    recorded = new_key.long().cumsum(0)  # distinct records up to and including each draw
    through_end = recorded.index_select(0, group_end)
    n_new = through_end - recorded.index_select(0, group_start) + new_key[group_start].long()
    newest_rank = through_end - recorded  # 0 for the example's newest record of the block
    column = torch.where(new_key & (newest_rank < length), newest_rank, length)
    fresh = torch.zeros(n_draws, length + 1, dtype=history.dtype, device=history.device)
    fresh.index_put_((group_start, column), values)
    columns = torch.arange(length, device=examples.device)
    shifted_from = columns - n_new.unsqueeze(1)
    old = history.index_select(0, rows).gather(1, shifted_from.clamp_min(0))
    new_history = torch.where(
        shifted_from < 0, fresh.index_select(0, group_start)[:, :length], old
    )
    return rows, new_history, counts.index_select(0, rows) + n_new


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
        self.history = torch.zeros(n_examples, HISTORY_LENGTH, dtype=torch.float64, device=device)
        self.counts = torch.zeros(n_examples, dtype=torch.long, device=device)
        self.features = norm_history_features(self.history, self.counts)

    def record(
        self, examples: Tensor, norms: Tensor, steps: Tensor, n_steps: int
    ) -> tuple[Tensor, Tensor]:
        """Record a block of minibatches (see :func:`prepend_in_order`) and refresh features.

        Returns
        -------
        rows : Tensor
            The examples whose features changed (with repetitions).
        features : Tensor of shape (len(rows), n_features)
            Their new features.
        """
        rows, new_history, new_counts = prepend_in_order(
            self.history, self.counts, examples, norms, steps, n_steps
        )
        features = norm_history_features(new_history, new_counts)
        # Repeated rows carry identical values, so the order of the writes does not matter.
        self.history.index_copy_(0, rows, new_history)
        self.counts.index_copy_(0, rows, new_counts)
        self.features.index_copy_(0, rows, features)
        return rows, features

    def state_dict(self) -> dict[str, Tensor]:
        """The checkpoint's ``norm_history``: tensors with one row per training example.

        ``history`` (n, 16) float64, the recorded norms newest first;
        ``counts`` (n,) int64, the records per example; ``features``
        (n, len(FEATURE_NAMES)) float32, their features as last computed.
        """
        return {"history": self.history, "counts": self.counts, "features": self.features}

    def load_state_dict(self, state: Any) -> None:
        """Continue from :meth:`state_dict`; a :class:`ValueError` for another ``n``."""
        state = checked_keys(state, ("history", "counts", "features"), "norm_history")
        self.history, self.counts, self.features = (
            restored_tensor(state[key], getattr(self, key), f"norm_history.{key}")
            for key in ("history", "counts", "features")
        )


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
        """Append records, overwriting the oldest once full (in at most two copies)."""
        features, norms, weights = (t[-self.capacity :] for t in (features, norms, weights))
        start, n_new = self._next, len(norms)
        head = min(n_new, self.capacity - start)  # up to the end of the ring, the rest from 0
        for source, target in (
            (slice(0, head), slice(start, start + head)),
            (slice(head, n_new), slice(0, n_new - head)),
        ):
            self.features[target] = features[source]
            self.norms[target] = norms[source]
            self.weights[target] = weights[source]
        self._next = (start + n_new) % self.capacity
        self.size = min(self.size + n_new, self.capacity)

    def state_dict(self) -> dict[str, Tensor | int]:
        """The checkpoint's ``records``: the ring buffer and where it stands.

        ``features`` (capacity, n_features) float32, ``norms`` and ``weights``
        (capacity,) float32; ``size``, the records filled; ``next``, the slot
        the next record goes to.
        """
        return {
            "features": self.features,
            "norms": self.norms,
            "weights": self.weights,
            "size": self.size,
            "next": self._next,
        }

    def load_state_dict(self, state: Any) -> None:
        """Continue from :meth:`state_dict`; a :class:`ValueError` for another capacity."""
        keys = ("features", "norms", "weights", "size", "next")
        state = checked_keys(state, keys, "records")
        self.features, self.norms, self.weights = (
            restored_tensor(state[key], getattr(self, key), f"records.{key}")
            for key in ("features", "norms", "weights")
        )
        size, position = state["size"], state["next"]
        if not (0 <= size <= self.capacity and 0 <= position < self.capacity):
            raise ValueError(
                f"the checkpoint's records have size {size!r} and next slot {position!r}, "
                f"outside a ring of {self.capacity} records. {ADVICE}"
            )
        self.size, self._next = size, position

    def snapshot(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Copies of the filled records as float64 numpy arrays (features, norms, weights)."""
        return tuple(
            t[: self.size].detach().to("cpu", torch.float64).numpy()
            for t in (self.features, self.norms, self.weights)
        )
