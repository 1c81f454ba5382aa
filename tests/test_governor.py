"""RAIS's speed governor: the decision rule on synthetic timings, and in a real fit."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from sk_reweight import RAISClassifier
from sk_reweight._rais._governor import (
    MARGIN,
    MAX_WAIT,
    MIN_TIMED_SECONDS,
    MIN_TIMED_STEPS,
    BlockClock,
    SamplingGovernor,
    predicted_speedup,
)

STEPS = 50


def sampled_epoch(governor: SamplingGovernor, gain: float, step_seconds: float) -> str:
    """One importance-sampled epoch of ``STEPS`` steps with this gain and step time."""
    governor.record_sampled(STEPS * step_seconds, STEPS, gain * STEPS)
    return governor.end_epoch()


def uniform_epoch(governor: SamplingGovernor, step_seconds: float) -> str:
    governor.record_uniform(STEPS * step_seconds, STEPS, measured=True)
    return governor.end_epoch()


@given(
    gain=st.floats(1, 128, allow_nan=False),
    cost=st.floats(1e-3, 1e3, allow_nan=False),
)
def test_predicted_speedup_is_progress_per_second(gain, cost):
    # r uniform steps of progress in the time of `cost` uniform steps.
    uniform_steps_per_second = 1.0
    sampled_progress_per_second = gain * uniform_steps_per_second / cost
    assert math.isclose(predicted_speedup(gain, cost), sampled_progress_per_second)


def test_governor_keeps_sampling_while_it_pays():
    governor = SamplingGovernor()
    governor.record_uniform(STEPS * 0.01, STEPS, measured=False)
    for _ in range(5):
        reason = sampled_epoch(governor, gain=1.5, step_seconds=0.012)
        assert governor.sampling
        assert governor.last_prediction == pytest.approx(1.25)
        assert "predicted speed-up 1.25" in reason


def test_governor_backs_off_doubling_and_returns_when_sampling_pays():
    governor = SamplingGovernor()
    uniform = 0.01
    governor.record_uniform(STEPS * uniform, STEPS, measured=False)
    waits = []
    for _ in range(6):  # every try predicts 1.1 / 1.4 < 0.95
        sampled_epoch(governor, gain=1.1, step_seconds=1.4 * uniform)
        assert not governor.sampling
        waits.append(governor.wait)
        for _ in range(governor.wait):
            assert not governor.sampling
            uniform_epoch(governor, uniform)
            assert math.isnan(governor.last_prediction)
        assert governor.sampling  # tried again
    assert waits == [1, 2, 4, MAX_WAIT, MAX_WAIT, MAX_WAIT]
    # Now the gain has grown: sampling pays, and the next failure waits 1 epoch again.
    sampled_epoch(governor, gain=2.0, step_seconds=1.4 * uniform)
    assert governor.sampling
    assert governor.failures == 0
    sampled_epoch(governor, gain=1.0, step_seconds=1.4 * uniform)
    assert governor.wait == 1


def test_governor_hysteresis_band_keeps_sampling_just_below_one():
    governor = SamplingGovernor(cost_ratio=1.0)
    # A gain of 1 + tiny over a cost slightly above it: within the margin.
    sampled_epoch(governor, gain=1.0, step_seconds=1.0)
    assert governor.sampling
    governor = SamplingGovernor(cost_ratio=1.0 / (1 - MARGIN) * 1.01)
    sampled_epoch(governor, gain=1.0, step_seconds=1.0)
    assert not governor.sampling


def test_governor_measured_uniform_epochs_replace_the_estimate():
    governor = SamplingGovernor()
    # The estimate (RAIS's uniform steps less bookkeeping) says a uniform step costs 0.02 s...
    governor.record_uniform(STEPS * 0.02, STEPS, measured=False)
    assert not governor.uniform_measured
    sampled_epoch(governor, gain=1.0, step_seconds=0.03)  # 1.0 / 1.5: falls back
    uniform_epoch(governor, 0.01)  # ...measured: 0.01 s
    governor.record_uniform(STEPS * 0.05, STEPS, measured=False)  # estimates are ignored now
    assert governor.uniform.per_step == pytest.approx(0.01)
    sampled_epoch(governor, gain=2.5, step_seconds=0.02)
    assert governor.last_prediction == pytest.approx(2.5 / 2.0)


def test_governor_does_not_decide_on_too_little_timing():
    governor = SamplingGovernor()
    governor.record_uniform(1.0, 100, measured=False)
    governor.record_sampled(MIN_TIMED_SECONDS, MIN_TIMED_STEPS - 1, MIN_TIMED_STEPS - 1.0)
    assert "too few timed steps" in governor.end_epoch()
    assert governor.sampling
    # Enough steps but too few seconds: still no decision, the steps accumulate.
    governor = SamplingGovernor()
    governor.record_uniform(1.0, 100, measured=False)
    governor.record_sampled(MIN_TIMED_SECONDS / 10, 100, 100.0)
    governor.end_epoch()
    assert math.isnan(governor.last_prediction)
    assert governor.sampling
    governor.record_sampled(MIN_TIMED_SECONDS, 100, 100.0)
    governor.end_epoch()
    assert not math.isnan(governor.last_prediction)


def test_governor_state_round_trips():
    governor = SamplingGovernor()
    governor.record_uniform(STEPS * 0.01, STEPS, measured=False)
    sampled_epoch(governor, gain=1.0, step_seconds=0.02)
    state = governor.state_dict()
    assert set(state) == {
        "sampling", "wait", "failures", "uniform", "uniform_measured", "sampled", "gain_sum",
        "last_prediction",
    }  # fmt: skip
    restored = SamplingGovernor()
    restored.load_state_dict(state)
    assert restored == governor
    assert uniform_epoch(restored, 0.01) == uniform_epoch(governor, 0.01)
    with pytest.raises(ValueError, match=r"governor\.sampled state"):
        restored.load_state_dict({**state, "sampled": {"seconds": 1.0}})


def test_block_clock_tells_blocks_after_the_first_and_uniform_ones_less_bookkeeping():
    governor = SamplingGovernor()
    clock = BlockClock(governor)
    clock.end_block(16, False, 16.0, time.perf_counter())  # warm-up: not told
    assert governor.uniform.steps == 0
    start = time.perf_counter()
    clock.bookkeeping(time.sleep, 0.02)
    time.sleep(0.01)
    clock.end_block(16, False, 16.0, time.perf_counter())
    block = time.perf_counter() - start
    assert governor.uniform.steps == 16
    # The block's time less its bookkeeping: at least the 10 ms slept outside it.
    assert 0.009 < governor.uniform.seconds <= block - 0.02
    clock.bookkeeping(time.sleep, 0.02)
    clock.end_block(8, True, 12.0, time.perf_counter())  # importance-sampled: timed whole
    assert governor.sampled.steps == 8
    assert governor.gain_sum == 12.0
    assert governor.sampled.seconds >= 0.02
    clock.end_block(0, True, 0.0, time.perf_counter())  # an empty block tells nothing
    assert governor.sampled.steps == 8


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def fit_rais(X, y, **params):
    defaults = dict(hidden_layer_sizes=(32,), max_epochs=10, random_state=0)
    return RAISClassifier(**{**defaults, **params}).fit(X, y)


def test_rais_falls_back_to_uniform_sgd_when_sampling_costs_too_much(digits):
    X, y = digits
    rais = fit_rais(X, y, uniform_fallback=100.0)  # no gain ratio pays a 100x cost
    sampling = list(rais.history_[:, "sampling"])
    assert sampling[:2] == ["uniform", "uniform"]  # the first epoch, then before the first solve
    first_sampled = sampling.index("importance")
    assert sampling[first_sampled + 1] == "uniform"
    uniform_epochs = [
        epoch for epoch in rais.history_[first_sampled + 1 :] if epoch["sampling"] == "uniform"
    ]
    for epoch in uniform_epochs:
        # uniform SGD's step: gain ratio 1, one epoch of progress per epoch, no (PT) solve
        assert epoch["gain_ratio"] == 1.0
        assert epoch["solves"] == 0
        assert epoch["predicted_speedup"] is None
    equivalent = rais.history_[:, "epochs_equivalent"]
    for previous, epoch in zip(equivalent, rais.history_[1:], strict=False):
        if epoch["sampling"] == "uniform":
            assert epoch["epochs_equivalent"] == pytest.approx(min(previous + 1, 10))
    decisions = [d for d in rais.history_[:, "predicted_speedup"] if d is not None]
    assert decisions
    assert max(decisions) < 1 - MARGIN
    assert rais.score(X, y) > 0.9
    # Reproducible: the assumed cost makes every decision a function of the gains.
    again = fit_rais(X, y, uniform_fallback=100.0)
    np.testing.assert_array_equal(rais.predict_proba(X), again.predict_proba(X))


def test_rais_without_governor_is_the_papers_algorithm(digits):
    X, y = digits
    paper = fit_rais(X, y, uniform_fallback=None)
    free = fit_rais(X, y, uniform_fallback=1e-6)  # sampling always pays: never falls back
    assert "uniform" not in list(paper.history_[:, "sampling"])[2:]
    assert set(paper.history_[:, "predicted_speedup"]) == {None}
    # Deciding to go on sampling changes nothing in the training itself.
    np.testing.assert_array_equal(paper.predict_proba(X), free.predict_proba(X))


@pytest.mark.parametrize("value", ["fast", 0, -1.0])
def test_uniform_fallback_is_validated(digits, value):
    X, y = digits
    with pytest.raises(ValueError, match="uniform_fallback"):
        fit_rais(X, y, uniform_fallback=value)
