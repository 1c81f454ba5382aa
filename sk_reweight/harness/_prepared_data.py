"""The data of a benchmark run: a dataset loaded, its labels encoded, its rows capped, split.

:func:`prepare_dataset` readies a dataset of :mod:`sk_reweight.datasets` for
``bench`` and ``speed`` (labels ``0 .. n_classes - 1``, at most about
``--max-rows`` rows, class by class); :class:`TrainTestSplit` holds the
training and held-out rows of one seed of a race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.preprocessing import LabelEncoder, StandardScaler

from ._evaluation import holdout
from ._methods import flatten_images
from ._report import imbalance_ratio


def load_dataset(name: str, data_home: str | None = None) -> Any:
    """:func:`sk_reweight.datasets.load_dataset`, imported lazily."""
    from sk_reweight.datasets import load_dataset as load

    return load(name, data_home=data_home)


def list_datasets() -> list[str]:
    """Names of the benchmark datasets (imported lazily from :mod:`sk_reweight.datasets`)."""
    from sk_reweight.datasets import list_datasets as names

    return list(names())


def take(data: Any, indices: NDArray[np.intp]) -> Any:
    """Rows ``indices`` of a DataFrame, Series or array."""
    return data.iloc[indices] if hasattr(data, "iloc") else data[indices]


MIN_ROWS_PER_CLASS = 10
"""Rows of each class that :func:`stratified_subsample` keeps (all of a smaller class)."""


def stratified_subsample(y: NDArray, max_rows: int | None, seed: int) -> NDArray[np.intp]:
    """Sorted indices of about ``max_rows`` examples drawn class by class (all if it is None).

    Each class keeps its share of ``max_rows``, rounded, but at least
    :data:`MIN_ROWS_PER_CLASS` rows (or all of its rows), so that rare classes
    survive for stratified cross-validation and the inner tuning split; the
    total may therefore exceed ``max_rows`` by a few rows.
    """
    if max_rows is None or max_rows >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    shares = np.round(counts * max_rows / len(y)).astype(int)
    quotas = np.minimum(counts, np.maximum(shares, MIN_ROWS_PER_CLASS))
    kept = [
        rng.choice(np.flatnonzero(y == label), size=quota, replace=False)
        for label, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(kept))


@dataclass
class PreparedDataset:
    """A dataset ready for the benchmark: labels encoded, rows capped, facts recorded."""

    source: Any
    X: Any
    y: NDArray[np.int64]
    X_test: Any | None
    y_test: NDArray[np.int64] | None
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    def preprocessor(self) -> BaseEstimator | None:
        """A fresh, unfitted preprocessor for tabular data; None for images (used as they are)."""
        return self.source.make_preprocessor() if self.info["kind"] == "tabular" else None


def prepare_dataset(dataset: Any, max_rows: int | None) -> PreparedDataset:
    """Encode a dataset's labels as ``0 .. n_classes - 1`` and cap its rows at ``max_rows``.

    The training data and the official test split are each subsampled with
    :func:`stratified_subsample` (seed 0) to about ``max_rows`` rows.
    """
    has_test = dataset.data_test is not None
    targets = [np.asarray(dataset.target)]
    if has_test:
        targets.append(np.asarray(dataset.target_test))
    encoder = LabelEncoder().fit(np.concatenate(targets))
    y = encoder.transform(targets[0]).astype(np.int64)
    rows = stratified_subsample(y, max_rows, seed=0)
    X, y = take(dataset.data, rows), y[rows]
    X_test = y_test = None
    if has_test:
        y_test = encoder.transform(targets[1]).astype(np.int64)
        test_rows = stratified_subsample(y_test, max_rows, seed=0)
        X_test, y_test = take(dataset.data_test, test_rows), y_test[test_rows]
    info = {
        "name": dataset.name,
        "kind": dataset.kind,
        "n_rows": len(y),
        "n_rows_available": len(targets[0]),
        "n_test_rows": None if y_test is None else len(y_test),
        "n_classes": len(encoder.classes_),
        "imbalance_ratio": imbalance_ratio(y),
        "long_tail_induced": "_lt" in dataset.name,
        "note": "long tail induced" if "_lt" in dataset.name else "",
        "description": getattr(dataset, "description", ""),
    }
    subsampled = [
        f"{part} subsampled from {len(target)} rows"
        for part, target, kept in zip(("training", "test"), targets, (y, y_test), strict=False)
        if len(kept) < len(target)
    ]
    info["note"] = "; ".join(filter(None, [info["note"], *subsampled]))
    return PreparedDataset(dataset, X, y, X_test, y_test, len(encoder.classes_), info)


@dataclass(frozen=True)
class TrainTestSplit:
    """The data of one seed's runs: training and test rows, and how to build a model for them.

    Attributes
    ----------
    X_train, y_train, X_test, y_test : array-like
        Inputs and labels (encoded as ``0 .. n_classes - 1``).
    kind : {'tabular', 'image'}
        Kind of the inputs.
    n_classes : int
        Number of classes.
    make_preprocessor : callable
        Returns a fresh, unfitted preprocessor (or None), fitted inside each
        run's pipeline on the training rows.
    training_seed : int
        ``random_state`` of every run on this split.
    """

    X_train: Any
    y_train: NDArray[np.int64]
    X_test: Any
    y_test: NDArray[np.int64]
    kind: str
    n_classes: int
    make_preprocessor: Callable[[], BaseEstimator | None]
    training_seed: int = 0

    @classmethod
    def holdout(
        cls,
        X: Any,
        y: NDArray[np.int64],
        seed: int,
        kind: str,
        n_classes: int,
        make_preprocessor: Callable[[], BaseEstimator | None],
    ) -> TrainTestSplit:
        """The :func:`~sk_reweight.harness._evaluation.holdout` split of repetition ``seed``."""
        split = holdout(y, seed)
        return cls(
            take(X, split.train),
            y[split.train],
            take(X, split.test),
            y[split.test],
            kind,
            n_classes,
            make_preprocessor,
            split.training_seed,
        )

    def head(self, n_rows: int) -> TrainTestSplit:
        """The same split with only its first ``n_rows`` training and test rows (a warm-up's)."""
        rows = np.arange(min(n_rows, len(self.y_train)))
        test_rows = np.arange(min(n_rows, len(self.y_test)))
        return TrainTestSplit(
            take(self.X_train, rows),
            self.y_train[rows],
            take(self.X_test, test_rows),
            self.y_test[test_rows],
            self.kind,
            self.n_classes,
            self.make_preprocessor,
            self.training_seed,
        )

    @classmethod
    def of_dataset(cls, data: PreparedDataset, seed: int, flatten: bool = False) -> TrainTestSplit:
        """:meth:`holdout` of a prepared dataset.

        With ``flatten``, an image dataset becomes a tabular one: its pixels
        flattened and standardised (for an MLP instead of the default CNN).
        Tabular datasets are unaffected.
        """
        if flatten and data.info["kind"] == "image":
            X = flatten_images(data.X)
            return cls.holdout(X, data.y, seed, "tabular", data.n_classes, StandardScaler)
        return cls.holdout(
            data.X, data.y, seed, data.info["kind"], data.n_classes, data.preprocessor
        )
