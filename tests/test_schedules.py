"""Learning-rate schedules."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sk_reweight._schedules import (
    constant_schedule,
    cosine_schedule,
    resolve_lr_schedule,
    step_schedule,
)


def test_cosine_endpoints_and_midpoint():
    assert cosine_schedule(0, 10) == 1.0
    assert cosine_schedule(5, 10) == pytest.approx(0.5)
    assert cosine_schedule(10, 10) == pytest.approx(0.0)
    assert cosine_schedule(12, 10) == pytest.approx(0.0)


@given(st.floats(0, 100), st.floats(0, 100), st.integers(1, 50))
def test_cosine_is_non_increasing_and_in_unit_interval(a, b, total):
    low, high = sorted((a, b))
    assert 0 <= cosine_schedule(high, total) <= cosine_schedule(low, total) <= 1


def test_step_schedule_milestones():
    factors = [step_schedule(epoch, 20) for epoch in (0, 9.99, 10, 14.99, 15, 19)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_resolve_named_and_custom_schedules():
    assert resolve_lr_schedule(None, 10) is constant_schedule
    assert resolve_lr_schedule("cosine", 10)(5) == pytest.approx(0.5)
    assert resolve_lr_schedule("step", 10)(5) == pytest.approx(0.1)
    assert resolve_lr_schedule(math.sqrt, 10) is math.sqrt


def test_named_schedules_are_picklable():
    schedule = pickle.loads(pickle.dumps(resolve_lr_schedule("cosine", 8)))
    assert schedule(4) == pytest.approx(0.5)
