"""TrainingCheckpoint: atomic checkpoints, and fits that resume where a killed process stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_reweight import (
    ERMClassifier,
    RAISClassifier,
    RGDClassifier,
    TrainingCheckpoint,
    _checkpoint,
)

from .test_training_options import CountEpochs

QUICK = {"device": "cpu", "random_state": 0}

# A fit with everything a resumed fit must continue: a cosine schedule (driven by the
# policy's progress), dropout (torch's global generator), the minibatch order (the policy's
# generator), Adam's moments, RGD's warm-up epochs and early stopping's patience.
PARAMS = {
    "max_epochs": 12, "lr_schedule": "cosine", "dropout": 0.2, "warmup_epochs": 2,
    "early_stopping": True, "n_iter_no_change": 20, "random_state": 0, "device": "cpu",
}  # fmt: skip

SCRIPT = f"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from sklearn.datasets import load_digits
from skorch.callbacks import Callback
from sk_reweight import RGDClassifier, TrainingCheckpoint

class Slow(Callback):
    def on_epoch_end(self, net, **kwargs):
        print("epoch", len(net.history), flush=True)
        time.sleep(float(sys.argv[3]))

X, y = load_digits(return_X_y=True)
callbacks = [Slow(), TrainingCheckpoint(sys.argv[1])]
model = RGDClassifier(**{PARAMS!r}, callbacks=callbacks).fit(X / 16, y)
np.save(sys.argv[2], model.predict_proba(X / 16))
print("losses", json.dumps(model.loss_curve_), flush=True)
"""


def run_script(script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def saved_epochs(path: Path) -> int:
    return torch.load(path, weights_only=True)["epochs"]


class FailsAtEpoch(Callback):
    """Raises at the end of an epoch: a crash in the middle of a fit."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise RuntimeError("crash")


def test_killed_fit_resumes_to_the_uninterrupted_result(digits, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    checkpoint = tmp_path / "checkpoints"
    path = checkpoint / "training.pt"
    killed = run_script(script, str(checkpoint), str(tmp_path / "unused.npy"), "0.3")
    for line in killed.stdout:  # kill it once its fourth epoch has ended
        if line.strip() == "epoch 4":
            break
    time.sleep(0.1)  # while it waits before writing the fourth checkpoint
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    done = saved_epochs(path)
    assert 3 <= done < 12  # the checkpoint is complete, and the fit was not
    assert [p.name for p in checkpoint.iterdir()] == ["training.pt"]  # no stale temporary

    resumed = run_script(script, str(checkpoint), str(tmp_path / "resumed.npy"), "0")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    epochs_run = [line for line in output.splitlines() if line.startswith("epoch")]
    assert epochs_run[0] == f"epoch {done + 1}"  # at most one checkpoint interval lost

    X, y = digits  # the uninterrupted fit, here (one torch thread, as in the script)
    reference = RGDClassifier(**PARAMS).fit(X, y)
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"), reference.predict_proba(X))
    losses = json.loads(output.splitlines()[-1].removeprefix("losses "))
    assert losses == reference.loss_curve_  # every epoch's, before and after the kill


@pytest.mark.parametrize("Classifier", [ERMClassifier, RGDClassifier])
def test_crashed_fit_resumes_exactly_in_process(Classifier, digits, tmp_path):
    X, y = digits
    params = {**QUICK, "max_epochs": 6, "lr_schedule": "step", "dropout": 0.1}
    reference = Classifier(**params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path, every=2)
    with pytest.raises(RuntimeError, match="crash"):
        Classifier(**params, callbacks=[checkpoint, FailsAtEpoch(5)]).fit(X, y)
    assert saved_epochs(checkpoint.path) == 4
    counter = CountEpochs()
    resumed = Classifier(**params, callbacks=[checkpoint, ("counter", counter)]).fit(X, y)
    assert dict(resumed.net_.callbacks_)["counter"].epochs_ == 2
    assert resumed.n_iter_ == 6
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.history_[:, "lr"] == reference.history_[:, "lr"]
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    # A finished fit's checkpoint resumes to the finished network without training.
    again = Classifier(**params, callbacks=[TrainingCheckpoint(tmp_path, every=2)]).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), reference.predict_proba(X))


@pytest.mark.parametrize("oracle", [False, True])
def test_crashed_rais_fit_resumes_exactly_with_its_histories_and_uncertainty_set(
    oracle, digits, tmp_path
):
    X, y = digits
    # |D| = 256 records: a (PT) solve every 2 steps, so one is in flight at every epoch end.
    params = {**QUICK, "max_epochs": 6, "history_size": 256, "lr_schedule": "cosine"}
    # An assumed step cost makes the governor's decisions part of what must resume exactly.
    params["oracle"], params["uniform_fallback"] = oracle, 1.2
    reference = RAISClassifier(**params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        RAISClassifier(**params, callbacks=[checkpoint, FailsAtEpoch(3)]).fit(X, y)
    saved = torch.load(checkpoint.path, weights_only=True)
    assert saved["epochs"] == 3
    if not oracle:
        assert saved["policy"]["uncertainty_set"] is not None  # past the first solve
        assert saved["policy"]["solves"]["pending"] is not None
    resumed = RAISClassifier(**params, callbacks=[checkpoint]).fit(X, y)
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.history_[:, "gain_ratio"] == reference.history_[:, "gain_ratio"]
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    np.testing.assert_array_equal(
        resumed.sampling_probabilities(), reference.sampling_probabilities()
    )
    if not oracle:
        np.testing.assert_array_equal(resumed.uncertainty_set_.c, reference.uncertainty_set_.c)


def test_checkpoints_are_written_atomically(digits, tmp_path, monkeypatch):
    X, y = digits
    checkpoint = TrainingCheckpoint(tmp_path)
    ERMClassifier(**QUICK, max_epochs=2, callbacks=[checkpoint]).fit(X, y)
    before = checkpoint.path.read_bytes()

    def crash_while_renaming(source, target):
        assert Path(source).stat().st_size > 0  # the new checkpoint was complete ...
        raise OSError("disk gone")  # ... but the process died before it replaced the old one

    monkeypatch.setattr(_checkpoint.os, "replace", crash_while_renaming)
    with pytest.raises(OSError, match="disk gone"):
        ERMClassifier(**QUICK, max_epochs=4, callbacks=[checkpoint]).fit(X, y)
    assert checkpoint.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["training.pt"]


def test_checkpoint_of_another_network_is_refused(digits, tmp_path):
    X, y = digits
    ERMClassifier(**QUICK, max_epochs=1, callbacks=[TrainingCheckpoint(tmp_path)]).fit(X, y)
    other = ERMClassifier(
        **QUICK, max_epochs=1, hidden_layer_sizes=(7,), callbacks=[TrainingCheckpoint(tmp_path)]
    )
    with pytest.raises(ValueError, match="another network"):
        other.fit(X, y)
    with pytest.raises(ValueError, match="trains on 100"):
        ERMClassifier(**QUICK, max_epochs=1, callbacks=[TrainingCheckpoint(tmp_path)]).fit(
            X[:100], y[:100]
        )


def test_checkpoint_every_must_be_a_positive_integer(digits, tmp_path):
    with pytest.raises(ValueError, match="every must be an integer"):
        ERMClassifier(**QUICK, callbacks=[TrainingCheckpoint(tmp_path, every=0)]).fit(*digits)


def test_checkpoint_holds_only_tensors_and_plain_values(digits, tmp_path):
    X, y = digits
    checkpoint = TrainingCheckpoint(tmp_path)
    RAISClassifier(**QUICK, max_epochs=2, early_stopping=True, callbacks=[checkpoint]).fit(X, y)
    saved = torch.load(checkpoint.path, weights_only=True)  # refuses anything else
    assert saved["epochs"] == 2
    assert saved["early_stopping"][0]["best_model_weights_"] is not None
