"""Ctrl-C: a real SIGINT stops ``fit`` after the current step, and ``bench`` keeps its folds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

from .settings import FAST


class CtrlCAtStep(Callback):
    """Sends this process a real SIGINT at the end of training step ``step`` (1-based).

    ``steps`` counts the steps run, over every fit of the classifier: the
    classifier's deep copies of the callback are the callback itself.
    """

    def __init__(self, steps: list, step: int):
        self.steps = steps
        self.step = step

    def __deepcopy__(self, memo):
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.steps.append(len(net.history))
            if len(self.steps) == self.step:
                os.kill(os.getpid(), signal.SIGINT)


class RecordingHandler:
    """A SIGINT handler that records the signals it receives."""

    def __init__(self):
        self.received = []

    def __call__(self, signum, frame):
        self.received.append(signum)


@pytest.fixture
def previous_handler():
    """A :class:`RecordingHandler` installed as the SIGINT handler around the test."""
    handler = RecordingHandler()
    original = signal.signal(signal.SIGINT, handler)
    yield handler
    signal.signal(signal.SIGINT, original)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


ESTIMATORS = [ERMClassifier, RGDClassifier, RAISClassifier]
TRAINING = {**FAST, "max_epochs": 50, "batch_size": 64}


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_ctrl_c_stops_fit_after_the_step_and_leaves_an_unfitted_classifier(
    estimator, digits, previous_handler
):
    steps = []
    model = estimator(**TRAINING, callbacks=[CtrlCAtStep(steps, step=3)])
    with pytest.raises(KeyboardInterrupt):
        model.fit(*digits)
    assert len(steps) == 3
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    fitted = [name for name in vars(model) if name.endswith("_") and not name.startswith("__")]
    assert fitted == []
    assert signal.getsignal(signal.SIGINT) is previous_handler
    assert previous_handler.received == []


@pytest.mark.parametrize("warm_start", [False, True])
def test_ctrl_c_leaves_a_fitted_classifier_as_it_was(warm_start, digits, previous_handler):
    X, y = digits
    steps_per_epoch = -(-len(y) // TRAINING["batch_size"])
    steps = []
    ctrl_c = CtrlCAtStep(steps, step=2 * steps_per_epoch + 3)  # in the second fit
    model = ERMClassifier(
        **{**TRAINING, "max_epochs": 2}, warm_start=warm_start, callbacks=[ctrl_c]
    ).fit(X, y)
    before = dict(vars(model))
    weights = {name: value.clone() for name, value in model.net_.module_.state_dict().items()}
    proba = model.predict_proba(X)
    model.set_params(max_epochs=50)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert len(steps) == ctrl_c.step
    assert model.n_iter_ == 2
    assert len(model.history_) == 2
    assert model.loss_curve_ is before["loss_curve_"]
    after = model.net_.module_.state_dict()
    assert all(torch.equal(after[name], value) for name, value in weights.items())
    assert (model.predict_proba(X) == proba).all()
    if not warm_start:
        assert model.net_ is before["net_"]
    assert signal.getsignal(signal.SIGINT) is previous_handler


def test_the_sigint_handler_is_restored_after_fit_and_after_errors(digits, previous_handler):
    X, y = digits
    ERMClassifier(**{**TRAINING, "max_epochs": 1}).fit(X, y)
    assert signal.getsignal(signal.SIGINT) is previous_handler
    with pytest.raises(FloatingPointError):
        ERMClassifier(**{**TRAINING, "max_epochs": 1}, lr=1e30).fit(X * 1e30, y)
    assert signal.getsignal(signal.SIGINT) is previous_handler
    assert previous_handler.received == []


def wait_for(path, process, timeout=180.0):
    """Wait until ``path`` exists while ``process`` runs (generously: a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow  # a real subprocess: 30-40 s
def test_ctrl_c_during_bench_keeps_the_finished_folds_and_exits_130(tmp_path):
    process = start(bench_command(tmp_path, 300))
    wait_for(tmp_path / "curves.csv", process)  # the first fold is written, the second trains
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Interrupted: kept 1 finished fit(s)" in stdout
    assert "Traceback" not in stderr
    results = pd.read_csv(tmp_path / "results.csv")
    assert results[["fold", "method", "split"]].values.tolist() == [[0, "erm", "cv"]]
    assert pd.read_csv(tmp_path / "curves.csv")["fold"].unique().tolist() == [0]
    summary = (tmp_path / "summary.md").read_text()
    assert "Status: interrupted after 1 of 3 fits." in summary
    assert "| digits | cv | erm | 1 |" in summary
    assert json.loads((tmp_path / "config.json").read_text())["status"].startswith("interrupted")
    assert (tmp_path / "accuracy.png").exists()


@pytest.mark.slow  # a real subprocess: 30-40 s
def test_ctrl_c_during_speed_keeps_the_finished_seeds_and_exits_130(tmp_path):
    command = [
        *(sys.executable, "-m", "sk_reweight", "speed", "--dataset", "digits"),
        *("--method", "erm", "--seeds", "2", "--max-epochs", "100", "--budgets", "1"),
        *("--output", str(tmp_path)),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = ""
    while " 2/4 " not in progress:  # the first seed's two fits are done
        character = process.stderr.read(1)
        assert character, process.communicate()
        progress += character
    time.sleep(0.5)  # the seed is recorded; the third fit trains
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Interrupted: kept 1 finished seed(s)" in stdout
    assert "Traceback" not in stderr
    assert pd.read_csv(tmp_path / "speed.csv")["seed"].unique().tolist() == [0]
    assert pd.read_csv(tmp_path / "curves.csv")["seed"].unique().tolist() == [0]
    assert "Status: interrupted after 1 of 2 seeds." in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "config.json").read_text())["status"].startswith("interrupted")
    assert (tmp_path / "speed.png").exists()


def bench_command(output, max_epochs):
    return [
        *(sys.executable, "-m", "sk_reweight", "bench", "--datasets", "digits"),
        *("--methods", "erm", "--cv", "3", "--no-tune", "--max-epochs", str(max_epochs)),
        *("--seeds", "1", "--output", str(output)),
    ]


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(command, sigint_ignored=False):
    """Start ``command``; ``sigint_ignored``: as a shell starts a background job (``&``)."""
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )


def assert_report_whole(output, status):
    """summary.md, config.json and the plots are complete, and no temporary file is left."""
    summary = (output / "summary.md").read_text()
    assert f"Status: {status}" in summary
    assert "| digits | cv | erm | 1 |" in summary
    assert json.loads((output / "config.json").read_text())["status"] == status.rstrip(".")
    assert (output / "accuracy.png").exists()
    assert not [path.name for path in output.iterdir() if path.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "background_job"])
def test_sigterm_during_bench_is_handled_like_ctrl_c_and_exits_143(sigint_ignored, tmp_path):
    process = start(bench_command(tmp_path, 300), sigint_ignored)
    wait_for(tmp_path / "curves.csv", process)  # the first fold is written, the second trains
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Terminated (SIGTERM): kept 1 finished fit(s)" in stdout
    assert "Traceback" not in stderr
    assert pd.read_csv(tmp_path / "results.csv")["fold"].tolist() == [0]
    assert_report_whole(tmp_path, "terminated (SIGTERM) after 1 of 3 fits.")


@pytest.mark.slow
def test_ctrl_c_pressed_again_and_again_does_not_cut_the_report_short(tmp_path):
    process = start(bench_command(tmp_path, 300))
    wait_for(tmp_path / "curves.csv", process)
    time.sleep(0.5)
    signals = 0
    while process.poll() is None and signals < 400:  # through the whole report, 20 s at most
        process.send_signal(signal.SIGINT)
        signals += 1
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=60)
    assert signals > 3  # some came while the report was written
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted: kept 1 finished fit(s)" in stdout
    assert_report_whole(tmp_path, "interrupted after 1 of 3 fits.")


@pytest.mark.slow
def test_a_killed_bench_run_again_keeps_its_finished_fits_and_completes(tmp_path):
    command = bench_command(tmp_path, 40)
    process = start(command)
    wait_for(tmp_path / "curves.csv", process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    kept = pd.read_csv(tmp_path / "results.csv")
    assert 1 <= len(kept) < 3
    again = start(command)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert f"keeping {len(kept)} finished fit(s)" in stdout
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["fold"].tolist() == [0, 1, 2]  # each fit once
    pd.testing.assert_frame_equal(results.iloc[: len(kept)], kept)
    assert json.loads((tmp_path / "config.json").read_text())["status"] == "complete"
    other = start([*command[:-2], "--cv", "2", *command[-2:]])
    stdout, stderr = other.communicate(timeout=120)
    assert other.returncode == 2
    assert "holds the results of another run (it differs in: cv)" in stderr
