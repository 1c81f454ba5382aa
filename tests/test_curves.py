"""Learning curves and time-to-target."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from sk_reweight import ERMClassifier
from sk_reweight.harness._curves import CURVE_COLUMNS, learning_curve, time_to_target


def test_time_to_target_interpolates_between_epochs():
    seconds = [1.0, 2.0, 3.0, 4.0]
    loss = [1.0, 0.8, 0.4, 0.3]
    # 0.6 lies halfway between 0.8 (2 s) and 0.4 (3 s).
    assert time_to_target(seconds, loss, 0.6) == pytest.approx(2.5)
    assert time_to_target(seconds, loss, 0.4) == pytest.approx(3.0)
    assert time_to_target(seconds, loss, 1.5) == 1.0
    assert np.isnan(time_to_target(seconds, loss, 0.1))


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
