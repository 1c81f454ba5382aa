"""Model selection on a real dask.distributed cluster gives exactly the serial results.

A :class:`~distributed.LocalCluster` of two worker processes with one thread
each (the set-up of the Scaling page) runs ``sk-reweight bench``'s fits and a
``GridSearchCV`` through joblib's Dask backend; both must reproduce, to the
last bit, the scores of the same work done serially in this process with one
torch thread.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sk_reweight import RAISClassifier, RGDClassifier
from sk_reweight.harness._bench import BenchSettings, run_bench
from sk_reweight.harness._methods import Budget
from sk_reweight.harness._parallel import torch_threads

from . import fake_datasets
from .custom_modules import TwoLayerNet

distributed = pytest.importorskip("distributed")

SCORES = ["accuracy", "balanced_accuracy", "log_loss", "macro_f1", "n_train", "n_test", "params"]
KEY = ["dataset", "seed", "fold", "method", "split"]


@pytest.fixture(scope="module")
def client():
    """A client of a 2-worker LocalCluster (processes, 1 thread each), closed after the module."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:500] / 16).astype(np.float32), y[:500]


def bench_results(output):
    results = pd.read_csv(output / "results.csv").sort_values(KEY, ignore_index=True)
    curves = pd.read_csv(output / "curves.csv").sort_values([*KEY[:-1], "epoch"])
    return results, curves.reset_index(drop=True)


def test_bench_on_a_cluster_scores_exactly_as_serially(client, tmp_path, monkeypatch):
    fake_datasets.install(monkeypatch)
    settings = BenchSettings(
        datasets=["iris_mixed", "breast_cancer"],
        methods=["erm", "rgd", "rais"],
        cv=2,
        seeds=1,
        tune=False,
        budget=Budget(hidden_layer_sizes=(8,), max_epochs=3, batch_size=32),
    )
    assert run_bench(settings, tmp_path / "serial") == 0
    on_cluster = BenchSettings(**{**vars(settings), "scheduler": client.scheduler.address})
    assert run_bench(on_cluster, tmp_path / "cluster") == 0
    serial, serial_curves = bench_results(tmp_path / "serial")
    cluster, cluster_curves = bench_results(tmp_path / "cluster")
    assert len(serial) == 12
    pd.testing.assert_frame_equal(serial[KEY + SCORES], cluster[KEY + SCORES])
    assert serial["log_loss"].nunique() == 12  # the fits differ: the comparison means something
    columns = [*KEY[:-1], "epoch", "epochs_equivalent", "train_loss", "gain_ratio"]
    pd.testing.assert_frame_equal(serial_curves[columns], cluster_curves[columns])
    config = (tmp_path / "cluster" / "config.json").read_text()
    assert "dask.distributed, 2 worker(s)" in config


@pytest.mark.parametrize(
    ("estimator", "grid"),
    [
        (RGDClassifier(module=TwoLayerNet, lr=1e-2, max_epochs=5), {"tau": [0.5, 3.0]}),
        (RAISClassifier(max_epochs=4, hidden_layer_sizes=(16,)), {"lr": [0.02, 0.05]}),
    ],
    ids=["rgd_custom_module", "rais"],
)
def test_grid_search_with_joblibs_dask_backend_scores_as_serially(client, digits, estimator, grid):
    X, y = digits
    estimator.set_params(device="cpu", random_state=0, batch_size=64)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    with torch_threads(1):  # the workers' thread count
        serial = GridSearchCV(estimator, grid, cv=folds).fit(X, y)
    with joblib.parallel_backend("dask"):
        parallel = GridSearchCV(estimator, grid, cv=folds, n_jobs=-1).fit(X, y)
    scores = [f"split{fold}_test_score" for fold in range(2)]
    for column in scores:
        assert np.array_equal(serial.cv_results_[column], parallel.cv_results_[column])
    assert len(np.unique(serial.cv_results_["split0_test_score"])) == 2
    assert serial.best_params_ == parallel.best_params_


def fit(estimator, X, y):
    return estimator.fit(X, y)


def test_a_rais_model_fitted_on_a_worker_comes_back_whole(client, digits):
    """Nothing of the background (PT) solver survives fit: the model pickles, on the worker
    and back, and predicts as the same fit done here."""
    X, y = digits
    rais = RAISClassifier(max_epochs=3, device="cpu", random_state=0, history_size=500)
    remote = client.submit(fit, rais, X, y).result()
    with torch_threads(1):
        local = fit(rais, X, y)
    assert remote.history_[-1, "solves"] + remote.history_[-2, "solves"] >= 1
    assert np.array_equal(remote.predict_proba(X), local.predict_proba(X))
    restored = pickle.loads(pickle.dumps(remote))
    assert np.array_equal(restored.predict_proba(X), local.predict_proba(X))


@pytest.mark.slow  # a real subprocess: 30-40 s
def test_ctrl_c_during_a_parallel_bench_keeps_the_finished_fits_and_exits_130(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) stops ``--n-jobs 2`` cleanly."""
    command = [
        *(sys.executable, "-m", "sk_reweight", "bench", "--datasets", "digits"),
        *("--methods", "erm", "--cv", "8", "--no-tune", "--n-jobs", "2"),
        *("--max-epochs", "300", "--hidden", "16", "--output", str(tmp_path)),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "results.csv").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no fit finished"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Interrupted: kept" in stdout
    assert "KeyboardInterrupt" not in stderr
    results = pd.read_csv(tmp_path / "results.csv")
    assert 1 <= len(results) < 8
    assert "interrupted after" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_a_worker_killed_during_a_bench_costs_only_its_running_fit(tmp_path, monkeypatch):
    """SIGKILL of a worker process that holds the data and runs a fit: the run completes."""
    fake_datasets.install(monkeypatch)
    killed = []
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def kill_a_busy_worker():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [worker for worker, keys in client.processing().items() if keys]
                holding = set().union(*client.who_has().values()) if client.who_has() else set()
                targets = [worker for worker in busy if worker in holding]
                if (tmp_path / "results.csv").exists() and targets:
                    pid = client.run(os.getpid, workers=targets[:1])[targets[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        settings = BenchSettings(
            datasets=["breast_cancer"],
            methods=["erm"],
            cv=6,
            tune=False,
            budget=Budget(hidden_layer_sizes=(64,), max_epochs=60),
            scheduler=cluster.scheduler_address,
        )
        status = run_bench(settings, tmp_path)
        killer.join()
    assert killed  # a worker was killed while it ran a fit
    assert status == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert sorted(results["fold"]) == list(range(6))  # every fit, once
    assert json.loads((tmp_path / "config.json").read_text())["status"] == "complete"
