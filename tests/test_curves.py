"""Learning curves, time-to-target and the equal-time frontier."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from sk_reweight import ERMClassifier, RAISClassifier
from sk_reweight.harness._curves import (
    CURVE_COLUMNS,
    frontier_accuracy,
    frontier_position,
    frontier_seconds_to_accuracy,
    learning_curve,
    time_to_target,
)


def test_time_to_target_interpolates_between_epochs():
    seconds = [1.0, 2.0, 3.0, 4.0]
    loss = [1.0, 0.8, 0.4, 0.3]
    # 0.6 lies halfway between 0.8 (2 s) and 0.4 (3 s).
    assert time_to_target(seconds, loss, 0.6) == pytest.approx(2.5)
    assert time_to_target(seconds, loss, 0.4) == pytest.approx(3.0)
    assert time_to_target(seconds, loss, 1.5) == 1.0
    assert np.isnan(time_to_target(seconds, loss, 0.1))


def test_time_to_target_of_a_score_reaches_it_from_below():
    seconds = [1.0, 2.0, 3.0]
    accuracy = [0.5, 0.7, 0.9]
    assert time_to_target(seconds, accuracy, 0.8, higher_is_better=True) == pytest.approx(2.5)
    assert time_to_target(seconds, accuracy, 0.4, higher_is_better=True) == 1.0
    assert np.isnan(time_to_target(seconds, accuracy, 0.95, higher_is_better=True))


@given(
    st.lists(st.floats(0.01, 10), min_size=2, max_size=20),
    st.floats(0.01, 10),
)
def test_time_to_target_lies_within_the_crossing_epoch(losses, target):
    x = np.arange(1.0, len(losses) + 1)
    result = time_to_target(x, losses, target)
    reached = [i for i, loss in enumerate(losses) if loss <= target]
    if not reached:
        assert np.isnan(result)
    else:
        i = reached[0]
        assert (x[i - 1] if i else x[0]) <= result <= x[i]


def test_learning_curve_of_the_packages_classifier(breast_cancer):
    X, y = breast_cancer
    model = ERMClassifier(max_epochs=4, device="cpu", random_state=0).fit(X, y)
    curve = learning_curve(model, fit_seconds=123.0)
    assert list(curve.columns) == CURVE_COLUMNS
    assert curve["epoch"].tolist() == [1, 2, 3, 4]
    # Uniform sampling: one epoch equivalent per epoch.
    assert curve["epochs_equivalent"].tolist() == curve["epoch"].tolist()
    assert curve["train_loss"].tolist() == model.loss_curve_
    assert np.allclose(np.diff(curve["seconds"], prepend=0), model.history_[:, "dur"])
    assert not curve["importance_sampled"].any()


def test_learning_curve_says_which_epochs_rais_importance_sampled(breast_cancer):
    X, y = breast_cancer
    # An assumed step cost of 100: every try of importance sampling is followed by uniform epochs.
    model = RAISClassifier(max_epochs=8, device="cpu", random_state=0, uniform_fallback=100.0)
    curve = learning_curve(model.fit(X, y), fit_seconds=1.0)
    sampling = model.history_[:, "sampling"]
    assert curve["importance_sampled"].tolist() == [kind == "importance" for kind in sampling]
    assert curve["importance_sampled"].any()
    assert not curve["importance_sampled"].all()


def test_learning_curve_of_mlp_spreads_its_fit_time(breast_cancer):
    X, y = breast_cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(max_iter=5, random_state=0).fit(X, y)
    curve = learning_curve(model, fit_seconds=10.0)
    assert curve["train_loss"].tolist() == model.loss_curve_
    assert curve["seconds"].tolist() == pytest.approx([2, 4, 6, 8, 10])


def test_learning_curve_of_a_model_without_one_is_empty(breast_cancer):
    X, y = breast_cancer
    curve = learning_curve(HistGradientBoostingClassifier(max_iter=3).fit(X, y), 1.0)
    assert curve.empty
    assert list(curve.columns) == CURVE_COLUMNS


# Uniform SGD's frontier: runs of 1, 2 and 4 seconds (given unsorted) reaching 60, 70, 80 %.
FRONTIER = ([2.0, 1.0, 4.0], [0.7, 0.6, 0.8])


def test_the_frontier_by_hand():
    # 3 s lies halfway between the 2 s and 4 s runs: 75 %.
    assert frontier_accuracy(*FRONTIER, 3.0) == pytest.approx(0.75)
    assert frontier_accuracy(*FRONTIER, 1.5) == pytest.approx(0.65)
    assert frontier_position(FRONTIER[0], 3.0) == "inside"
    # Outside the time range: clamped to the nearest end, and flagged.
    assert frontier_accuracy(*FRONTIER, 0.5) == pytest.approx(0.6)
    assert frontier_position(FRONTIER[0], 0.5) == "below"
    assert frontier_accuracy(*FRONTIER, 9.0) == pytest.approx(0.8)
    assert frontier_position(FRONTIER[0], 9.0) == "above"
    # 78 % is reached 80 % of the way from the 2 s run (70 %) to the 4 s run (80 %): 3.6 s.
    assert frontier_seconds_to_accuracy(*FRONTIER, 0.78) == pytest.approx(3.6)
    assert frontier_seconds_to_accuracy(*FRONTIER, 0.5) == 1.0
    assert np.isnan(frontier_seconds_to_accuracy(*FRONTIER, 0.85))


def test_a_frontier_needs_one_accuracy_per_run():
    with pytest.raises(ValueError, match="one accuracy per run's seconds"):
        frontier_accuracy([1.0, 2.0], [0.5], 1.5)
    with pytest.raises(ValueError, match="not empty"):
        frontier_accuracy([], [], 1.0)


_frontiers = st.lists(
    st.tuples(st.floats(0.01, 100), st.floats(0.0, 1.0)), min_size=1, max_size=8
).map(lambda points: dict(points))  # one accuracy per distinct number of seconds


@given(_frontiers, st.data())
def test_a_point_on_the_frontier_is_at_equal_time_with_it(frontier, data):
    seconds, accuracy = list(frontier), list(frontier.values())
    k = data.draw(st.integers(0, len(seconds) - 1))
    assert frontier_accuracy(seconds, accuracy, seconds[k]) == pytest.approx(accuracy[k])
    assert frontier_position(seconds, seconds[k]) == "inside"


@given(_frontiers, st.floats(0.0, 120), st.floats(0.0, 120))
def test_a_monotone_frontier_reads_monotone_and_within_its_points(frontier, t1, t2):
    seconds = sorted(frontier)
    accuracy = sorted(frontier.values())  # non-decreasing in seconds
    low, high = sorted([t1, t2])
    a_low = frontier_accuracy(seconds, accuracy, low)
    a_high = frontier_accuracy(seconds, accuracy, high)
    assert a_low <= a_high + 1e-12
    assert accuracy[0] - 1e-12 <= a_low <= accuracy[-1] + 1e-12
    # Uniform SGD reaches the accuracy it has at time t no later than t (on its time range),
    # up to rounding: on a nearly flat segment (0.9999999999999999 to 1.0) the interpolated
    # accuracy may round up to the next point's, so the target is taken 1e-12 lower.
    if seconds[0] <= high <= seconds[-1]:
        assert frontier_seconds_to_accuracy(seconds, accuracy, a_high - 1e-12) <= high + 1e-9
