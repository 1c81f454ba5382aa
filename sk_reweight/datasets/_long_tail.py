"""Long-tailed subsets of balanced data: the exponential profile of Cao et al. (2019)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import TypeVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state

Table = TypeVar("Table", np.ndarray, pd.DataFrame)


def long_tailed_counts(n_max: int, n_classes: int, imbalance_ratio: float) -> np.ndarray:
    r"""Per-class sizes of the exponential long-tail profile.

    .. math:: n_c = \left\lfloor n_\max \cdot \mathrm{IR}^{-c/(C-1)} \right\rfloor,
              \quad c = 0, \dots, C - 1,

    computed in float64 and truncated exactly as ``int()`` in the reference
    code of Cao et al. (2019, LDAM-DRW), so that the head class keeps
    ``n_max`` examples and the tail class ``floor(n_max / IR)`` up to rounding.

    Examples
    --------
    CIFAR-10-LT with imbalance ratio 100, as published:

    >>> from sk_reweight.datasets._long_tail import long_tailed_counts
    >>> long_tailed_counts(5000, 10, 100).tolist()
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    exponents = np.arange(n_classes) / (n_classes - 1)
    return np.array([int(n_max * imbalance_ratio**-e) for e in exponents], dtype=np.int64)


def make_long_tailed(
    X: Table,
    y: ArrayLike,
    imbalance_ratio: float,
    random_state: int | np.random.RandomState | None = None,
    *,
    n_max: int | None = None,
) -> tuple[Table, np.ndarray | pd.Series]:
    """Subsample a (roughly) balanced dataset into an exponentially long-tailed one.

    The protocol of Cao et al. (2019) and Cui et al. (2019) behind CIFAR-10-LT
    and Fashion-MNIST-LT: the classes, in sorted order, keep
    ``floor(n_max * imbalance_ratio ** (-c / (C - 1)))`` examples drawn at
    random without replacement. Keep the
    balanced test set for evaluation. The imbalance is *induced*: say so when
    reporting results.

    Parameters
    ----------
    X : ndarray or DataFrame of shape (n_samples, ...)
        Samples; any trailing shape (images) is kept.
    y : array-like or Series of shape (n_samples,)
        Class labels, at least two classes.
    imbalance_ratio : float >= 1
        Size of the largest over the smallest class; 1 keeps ``n_max`` of
        every class.
    random_state : int, RandomState or None
        Seeds the draw; an int makes it reproducible.
    n_max : int, optional
        Size of the head class (the first in sorted order). Defaults to the
        size of the smallest class, which every class can supply.

    Returns
    -------
    X_lt, y_lt : same types as ``X`` and ``y``
        New objects holding the chosen rows in their original order (a
        DataFrame or Series keeps its index); the inputs are not modified.

    Raises
    ------
    ValueError
        If ``imbalance_ratio < 1``, if there are fewer than two classes, if
        ``X`` and ``y`` differ in length, if the profile would leave the last
        class empty (``n_max < imbalance_ratio``), or if a class has fewer
        examples than the profile asks of it.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.datasets import make_long_tailed
    >>> X, y = np.zeros((300, 2)), np.repeat([0, 1, 2], 100)
    >>> X_lt, y_lt = make_long_tailed(X, y, imbalance_ratio=10, random_state=0)
    >>> np.bincount(y_lt).tolist()
    [100, 31, 10]
    """
    if not isinstance(imbalance_ratio, Real) or not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio must be a number >= 1, got {imbalance_ratio!r}")
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(X):
        raise ValueError(
            f"y must be one-dimensional with one label per row of X: X has {len(X)} rows, "
            f"y has shape {labels.shape}"
        )
    classes, class_sizes = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"make_long_tailed needs at least 2 classes, got {len(classes)}")
    if n_max is None:
        n_max = int(class_sizes.min())
    elif not isinstance(n_max, Integral) or n_max < 1:
        raise ValueError(f"n_max must be a positive integer, got {n_max!r}")
    counts = long_tailed_counts(n_max, len(classes), imbalance_ratio)
    if counts[-1] == 0:
        raise ValueError(
            f"the long-tail profile (n_max={n_max}, imbalance_ratio={imbalance_ratio}) leaves "
            f"class {classes.tolist()[-1]!r} empty: n_max must be at least imbalance_ratio"
        )
    short = np.flatnonzero(class_sizes < counts)
    if short.size:
        c = short[0]
        raise ValueError(
            f"class {classes.tolist()[c]!r} has {class_sizes[c]} examples, the long-tail profile "
            f"(n_max={n_max}, imbalance_ratio={imbalance_ratio}) asks for {counts[c]}"
        )
    rng = check_random_state(random_state)
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == label), size=count, replace=False)
            for label, count in zip(classes, counts, strict=True)
        ]
    )
    chosen.sort()
    return _take(X, chosen), _take(y, chosen)


def _take(values, rows: np.ndarray):
    """Rows of an ndarray, DataFrame, Series or list, by position, as a new object."""
    if isinstance(values, (pd.DataFrame, pd.Series)):
        return values.iloc[rows].copy()
    return np.asarray(values)[rows]
