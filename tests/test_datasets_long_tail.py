"""make_long_tailed: exact class counts of the exponential profile, subsets, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sk_reweight.datasets import make_long_tailed
from sk_reweight.datasets._long_tail import long_tailed_counts


def balanced(n_per_class: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows numbered 0..n-1 (so a subset can be traced back), classes interleaved."""
    n = n_per_class * n_classes
    return np.arange(n * 2).reshape(n, 2), np.tile(np.arange(n_classes), n_per_class)


@pytest.mark.parametrize(
    ("imbalance_ratio", "published"),
    [
        # CIFAR-10-LT training-set sizes (Cao et al. 2019; Cui et al. 2019).
        (100, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]),
        (10, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]),
    ],
)
def test_counts_match_published_cifar10_lt(imbalance_ratio, published):
    assert long_tailed_counts(5000, 10, imbalance_ratio).tolist() == published


@given(
    n_max=st.integers(1, 10_000),
    n_classes=st.integers(2, 50),
    imbalance_ratio=st.floats(1, 1000),
)
def test_counts_follow_the_exponential_profile(n_max, n_classes, imbalance_ratio):
    counts = long_tailed_counts(n_max, n_classes, imbalance_ratio)
    assert counts[0] == n_max
    assert np.all(np.diff(counts) <= 0)
    for c, count in enumerate(counts):
        exact = n_max * math.exp(-math.log(imbalance_ratio) * c / (n_classes - 1))
        assert exact - 1 - 1e-6 < count <= exact + 1e-6


def test_exact_class_counts_of_a_subset_of_the_rows():
    X, y = balanced(100, 4)
    X_lt, y_lt = make_long_tailed(X, y, imbalance_ratio=10, random_state=0)
    expected = [int(100 * 10 ** (-c / 3)) for c in range(4)]
    assert expected == [100, 46, 21, 10]
    assert np.bincount(y_lt).tolist() == expected
    rows = X_lt[:, 0] // 2
    assert np.all(np.diff(rows) > 0)  # distinct rows, in their original order
    np.testing.assert_array_equal(X[rows], X_lt)
    np.testing.assert_array_equal(y[rows], y_lt)


def test_imbalance_ratio_one_keeps_the_classes_balanced():
    X, y = balanced(30, 3)
    X_lt, y_lt = make_long_tailed(X, y, imbalance_ratio=1, random_state=0)
    assert np.bincount(y_lt).tolist() == [30, 30, 30]
    np.testing.assert_array_equal(X_lt, X)


def test_n_max_defaults_to_the_smallest_class_in_sorted_class_order():
    y = np.array(["cat"] * 12 + ["ant"] * 10 + ["bee"] * 15)
    X = np.zeros((len(y), 3, 3))
    X_lt, y_lt = make_long_tailed(X, y, imbalance_ratio=4, random_state=1)
    classes, counts = np.unique(y_lt, return_counts=True)
    assert dict(zip(classes.tolist(), counts.tolist(), strict=True)) == {
        "ant": 10,
        "bee": 5,
        "cat": 2,
    }
    assert X_lt.shape == (17, 3, 3)


def test_random_state_makes_the_draw_reproducible():
    X, y = balanced(50, 3)
    first = make_long_tailed(X, y, 5, random_state=3)[0]
    np.testing.assert_array_equal(first, make_long_tailed(X, y, 5, 3)[0])
    assert not np.array_equal(first, make_long_tailed(X, y, 5, random_state=4)[0])


def test_frames_keep_their_index_and_are_not_mutated():
    X, y = balanced(20, 2)
    frame = pd.DataFrame(X, columns=["a", "b"], index=np.arange(100, 140))
    target = pd.Series(y, index=frame.index, name="label")
    frame_before, target_before = frame.copy(), target.copy()
    frame_lt, target_lt = make_long_tailed(frame, target, imbalance_ratio=4, n_max=8)
    assert target_lt.value_counts().to_dict() == {0: 8, 1: 2}
    assert isinstance(frame_lt, pd.DataFrame)
    assert isinstance(target_lt, pd.Series)
    assert target_lt.name == "label"
    pd.testing.assert_index_equal(frame_lt.index, target_lt.index)
    pd.testing.assert_frame_equal(frame_lt, frame.loc[frame_lt.index])
    pd.testing.assert_frame_equal(frame, frame_before)
    pd.testing.assert_series_equal(target, target_before)


def test_arrays_are_not_mutated():
    X, y = balanced(20, 2)
    X_before, y_before = X.copy(), y.copy()
    X_lt, _ = make_long_tailed(X, y, imbalance_ratio=2, random_state=0)
    X_lt[:] = -1
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imbalance_ratio": 0.5}, "imbalance_ratio must be a number >= 1, got 0.5"),
        ({"imbalance_ratio": float("nan")}, "imbalance_ratio must be a number >= 1"),
        ({"imbalance_ratio": "10"}, "imbalance_ratio must be a number >= 1"),
        ({"imbalance_ratio": 10, "n_max": 0}, "n_max must be a positive integer"),
        ({"imbalance_ratio": 30}, "leaves class 2 empty: n_max must be at least"),
        ({"imbalance_ratio": 2, "n_max": 21}, "class 0 has 20 examples, .* asks for 21"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    X, y = balanced(20, 3)
    with pytest.raises(ValueError, match=message):
        make_long_tailed(X, y, **kwargs)


def test_a_short_tail_class_is_reported():
    y = np.array([0] * 20 + [1] * 20 + [2] * 3)
    with pytest.raises(ValueError, match="class 2 has 3 examples"):
        make_long_tailed(np.zeros((43, 1)), y, imbalance_ratio=2, n_max=20)


def test_needs_two_classes_and_matching_lengths():
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        make_long_tailed(np.zeros((5, 2)), np.zeros(5), imbalance_ratio=2)
    with pytest.raises(ValueError, match="X has 5 rows, y has shape"):
        make_long_tailed(np.zeros((5, 2)), np.arange(4) % 2, imbalance_ratio=2)
