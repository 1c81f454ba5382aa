"""The comparison of a method's learning curve with uniform SGD's."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from sklearn.metrics import log_loss

from sk_reweight import ERMClassifier
from sk_reweight.harness._methods import Budget, make_model
from sk_reweight.harness._speed import (
    FULL_LOSS,
    TrainTestSplit,
    WeightsPerEpoch,
    fit_curve,
    mean_cross_entropy,
    speed_summary,
)


def _curve(losses, epoch_seconds):
    seconds = pd.Series(epoch_seconds).cumsum()
    epochs = range(1, len(losses) + 1)
    return pd.DataFrame({"epoch": epochs, "train_loss": losses, "seconds": seconds})


def test_speed_summary_by_hand():
    baseline = _curve([1.0, 0.6, 0.4, 0.3], [1.0, 1.0, 1.0, 1.0])
    method = _curve([0.8, 0.5, 0.2, 0.1], [1.2, 1.2, 1.2, 1.2])
    summary = speed_summary(baseline, method)
    # Target 0.3 lies a third of the way from 0.5 (epoch 2, 2.4 s) to 0.2 (epoch 3, 3.6 s).
    assert summary["target_loss"] == 0.3
    assert summary["final_loss"] == 0.1
    assert summary["epochs_to_target"] == pytest.approx(2 + 2 / 3)
    assert summary["seconds_to_target"] == pytest.approx(2.4 + 1.2 * 2 / 3)
    assert summary["baseline_seconds"] == 4.0
    assert summary["speedup"] == pytest.approx(4.0 / 3.2)
    assert summary["overhead"] == pytest.approx(1.2)


def test_a_method_that_never_reaches_the_target_has_no_speedup():
    baseline = _curve([1.0, 0.2], [1.0, 1.0])
    method = _curve([1.0, 0.5], [1.0, 1.0])
    summary = speed_summary(baseline, method)
    assert pd.isna(summary["seconds_to_target"])
    assert pd.isna(summary["speedup"])


def test_full_loss_curve_evaluates_every_epoch_outside_training(breast_cancer):
    X, y = breast_cancer
    split = TrainTestSplit(X[:400], y[:400], X[400:], y[400:], "tabular", 2, lambda: None)
    parameters = {"hidden_layer_sizes": (8,), "optimizer": "sgd", "lr": 0.05, "max_epochs": 3}
    curve, accuracy = fit_curve(split, Budget(), "erm", parameters, full_loss=True)
    plain, plain_accuracy = fit_curve(split, Budget(), "erm", parameters)
    # Copying the weights after every epoch changes nothing in training, nor the final model.
    assert curve["train_loss"].tolist() == plain["train_loss"].tolist()
    assert accuracy == plain_accuracy
    model = make_model("erm", "tabular", 2, None, Budget(), 0, tune=False)
    model[-1].set_params(**parameters)
    model.fit(split.X_train, split.y_train)
    assert len(curve) == 3
    assert curve[FULL_LOSS].iloc[-1] == pytest.approx(
        mean_cross_entropy(model[-1], split.X_train.astype("float32"), split.y_train)
    )
    assert curve[FULL_LOSS].iloc[0] > curve[FULL_LOSS].iloc[-1]


def test_mean_cross_entropy_is_the_log_loss(breast_cancer):
    X, y = breast_cancer
    model = make_model("erm", "tabular", 2, None, Budget(max_epochs=2), 0, tune=False)
    classifier = model.fit(X, y)[-1]
    expected = log_loss(y, classifier.predict_proba(X.astype("float32")))
    assert mean_cross_entropy(classifier, X.astype("float32"), y) == pytest.approx(expected)


def test_copying_the_weights_is_not_part_of_the_timed_epoch(breast_cancer):
    class SlowCopy(WeightsPerEpoch):
        def on_epoch_end(self, net, **kwargs):
            time.sleep(0.2)
            super().on_epoch_end(net, **kwargs)

    X, y = breast_cancer
    classifier = ERMClassifier(hidden_layer_sizes=(4,), max_epochs=2, callbacks=[SlowCopy()])
    durations = classifier.fit(X, y).history_[:, "dur"]
    assert len(durations) == 2
    assert max(durations) < 0.2
