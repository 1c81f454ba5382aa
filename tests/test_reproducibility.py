"""The same random_state gives the same model: across processes, saves and parallel searches."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import skops.io as sio
import torch
from joblib import Parallel, delayed, parallel_config
from sklearn.model_selection import GridSearchCV

from sk_reweight import TRUSTED_TYPES, ERMClassifier, RAISClassifier, RGDClassifier
from sk_reweight._rais import _policy

CLASSIFIERS = [ERMClassifier, RGDClassifier, RAISClassifier]
QUICK = {"max_epochs": 4, "n_iter_no_change": None, "device": "cpu", "random_state": 0}

FIT_IN_A_FRESH_PROCESS = """
import sys
import numpy as np, torch
torch.set_num_threads(1)
from sklearn.datasets import load_digits
import sk_reweight
X, y = load_digits(return_X_y=True)
for name in ("ERMClassifier", "RGDClassifier", "RAISClassifier"):
    model = getattr(sk_reweight, name)(max_epochs=4, device="cpu", random_state=0)
    model.fit((X / 16).astype(np.float32), y)
    np.save(f"{sys.argv[1]}/{name}.npy", model.predict_proba(X / 16))
"""


def test_a_fresh_process_fits_the_same_networks(digits, tmp_path):
    X, y = digits
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", FIT_IN_A_FRESH_PROCESS, str(tmp_path)], check=True, env=env
    )
    for Classifier in CLASSIFIERS:
        here = Classifier(**QUICK).fit(X, y).predict_proba(X)
        np.testing.assert_array_equal(np.load(tmp_path / f"{Classifier.__name__}.npy"), here)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_fit_after_pickle_and_skops_round_trips_of_the_unfitted_and_fitted_classifier(
    Classifier, digits
):
    X, y = digits
    expected = Classifier(**QUICK).fit(X, y).predict_proba(X)
    unfitted = Classifier(**QUICK)
    for copy in (
        pickle.loads(pickle.dumps(unfitted)),
        sio.loads(sio.dumps(unfitted), trusted=TRUSTED_TYPES),
    ):
        fitted = copy.fit(X, y)
        np.testing.assert_array_equal(fitted.predict_proba(X), expected)
        for loaded in (
            pickle.loads(pickle.dumps(fitted)),
            sio.loads(sio.dumps(fitted), trusted=TRUSTED_TYPES),
        ):
            np.testing.assert_array_equal(loaded.predict_proba(X), expected)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_grid_search_with_one_or_two_workers_gives_the_same_results(Classifier, breast_cancer):
    """The workers get one torch thread, as this process has (tests/conftest.py)."""
    X, y = breast_cancer
    results = []
    for n_jobs in (1, 2):
        search = GridSearchCV(
            Classifier(**{**QUICK, "max_epochs": 3}),
            {"lr": [1e-3, 1e-2], "batch_size": [32, 64]},
            cv=2,
            scoring="neg_log_loss",
            n_jobs=n_jobs,
        )
        with parallel_config(backend="loky", inner_max_num_threads=1):
            search.fit(X, y)
        results.append(search)
    one, two = results
    for split in ("split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(one.cv_results_[split], two.cv_results_[split])
    assert one.best_params_ == two.best_params_
    np.testing.assert_array_equal(
        one.best_estimator_.predict_proba(X), two.best_estimator_.predict_proba(X)
    )


def test_rais_does_not_depend_on_how_long_its_background_solves_take(digits, monkeypatch):
    X, y = digits
    # The paper's algorithm: the speed governor ('timed') decides by the clock on purpose.
    params = {**QUICK, "max_epochs": 5, "history_size": 256, "uniform_fallback": None}
    prompt = RAISClassifier(**params).fit(X, y)
    solve = _policy.solve_uncertainty_set
    threads, delays = set(), iter(np.random.default_rng(0).uniform(0, 0.02, 10_000))

    def slow_solve(*args, **kwargs):
        threads.add(threading.current_thread().name)
        time.sleep(next(delays))  # late for its installation, or not, at random
        return solve(*args, **kwargs)

    monkeypatch.setattr(_policy, "solve_uncertainty_set", slow_solve)
    late = RAISClassifier(**params).fit(X, y)
    assert sum(late.history_[:, "solves"]) > 5
    assert any(name.startswith("rais-pt") for name in threads)  # solved in the background
    np.testing.assert_array_equal(late.predict_proba(X), prompt.predict_proba(X))
    assert late.history_[:, "train_loss"] == prompt.history_[:, "train_loss"]


@pytest.mark.parametrize("Classifier", [RGDClassifier, RAISClassifier])
def test_fits_in_parallel_threads_equal_serial_fits_and_leave_torchs_random_state(
    Classifier, digits
):
    X, y = digits[0][:600], digits[1][:600]
    params = {"device": "cpu", "max_epochs": 3, "dropout": 0.3}
    seeds = [0, 1]

    def fit(seed, barrier=None):
        if barrier is not None:
            barrier.wait()  # both threads train at the same time
        return Classifier(**params, random_state=seed).fit(X, y).predict_proba(X)

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    serial = [fit(seed) for seed in seeds]
    assert torch.equal(torch.random.get_rng_state(), before)
    barrier = threading.Barrier(len(seeds))
    threaded = Parallel(n_jobs=2, backend="threading")(
        delayed(fit)(seed, barrier) for seed in seeds
    )
    assert torch.equal(torch.random.get_rng_state(), before)  # left as found
    for in_thread, alone in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(in_thread, alone)
    assert not np.array_equal(serial[0], serial[1])
