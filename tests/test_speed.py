"""The comparison of a method with uniform SGD: time-to-target, equal time, noise."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, log_loss

from sk_reweight import ERMClassifier
from sk_reweight.harness._methods import Budget, make_model
from sk_reweight.harness._prepared_data import TrainTestSplit
from sk_reweight.harness._race import (
    BASELINE_NAME,
    FULL_LOSS,
    TEST_ACCURACY,
    TEST_LOG_LOSS,
    WARM_UP_EPOCHS,
    WARM_UP_ROWS,
    Race,
    WeightsPerEpoch,
    accuracy_and_log_loss,
    budget_epochs,
    fit_curve,
)
from sk_reweight.harness._race_analysis import (
    MIN_TIMED_SECONDS,
    equal_time,
    race_results,
    speed_summary,
    too_short_to_time,
)
from sk_reweight.harness._verdicts import assess


def _curve(losses, epoch_seconds, **columns):
    seconds = pd.Series(epoch_seconds).cumsum()
    epochs = range(1, len(losses) + 1)
    return pd.DataFrame({"epoch": epochs, "train_loss": losses, "seconds": seconds, **columns})


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


def test_speed_summary_of_the_held_out_measures_by_hand():
    held_out = {TEST_LOG_LOSS: [0.9, 0.5, 0.45, 0.5], TEST_ACCURACY: [0.7, 0.8, 0.85, 0.84]}
    baseline = _curve([1.0, 0.6, 0.4, 0.3], [1.0] * 4, **held_out)
    method = _curve(
        [0.8, 0.5, 0.2, 0.1],
        [2.0] * 4,
        **{TEST_LOG_LOSS: [0.7, 0.4, 0.3, 0.3], TEST_ACCURACY: [0.8, 0.82, 0.86, 0.86]},
    )
    summary = speed_summary(baseline, method)
    # Targets: uniform SGD's final values 0.5 and 0.84.
    assert summary["target_test_log_loss"] == 0.5
    assert summary["target_test_accuracy"] == 0.84
    # 0.5 lies 2/3 of the way from 0.7 (2 s) to 0.4 (4 s); 0.84 halfway from 0.82 to 0.86.
    assert summary["seconds_to_test_log_loss"] == pytest.approx(2 + 2 * 2 / 3)
    assert summary["seconds_to_test_accuracy"] == pytest.approx(5.0)


def test_a_method_that_never_reaches_the_target_has_no_speedup():
    baseline = _curve([1.0, 0.2], [1.0, 1.0])
    method = _curve([1.0, 0.5], [1.0, 1.0])
    summary = speed_summary(baseline, method)
    assert pd.isna(summary["seconds_to_target"])
    assert pd.isna(summary["speedup"])


def test_budgets_are_distinct_epochs_ending_with_all_of_them():
    assert budget_epochs((0.25, 0.5, 0.75, 1.0), 8) == (2, 4, 6, 8)
    assert budget_epochs((0.25, 0.5, 0.75, 1.0), 15) == (4, 8, 12, 15)
    assert budget_epochs((0.5,), 3) == (2, 3)  # all epochs always run
    assert budget_epochs((0.1, 0.2, 1.0), 4) == (1, 4)  # both round up to one epoch
    with pytest.raises(ValueError, match=r"fractions of the epochs in \(0, 1\], got \[1.5\]"):
        budget_epochs((0.5, 1.5), 10)


RACE = Race("rais", "rais (sgd)", {"lr": 0.1}, {"lr": 0.05}, (2, 4))


def test_the_order_of_the_runs_alternates_across_seeds():
    def order(seed):
        return [(run.name, run.budget) for run in RACE.runs(seed)]

    assert order(0) == [
        (BASELINE_NAME, 2), ("rais (sgd)", 2), (BASELINE_NAME, 4), ("rais (sgd)", 4)
    ]  # fmt: skip
    assert order(1) == [
        ("rais (sgd)", 2), (BASELINE_NAME, 2), ("rais (sgd)", 4), (BASELINE_NAME, 4)
    ]  # fmt: skip
    assert order(2) == order(0)
    # Each run's schedule is compressed to its budget.
    assert all(run.parameters["max_epochs"] == run.budget for run in RACE.runs(1))
    assert {run.parameters["lr"] for run in RACE.runs(0) if run.method == "erm"} == {0.05}


class RecordingFit:
    """A stand-in for ``fit_curve`` that records its calls and returns a one-epoch curve."""

    def __init__(self):
        self.calls = []

    def __call__(self, split, method, parameters):
        self.calls.append((len(split.y_train), method, parameters["max_epochs"]))
        return pd.DataFrame({"epoch": [1.0], "seconds": [1.0]})


def test_the_warm_up_fits_both_contenders_on_a_slice_and_records_nothing():
    split = TrainTestSplit(
        np.zeros((1000, 2)), np.zeros(1000, int), np.zeros((50, 2)), np.zeros(50, int),
        "tabular", 2, lambda: None,
    )  # fmt: skip
    fit = RecordingFit()
    assert RACE.warm_up(fit, split) is None
    assert fit.calls == [(WARM_UP_ROWS, "erm", WARM_UP_EPOCHS), (WARM_UP_ROWS, "rais", 2)]
    fit.calls.clear()
    curves = RACE.run(fit, split, seed=1)
    assert fit.calls == [(1000, "rais", 2), (1000, "erm", 2), (1000, "rais", 4), (1000, "erm", 4)]
    assert curves[["method", "budget", "seed"]].values.tolist() == [
        ["rais (sgd)", 2, 1], [BASELINE_NAME, 2, 1], ["rais (sgd)", 4, 1], [BASELINE_NAME, 4, 1]
    ]  # fmt: skip


def _results(runs):
    """race_results-like rows from ``(seed, method, budget, seconds, accuracy)``."""
    columns = ["seed", "method", "budget", "seconds", "test_accuracy"]
    return pd.DataFrame(runs, columns=columns)


def test_accuracy_at_equal_time_by_hand():
    results = _results(
        [
            (0, BASELINE_NAME, 1, 1.0, 0.6),
            (0, BASELINE_NAME, 2, 2.0, 0.7),
            (0, BASELINE_NAME, 4, 4.0, 0.8),
            (0, "m", 1, 0.5, 0.62),  # faster than uniform SGD's shortest run
            (0, "m", 2, 3.0, 0.78),
            (0, "m", 4, 5.0, 0.9),  # beyond every budget of uniform SGD
            (1, BASELINE_NAME, 1, 1.0, 0.5),
            (1, BASELINE_NAME, 4, 2.0, 0.9),
            (1, "m", 4, 1.5, 0.7),
        ]
    )
    points = equal_time(results, "m")
    assert points["budget"].tolist() == [1, 2, 4, 4]
    # Seed 0 at 3 s: the frontier reads 75 %, the method has 78 %: +3 pp; uniform SGD needs
    # 3.6 s to reach 78 %, 1.2x the method's 3 s.
    assert points["uniform_accuracy"].tolist() == pytest.approx([0.6, 0.75, 0.8, 0.7])
    assert points["accuracy_difference_pp"].tolist() == pytest.approx([2.0, 3.0, 10.0, 0.0])
    assert points["position"].tolist() == ["below", "inside", "above", "inside"]
    # 62 % is reached a fifth of the way from the 1 s run (60 %) to the 2 s run (70 %).
    assert points["uniform_seconds_to_accuracy"].tolist() == pytest.approx([1.2, 3.6, 4.0, 1.5])
    # 90 % is beyond every budget of seed 0: its longest run's 4 s, a lower bound.
    assert points["uniform_reaches"].tolist() == [True, True, False, True]
    assert points["uniform_time_ratio"].tolist() == pytest.approx([2.4, 1.2, 0.8, 1.0])


@given(
    st.lists(
        st.tuples(st.floats(0.01, 100), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=6,
        unique_by=lambda point: point[0],
    ),
    st.data(),
)
def test_a_method_run_equal_to_a_uniform_run_is_at_equal_time(frontier, data):
    seconds, accuracy = data.draw(st.sampled_from(frontier))
    runs = [(0, BASELINE_NAME, k + 1, t, a) for k, (t, a) in enumerate(frontier)]
    points = equal_time(_results([*runs, (0, "m", 1, seconds, accuracy)]), "m")
    assert points["accuracy_difference_pp"].tolist() == pytest.approx([0.0], abs=1e-9)
    assert points["position"].tolist() == ["inside"]
    # Uniform SGD reaches that accuracy on its frontier at that run at the latest.
    assert points["uniform_time_ratio"].iloc[0] <= 1 + 1e-9


def test_race_results_measure_every_run_against_the_full_uniform_run():
    def curve(losses, seconds, accuracy):
        frame = _curve(losses, seconds, **{TEST_ACCURACY: accuracy, TEST_LOG_LOSS: losses})
        return frame.assign(
            epochs_equivalent=frame["epoch"], solve_seconds=0.0, gain_ratio=1.0
        ).assign(importance_sampled=frame["epoch"] > 1)

    curves = pd.concat(
        [
            curve([1.0], [1.0], [0.6]).assign(method=BASELINE_NAME, budget=1),
            curve([0.9, 0.5], [1.0, 1.0], [0.7, 0.8]).assign(method=BASELINE_NAME, budget=2),
            curve([0.7], [1.5], [0.75]).assign(method="m", budget=1),
            curve([0.8, 0.4], [1.5, 1.5], [0.7, 0.85]).assign(method="m", budget=2),
        ]
    ).assign(seed=0)
    results = race_results(curves).set_index(["method", "budget"])
    assert results["target_loss"].tolist() == [0.5] * 4
    assert results.loc[("m", 2), "seconds_to_target"] == pytest.approx(1.5 + 1.5 * 3 / 4)
    assert results.loc[("m", 1), "test_accuracy"] == 0.75
    assert results["epochs_run"].tolist() == [1, 2, 1, 2]
    assert results["importance_sampled_epochs"].tolist() == [0, 1, 0, 1]


def test_within_noise_compares_the_median_with_the_seeds_spread():
    # Ratios 0.8, 1.1, 1.0 over three seeds: median 1.0, within its spread of 1.
    assessment = assess([0.8, 1.1, 1.0], [0, 1, 2], 1.0, False, too_short=False)
    assert assessment.median == 1.0
    assert assessment.spread == pytest.approx(np.std([0.8, 1.1, 1.0], ddof=1))
    assert assessment.verdict == "within noise"
    assert assessment.ahead == 1
    assert assess([0.5, 0.52, 0.48], [0, 1, 2], 1.0, False, False).verdict == "ahead"
    assert assess([1.5, 1.52, 1.48], [0, 1, 2], 1.0, False, False).verdict == "behind"
    too_short = assess([0.5, 0.52, 0.48], [0, 1, 2], 1.0, False, too_short=True)
    assert too_short.verdict == "within noise (too short to time)"
    assert assess([0.5], [0], 1.0, False, False).verdict == "one seed: no spread"
    never = assess([math.nan, math.nan, 0.5], [0, 1, 2], 1.0, False, False)
    assert (never.verdict, never.never, never.median) == ("never reached", 2, 0.5)


def test_the_seeds_spread_is_over_per_seed_medians():
    # Two seeds, two budgets each: per-seed medians +2 and +4 pp, spread sqrt(2).
    values, seeds = [1.0, 3.0, 3.0, 5.0], [0, 0, 1, 1]
    assessment = assess(values, seeds, 0.0, True, too_short=False)
    assert assessment.spread == pytest.approx(math.sqrt(2))
    assert assessment.median == 3.0
    assert (assessment.low, assessment.high, assessment.ahead) == (1.0, 5.0, 4)
    assert assessment.verdict == "ahead"
    # Per-seed medians 0 and +4 pp (spread 2.83): a median of +2 pp is within noise.
    assert assess([-1.0, 1.0, 3.0, 5.0], seeds, 0.0, True, False).verdict == "within noise"


def test_runs_under_half_a_second_are_too_short_to_time():
    results = _results([(0, BASELINE_NAME, 1, 0.1, 0.5), (0, BASELINE_NAME, 2, 0.6, 0.6)])
    assert not too_short_to_time(results)
    short = _results([(0, "m", 1, 0.2, 0.5), (0, "m", 2, MIN_TIMED_SECONDS / 2, 0.6)])
    assert too_short_to_time(pd.concat([results, short]))


def test_every_epoch_is_scored_outside_training(breast_cancer):
    X, y = breast_cancer
    split = TrainTestSplit(X[:400], y[:400], X[400:], y[400:], "tabular", 2, lambda: None)
    parameters = {"hidden_layer_sizes": (8,), "optimizer": "sgd", "lr": 0.05, "max_epochs": 3}
    curve = fit_curve(split, "erm", parameters, Budget(), full_loss=True)
    plain = fit_curve(split, "erm", parameters, Budget())
    assert FULL_LOSS not in plain
    # Copying the weights after every epoch changes nothing in training.
    assert curve["train_loss"].tolist() == plain["train_loss"].tolist()
    assert curve[TEST_ACCURACY].tolist() == plain[TEST_ACCURACY].tolist()
    model = make_model("erm", "tabular", 2, None, Budget(), 0, tune=False)
    model[-1].set_params(**parameters)
    model.fit(split.X_train, split.y_train)
    assert len(curve) == 3
    # The last epoch's scores are the fitted model's.
    assert curve[TEST_ACCURACY].iloc[-1] == model.score(split.X_test, split.y_test)
    assert curve[TEST_LOG_LOSS].iloc[-1] == pytest.approx(
        log_loss(split.y_test, model.predict_proba(split.X_test))
    )
    assert curve[FULL_LOSS].iloc[-1] == pytest.approx(
        log_loss(split.y_train, model.predict_proba(split.X_train))
    )
    assert curve[FULL_LOSS].iloc[0] > curve[FULL_LOSS].iloc[-1]


def test_accuracy_and_log_loss_are_scikit_learns(breast_cancer):
    X, y = breast_cancer
    model = make_model("erm", "tabular", 2, None, Budget(max_epochs=2), 0, tune=False)
    classifier = model.fit(X, y)[-1]
    X32 = X.astype("float32")
    accuracy, loss = accuracy_and_log_loss(classifier, X32, y)
    assert accuracy == accuracy_score(y, classifier.predict(X32))
    assert loss == pytest.approx(log_loss(y, classifier.predict_proba(X32)))


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
