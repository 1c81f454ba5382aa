"""TrainingCheckpoint: atomic checkpoints, and fits that resume where a killed process stopped."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from skorch.callbacks import Callback

from sk_reweight import (
    TRUSTED_TYPES,
    ERMClassifier,
    RAISClassifier,
    RGDClassifier,
    TrainingCheckpoint,
    _checkpoint,
)
from sk_reweight._rais._gain import GainRatioEstimator
from sk_reweight._rais._history import FEATURE_NAMES, NormHistory, RecentRecords
from sk_reweight._rais._solve_schedule import BackgroundSolves
from sk_reweight._rais._solver_report import SolverReport
from sk_reweight._rais._uncertainty import SolverError, UncertaintySet

from .test_training_options import CountEpochs

QUICK = {"device": "cpu", "random_state": 0, "n_iter_no_change": None}  # every epoch run

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
    root = str(Path(__file__).resolve().parents[1])  # this checkout's sk_reweight
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def saved_epochs(path: Path) -> int:
    return torch.load(path, weights_only=True)["epochs"]


def only_checkpoint(directory: Path) -> Path:
    """The one checkpoint file in ``directory`` (there is no other file, no temporary)."""
    (path,) = Path(directory).iterdir()
    assert path.name.startswith("training-")
    assert path.suffix == ".pt"
    return path


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
    killed = run_script(script, str(checkpoint), str(tmp_path / "unused.npy"), "0.3")
    for line in killed.stdout:  # kill it once its fourth epoch has ended
        if line.strip() == "epoch 4":
            break
    time.sleep(0.1)  # while it waits before writing the fourth checkpoint
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    done = saved_epochs(only_checkpoint(checkpoint))  # no stale temporary either
    assert 3 <= done < 12  # the checkpoint is complete, and the fit was not

    resumed = run_script(script, str(checkpoint), str(tmp_path / "resumed.npy"), "0")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    epochs_run = [line for line in output.splitlines() if line.startswith("epoch")]
    assert epochs_run[0] == f"epoch {done + 1}"  # at most one checkpoint interval lost

    X, y = digits  # the uninterrupted fit, here (one torch thread, as in the script)
    with pytest.warns(ConvergenceWarning, match="max_epochs=12"):  # patience 20: never stops
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
    assert saved_epochs(only_checkpoint(tmp_path)) == 4
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
    saved = torch.load(only_checkpoint(tmp_path), weights_only=True)
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


def test_a_resumed_rais_fit_tells_its_governor_every_block_as_the_uninterrupted_one(
    digits, tmp_path
):
    """The fit's first block is the governor's warm-up; a resumed fit has none.

    With |D| = 1500 no solve is due at the first step of the resumed epoch,
    so its first block is a sampled one: were it taken for warm-up, the
    governor's predicted speed-up (and, at a margin, its decision) would differ.
    """
    X, y = digits
    params = {**QUICK, "max_epochs": 6, "history_size": 1500, "batch_size": 32}
    params["uniform_fallback"] = 1.0  # an assumed cost: decisions are reproducible
    reference = RAISClassifier(**params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        RAISClassifier(**params, callbacks=[checkpoint, FailsAtEpoch(3)]).fit(X, y)
    resumed = RAISClassifier(**params, callbacks=[checkpoint]).fit(X, y)
    predicted = reference.history_[:, "predicted_speedup"]
    assert predicted[3] is not None  # a decision after the resumed epoch
    assert resumed.history_[:, "predicted_speedup"] == predicted
    assert resumed.history_[:, "sampling_decision"] == reference.history_[:, "sampling_decision"]


def test_checkpoints_are_written_atomically(digits, tmp_path, monkeypatch):
    X, y = digits
    checkpoint = TrainingCheckpoint(tmp_path)
    params = {**QUICK, "max_epochs": 4}
    with pytest.raises(RuntimeError, match="crash"):
        ERMClassifier(**params, callbacks=[checkpoint, FailsAtEpoch(2)]).fit(X, y)
    path = only_checkpoint(tmp_path)
    before = path.read_bytes()

    def crash_while_renaming(source, target):
        assert Path(source).stat().st_size > 0  # the new checkpoint was complete ...
        raise OSError("disk gone")  # ... but the process died before it replaced the old one

    monkeypatch.setattr(_checkpoint.os, "replace", crash_while_renaming)
    with pytest.raises(OSError, match="disk gone"):
        ERMClassifier(**params, callbacks=[checkpoint]).fit(X, y)
    assert only_checkpoint(tmp_path).read_bytes() == before


# ----------------------------------------------------------- whose checkpoint


def test_grid_search_and_refit_give_the_same_results_with_a_checkpoint(digits, tmp_path):
    X, y = digits[0][:600], digits[1][:600]
    grid, folds = {"lr": [1e-4, 3e-2]}, KFold(3)
    params = {**QUICK, "max_epochs": 3, "optimizer": "sgd"}

    def search(callbacks):
        model = ERMClassifier(**params, callbacks=callbacks)
        return GridSearchCV(model, grid, cv=folds).fit(X, y)

    reference = search(None)
    keys = [f"split{i}_test_score" for i in range(3)]
    for _ in range(2):  # writes 7 checkpoints, then resumes every one of them
        searched = search([TrainingCheckpoint(tmp_path)])
        assert len(list(tmp_path.iterdir())) == 2 * 3 + 1  # one per candidate and fold, refit
        for key in keys:
            np.testing.assert_array_equal(searched.cv_results_[key], reference.cv_results_[key])
        assert searched.best_params_ == reference.best_params_ == {"lr": 3e-2}
        np.testing.assert_array_equal(
            searched.best_estimator_.predict_proba(X), reference.best_estimator_.predict_proba(X)
        )
    scores = cross_validate(
        ERMClassifier(**params, callbacks=[TrainingCheckpoint(tmp_path)]), X, y, cv=folds
    )["test_score"]
    lr_default = cross_validate(ERMClassifier(**params), X, y, cv=folds)["test_score"]
    np.testing.assert_array_equal(scores, lr_default)


@pytest.mark.parametrize(
    "change",
    ["other data of the same shape", "lr", "optimizer", "max_epochs", "method", "sample_weight"],
)
def test_a_foreign_checkpoint_is_not_resumed(change, digits, tmp_path):
    X, y = digits[0][:400], digits[1][:400]
    params = {**QUICK, "max_epochs": 3, "optimizer": "adam"}
    ERMClassifier(**params, callbacks=[TrainingCheckpoint(tmp_path)]).fit(X, y)
    Classifier, weight = ERMClassifier, None
    if change == "other data of the same shape":
        X = digits[0][400:800]
    elif change == "lr":
        params["lr"] = 0.1
    elif change == "optimizer":  # a resumed Adam state crashed SGD's step
        params["optimizer"] = "sgd"
    elif change == "max_epochs":
        params["max_epochs"] = 2
    elif change == "method":
        Classifier = RGDClassifier
    else:
        weight = np.linspace(0.5, 1.5, len(y))
    fresh = Classifier(**params).fit(X, y, sample_weight=weight)
    counter = CountEpochs()
    other = Classifier(**params, callbacks=[TrainingCheckpoint(tmp_path), ("count", counter)])
    other.fit(X, y, sample_weight=weight)
    assert dict(other.net_.callbacks_)["count"].epochs_ == params["max_epochs"]  # from scratch
    np.testing.assert_array_equal(other.predict_proba(X), fresh.predict_proba(X))
    assert len(list(tmp_path.iterdir())) == 2


def test_fits_running_at_the_same_time_in_one_directory_keep_to_their_own(digits, tmp_path):
    X, y = digits[0][:600], digits[1][:600]
    params = {**QUICK, "max_epochs": 2, "dropout": 0.2}
    grid = [{"lr": 1e-4}, {"lr": 3e-2}, {"lr": 3e-2, "random_state": 1}]
    alone = [ERMClassifier(**{**params, **p}).fit(X, y).predict_proba(X) for p in grid]
    barrier = threading.Barrier(len(grid))

    def fit(changes):
        barrier.wait()  # all three train at the same time
        callbacks = [TrainingCheckpoint(tmp_path)]
        return ERMClassifier(**{**params, **changes}, callbacks=callbacks).fit(X, y)

    with ThreadPoolExecutor(len(grid)) as pool:
        together = list(pool.map(fit, grid))
    assert len(list(tmp_path.iterdir())) == len(grid)
    for model, reference in zip(together, alone, strict=True):
        np.testing.assert_array_equal(model.predict_proba(X), reference)


def test_each_warm_start_fit_has_its_own_checkpoint(digits, tmp_path):
    X, y = digits[0][:600], digits[1][:600]
    params = {**QUICK, "max_epochs": 2, "warm_start": True}

    def three_fits(callbacks):
        model = ERMClassifier(**params, callbacks=callbacks)
        for _ in range(3):  # each continues the last: it must not resume the last's checkpoint
            model.fit(X, y)
        return model

    reference = three_fits(None)
    for _ in range(2):  # then the same three fits again, each resuming its own
        model = three_fits([TrainingCheckpoint(tmp_path)])
        assert model.n_iter_ == 6
        np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert len(list(tmp_path.iterdir())) == 3


def test_a_renamed_checkpoint_is_refused_naming_the_difference(digits, tmp_path):
    X, y = digits
    first = ERMClassifier(**QUICK, max_epochs=1, callbacks=[TrainingCheckpoint(tmp_path)])
    first.fit(X, y)
    other = ERMClassifier(**QUICK, max_epochs=1, lr=0.1, callbacks=[TrainingCheckpoint(tmp_path)])
    other.fit(X, y)
    mine = dict(first.net_.callbacks_)["TrainingCheckpoint"].path_
    theirs = dict(other.net_.callbacks_)["TrainingCheckpoint"].path_
    assert mine != theirs
    theirs.write_bytes(mine.read_bytes())
    with pytest.raises(ValueError, match=rf"{theirs.name} belongs to another fit.*parameters\.lr"):
        other.fit(X, y)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "pickle"])
def test_a_damaged_checkpoint_is_named_and_explained(damage, digits, tmp_path):
    X, y = digits
    model = ERMClassifier(**QUICK, max_epochs=2, callbacks=[TrainingCheckpoint(tmp_path)])
    model.fit(X, y)
    path = only_checkpoint(tmp_path)
    content = path.read_bytes()
    path.write_bytes(
        {
            "truncated": content[: len(content) // 2],
            "empty": b"",
            "garbage": os.urandom(1000),
            "pickle": pickle.dumps(Path("x"), protocol=2),  # not tensors and plain values
        }[damage]
    )
    with pytest.raises(ValueError, match=r"cannot read the checkpoint") as error:
        model.fit(X, y)
    message = str(error.value)
    assert str(path) in message
    assert "Delete it" in message
    assert "weights_only" not in message  # torch's advice, unsafe for a file of unknown origin
    assert error.value.__cause__ is None
    path.unlink()  # what the message says to do
    np.testing.assert_array_equal(
        model.fit(X, y).predict_proba(X),
        ERMClassifier(**QUICK, max_epochs=2).fit(X, y).predict_proba(X),
    )


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` (as root on Linux), unmounted afterwards."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


class FillsTheDisk(Callback):
    """After the first epoch's checkpoint, fills the disk of ``directory``."""

    def __init__(self, directory):
        self.directory = directory

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 1:
            filler = Path(self.directory) / "filler"
            with open(filler, "wb", buffering=0) as file, contextlib.suppress(OSError):
                while True:
                    file.write(b"x" * 4096)


needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a tmpfs needs root"
)


@needs_root
def test_a_full_disk_keeps_the_previous_checkpoint_and_training_goes_on(digits, tmp_path):
    X, y = digits
    params = {**QUICK, "max_epochs": 3}
    with tmpfs(tmp_path / "small", "size=1m") as disk:
        callbacks = [TrainingCheckpoint(disk), FillsTheDisk(disk)]
        with pytest.warns(RuntimeWarning, match="no space left") as warned:
            model = ERMClassifier(**params, callbacks=callbacks).fit(X, y)
        assert len(warned) == 2  # epochs 2 and 3; no other exception, the fit finished
        assert "previous one (epoch 1) is kept" in str(warned[0].message)
        (path,) = [p for p in disk.iterdir() if p.name != "filler"]  # no temporary left
        assert saved_epochs(path) == 1
        np.testing.assert_array_equal(
            model.predict_proba(X), ERMClassifier(**params).fit(X, y).predict_proba(X)
        )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_without_root_keeps_the_previous_checkpoint(digits, tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: the checkpoint's file descriptor is /dev/full's, whose
    writes fail with the kernel's own ENOSPC from the second checkpoint on."""
    X, y = digits
    make_temporary = tempfile.mkstemp

    def full_from_the_second_checkpoint(**kwargs):
        handle, path = make_temporary(**kwargs)
        if only_checkpoint_count(tmp_path):
            os.close(handle)
            handle = os.open("/dev/full", os.O_WRONLY)
        return handle, path

    monkeypatch.setattr(_checkpoint.tempfile, "mkstemp", full_from_the_second_checkpoint)
    with pytest.warns(RuntimeWarning, match=r"no space left.*\(epoch 1\) is kept") as warned:
        ERMClassifier(**QUICK, max_epochs=3, callbacks=[TrainingCheckpoint(tmp_path)]).fit(X, y)
    assert len(warned) == 2
    assert saved_epochs(only_checkpoint(tmp_path)) == 1  # and no temporary file is left


def only_checkpoint_count(directory: Path) -> int:
    return len([path for path in directory.iterdir() if path.suffix == ".pt"])


@needs_root
def test_an_unwritable_directory_is_refused_before_training(digits, tmp_path):
    X, y = digits
    counter = CountEpochs()
    with tmpfs(tmp_path / "readonly", "ro,size=1m") as disk:
        model = ERMClassifier(**QUICK, callbacks=[("count", counter), TrainingCheckpoint(disk)])
        with pytest.raises(ValueError, match=rf"cannot write checkpoints in {disk}.*Read-only"):
            model.fit(X, y)
    assert not hasattr(model, "net_")  # nothing was trained
    target = tmp_path / "a file"
    target.write_text("")
    with pytest.raises(ValueError, match="cannot write checkpoints in"):
        ERMClassifier(**QUICK, callbacks=[TrainingCheckpoint(target)]).fit(X, y)


@pytest.mark.parametrize("filename", ["../../autostart.sh", "/etc/x.pt", "a/b.pt", "..", ""])
def test_filename_must_be_a_plain_name(filename, digits, tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        TrainingCheckpoint(tmp_path, filename=filename)
    checkpoint = TrainingCheckpoint(tmp_path / "inside")
    checkpoint.filename = filename  # set after construction: refused at fit
    with pytest.raises(ValueError, match="plain file name"):
        ERMClassifier(**QUICK, max_epochs=1, callbacks=[checkpoint]).fit(*digits)
    assert list(tmp_path.rglob("*")) == []


def test_a_model_file_cannot_choose_where_a_fit_writes(digits, tmp_path):
    X, y = digits
    inside = tmp_path / "a" / "b"
    model = ERMClassifier(**QUICK, max_epochs=1, callbacks=[TrainingCheckpoint(str(inside))])
    model.fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with zipfile.ZipFile(path) as archive:  # the attacker edits the saved callback
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = files["schema.json"].decode()
    assert schema.count("training.pt") == 1
    files["schema.json"] = schema.replace("training.pt", "../../autostart.sh").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    with pytest.raises(ValueError, match="plain file name"):  # refused as its net is rebuilt
        sio.load(path, trusted=TRUSTED_TYPES)
    assert not list(tmp_path.rglob("autostart*"))


def test_checkpoint_every_must_be_a_positive_integer(digits, tmp_path):
    with pytest.raises(ValueError, match="every must be an integer"):
        ERMClassifier(**QUICK, callbacks=[TrainingCheckpoint(tmp_path, every=0)]).fit(*digits)


def test_checkpoint_holds_only_tensors_and_plain_values(digits, tmp_path):
    X, y = digits
    checkpoint = TrainingCheckpoint(tmp_path)
    RAISClassifier(**QUICK, max_epochs=2, early_stopping=True, callbacks=[checkpoint]).fit(X, y)
    saved = torch.load(only_checkpoint(tmp_path), weights_only=True)  # refuses anything else
    assert saved["epochs"] == 2
    assert saved["early_stopping"][0]["best_model_weights_"] is not None


# ------------------------------------------------ the policy's part: a documented schema


def test_a_checkpoint_of_an_older_format_is_refused_saying_so(digits, tmp_path):
    X, y = digits
    model = ERMClassifier(**QUICK, max_epochs=1, callbacks=[TrainingCheckpoint(tmp_path)])
    model.fit(X, y)
    path = only_checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)
    assert state["format"] == _checkpoint.CHECKPOINT_FORMAT == 4
    torch.save({**state, "format": 3}, path)
    older = r"an older version .*format 3; .*reads format 4"
    with pytest.raises(ValueError, match=older) as error:
        model.fit(X, y)
    assert str(path) in str(error.value)
    assert "Delete it" in str(error.value)
    torch.save({**state, "format": 5}, path)
    with pytest.raises(ValueError, match=r"another version .*format 5"):
        model.fit(X, y)


RAIS_POLICY_KEYS = {
    "n_samples", "samples_seen", "epochs_started", "generator",  # every policy
    "samples_equivalent", "ratio", "sampler",  # importance sampling
    "norm_history", "records", "gain", "solves", "uncertainty_set", "sampling", "steps",
    "draws_with_features", "governor", "solver_report",
}  # fmt: skip
"""The keys of RAISPolicy.state_dict, as its docstring and docs/saving.md list them."""


@pytest.fixture(scope="module")
def rais_checkpoint(digits, tmp_path_factory):
    """A RAIS checkpoint past the first (PT) solve, with a solve in flight, and its fit."""
    X, y = digits
    directory = tmp_path_factory.mktemp("rais")
    params = {**QUICK, "max_epochs": 3, "history_size": 256, "uniform_fallback": 1.2}
    RAISClassifier(**params, callbacks=[TrainingCheckpoint(directory)]).fit(X, y)
    path = only_checkpoint(directory)
    return path, torch.load(path, weights_only=True), params


def test_rais_checkpoint_has_the_documented_schema(rais_checkpoint, digits):
    _, saved, params = rais_checkpoint
    policy = saved["policy"]
    assert set(policy) == RAIS_POLICY_KEYS
    n, n_features, capacity = len(digits[1]), len(FEATURE_NAMES), params["history_size"]
    shapes = {
        ("norm_history", "history"): (n, 16),
        ("norm_history", "counts"): (n,),
        ("norm_history", "features"): (n, n_features),
        ("records", "features"): (capacity, n_features),
        ("records", "norms"): (capacity,),
        ("records", "weights"): (capacity,),
        ("gain", "moments"): (3,),
        ("gain", "level"): (),
        ("sampling", "coefficients"): (2, n_features),
        ("sampling", "projections"): (2, n),
    }
    for (part, key), shape in shapes.items():
        assert tuple(policy[part][key].shape) == shape, (part, key)
    assert set(policy["records"]) == {"features", "norms", "weights", "size", "next"}
    assert set(policy["gain"]) == {"batch_size", "moments", "level", "steps"}
    assert set(policy["solves"]) == {"submitted_at", "pending"}
    assert set(policy["solves"]["pending"]) == {"set"}
    assert set(policy["uncertainty_set"]) == {
        "c", "d", "status", "solve_seconds", "solver", "iterations", "fallback_reason",
    }  # fmt: skip
    assert set(policy["governor"]) >= {"sampling", "wait", "failures"}
    assert policy["solver_report"]["solves"] > 0


@pytest.mark.parametrize(
    ("part", "key", "message"),
    [
        ("norm_history", "history", r"norm_history\.history has shape \(100, 16\)"),
        ("records", "norms", r"records\.norms has shape \(100,\)"),
        ("sampling", "projections", r"sampling\.projections has shape \(100,\)"),
    ],
)
def test_a_policy_state_of_another_shape_is_refused(
    part, key, message, rais_checkpoint, digits, tmp_path
):
    path, saved, params = rais_checkpoint
    tampered = tmp_path / path.name
    policy = {**saved["policy"], part: {**saved["policy"][part], key: torch.zeros(100)}}
    if key == "history":
        policy[part][key] = torch.zeros(100, 16, dtype=torch.float64)
    torch.save({**saved, "policy": policy}, tampered)
    model = RAISClassifier(**params, callbacks=[TrainingCheckpoint(tmp_path)])
    with pytest.raises(ValueError, match=message) as error:
        model.fit(*digits)
    assert "another training set or other parameters" in str(error.value)


def test_a_policy_state_without_its_documented_keys_is_refused(rais_checkpoint, digits, tmp_path):
    path, saved, params = rais_checkpoint
    gain = {**saved["policy"]["gain"]}
    gain["_moments"] = gain.pop("moments")  # a private attribute name, as format 3 saved
    torch.save({**saved, "policy": {**saved["policy"], "gain": gain}}, tmp_path / path.name)
    model = RAISClassifier(**params, callbacks=[TrainingCheckpoint(tmp_path)])
    with pytest.raises(ValueError, match=r"gain state holds \['_moments'"):
        model.fit(*digits)


def test_bookkeeping_states_round_trip_and_refuse_another_shape():
    cpu = torch.device("cpu")
    history = NormHistory(10, cpu)
    history.record(torch.tensor([1, 3, 3]), torch.tensor([0.5, 2.0, 1.0]), torch.arange(3), 3)
    restored = NormHistory(10, cpu)
    restored.load_state_dict(history.state_dict())
    for key, tensor in history.state_dict().items():
        torch.testing.assert_close(getattr(restored, key), tensor, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"norm_history\.history has shape \(10, 16\)"):
        NormHistory(11, cpu).load_state_dict(history.state_dict())

    records = RecentRecords(4, len(FEATURE_NAMES), cpu)
    records.add(torch.ones(6, len(FEATURE_NAMES)), torch.arange(6.0), torch.ones(6))
    ring = RecentRecords(4, len(FEATURE_NAMES), cpu)
    ring.load_state_dict(records.state_dict())
    assert all(map(np.array_equal, ring.snapshot(), records.snapshot()))
    ring.add(torch.zeros(1, len(FEATURE_NAMES)), torch.tensor([9.0]), torch.ones(1))
    records.add(torch.zeros(1, len(FEATURE_NAMES)), torch.tensor([9.0]), torch.ones(1))
    assert all(map(np.array_equal, ring.snapshot(), records.snapshot()))  # the same next slot
    with pytest.raises(ValueError, match=r"records\.features has shape \(4, 12\)"):
        RecentRecords(5, len(FEATURE_NAMES), cpu).load_state_dict(records.state_dict())

    gain = GainRatioEstimator(0.1, 4, cpu)
    gain.update(torch.rand(3, 4), torch.rand(3, 4) + 0.5, torch.rand(3))
    again = GainRatioEstimator(0.1, 4, cpu)
    again.load_state_dict(gain.state_dict())
    assert again.read() == gain.read()
    with pytest.raises(ValueError, match="minibatches of 4; this fit draws 8"):
        GainRatioEstimator(0.1, 8, cpu).load_state_dict(gain.state_dict())

    report = SolverReport()
    report.record_set("uncertified")
    report.record_failure("no optimum")
    resumed_report = SolverReport()
    resumed_report.load_state_dict(report.state_dict())
    assert resumed_report == report


def test_a_pending_solve_resumes_as_its_set_or_its_failure():
    c, d = np.array([0.5, 0.25]), np.array([1.0, 0.0])
    found = UncertaintySet(c, d, "optimal", 0.1, "newton", 3, fallback_reason="why")
    restored = UncertaintySet.from_state_dict(found.state_dict())
    assert vars(restored).keys() == vars(found).keys()
    for key, value in vars(found).items():
        np.testing.assert_array_equal(getattr(restored, key), value)
    for outcome in (found, SolverError("no optimum")):
        solves = BackgroundSolves(lambda: None, interval=2)
        future: Future = Future()
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        solves._pending, solves._submitted_at = future, 7
        resumed = BackgroundSolves(lambda: None, interval=2)
        resumed.load_state_dict(solves.state_dict())
        assert resumed.submitted_at == 7
        assert not resumed.due(8)
        assert resumed.due(9)
        collected = resumed.collect()
        if isinstance(outcome, Exception):
            with pytest.raises(SolverError, match="no optimum"):
                collected.result()
        else:
            np.testing.assert_array_equal(collected.result().c, found.c)
