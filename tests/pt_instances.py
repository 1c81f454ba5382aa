"""Random instances of (PT) drawn the way RAIS training produces them.

A population of examples with heavy-tailed difficulty; each has a sequence of
gradient norms that drifts slowly (a moving average of log-normal noise) and
has been recorded a random number of times. Records are drawn with
replacement from an importance-sampling distribution whose weights
``1 / (n p)`` span about ``weight_spread``; each record holds the example's
features before the draw (those of section 6, a bias column included),
the next norm and the weight. The objective coefficients are the mean
features of the whole population after its latest norm.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from sk_reweight._rais._history import HISTORY_LENGTH, SPREAD_WINDOWS, WINDOWS


class PTRecords(NamedTuple):
    """The arguments of ``solve_uncertainty_set``."""

    features: NDArray[np.float64]
    norms: NDArray[np.float64]
    weights: NDArray[np.float64]
    mean_features: NDArray[np.float64]


def draw_pt_records(
    seed: int,
    n_records: int,
    *,
    n_examples: int | None = None,
    population_seed: int = 0,
    max_records: int = HISTORY_LENGTH,
    tail: float = 1.0,
    noise: float = 0.4,
    weight_spread: float = 100.0,
) -> PTRecords:
    """Records of (PT) from a population fixed by ``population_seed``, drawn by ``seed``.

    Parameters
    ----------
    seed : int
        Draws the norm sequences' noise, the record counts and the records.
        Two seeds with the same ``population_seed`` give two record sets
        "drawn like" each other, as consecutive solves in training.
    n_records : int
        :math:`|D|`.
    n_examples : int, optional
        Population size; ``2 * n_records`` by default.
    population_seed : int
        Draws the examples' difficulties.
    max_records : int
        Most norms recorded per example (at most 4 makes ``var_4``, ``var_8``
        and ``var_16`` coincide).
    tail : float
        Standard deviation of the log-difficulties (heavy tails above 1).
    noise : float
        Standard deviation of the log-norms' noise.
    weight_spread : float
        Ratio of the largest to the smallest importance weight.
    """
    n_examples = 2 * n_records if n_examples is None else n_examples
    difficulty = np.random.default_rng(population_seed).lognormal(0.0, tail, n_examples)
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, noise, (n_examples, HISTORY_LENGTH + 4))
    smoothed = np.lib.stride_tricks.sliding_window_view(shocks, 4, axis=1).mean(axis=2)
    drift = np.linspace(0.3, 0.0, HISTORY_LENGTH + 1)
    sequences = difficulty[:, None] * np.exp(smoothed + drift)
    counts = rng.integers(1, max_records + 1, n_examples)
    before = _features(sequences, counts)
    after = _features(sequences, counts + 1)
    next_norm = sequences[np.arange(n_examples), counts]
    rank = np.argsort(np.argsort(difficulty)) / (n_examples - 1)
    probabilities = weight_spread ** (rank - 0.5)
    probabilities /= probabilities.sum()
    drawn = rng.choice(n_examples, n_records, p=probabilities)
    return PTRecords(
        features=before[drawn],
        norms=next_norm[drawn],
        weights=1.0 / (n_examples * probabilities[drawn]),
        mean_features=after.mean(axis=0),
    )


def _features(sequences: NDArray, counts: NDArray) -> NDArray[np.float64]:
    """RAIS features (section 6, in the order of ``FEATURE_NAMES``) of examples that have
    recorded the first ``counts`` norms of their sequences, computed directly."""
    newest_first = np.take_along_axis(
        sequences, np.maximum(counts[:, None] - 1 - np.arange(HISTORY_LENGTH), 0), axis=1
    )
    means, spreads = [], []
    for window in WINDOWS:
        size = np.minimum(counts, window)[:, None]
        valid = np.arange(window) < size
        values = newest_first[:, :window]
        mean = np.sum(values * valid, axis=1, keepdims=True) / size
        means.append(mean)
        if window in SPREAD_WINDOWS:
            spreads.append(np.sum((values - mean) ** 2 * valid, axis=1) / size[:, 0])
    variances = np.column_stack(spreads)
    return np.column_stack([*means, variances, np.sqrt(variances), np.ones(len(counts))])
