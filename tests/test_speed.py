"""The comparison of a method's learning curve with uniform SGD's."""

from __future__ import annotations

import pandas as pd
import pytest

from sk_reweight._speed import speed_summary


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
