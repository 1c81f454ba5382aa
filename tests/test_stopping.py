"""When training stops (``n_iter_no_change``, ``tol``, ``max_epochs``), and the warnings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier, TrainingCheckpoint
from sk_reweight._convergence import divergence_finding

from .test_checkpoint import FailsAtEpoch

SMALL = {"device": "cpu", "random_state": 0, "batch_size": 64, "hidden_layer_sizes": (32,)}
NEVER_IMPROVES = 10.0
"""A ``tol`` no loss decrease beats: every epoch after the first counts as without improvement."""


@pytest.fixture
def no_convergence_warning():
    """Turn a ConvergenceWarning into an error inside the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        yield


def rule_stop(losses: list[float], progress: list[float], patience: float, tol: float) -> int:
    """The epoch (1-based) at which the documented rule stops, or 0 if it does not.

    Improvement: a loss below the last improving loss minus ``tol``; the stop:
    ``patience`` epochs of progress since the last improvement.
    """
    threshold, best_progress = math.inf, 0.0
    for epoch, (loss, done) in enumerate(zip(losses, progress, strict=True), start=1):
        if loss < threshold:
            threshold, best_progress = loss - tol, done
        if done - best_progress >= patience:
            return epoch
    return 0


def test_a_converged_fit_stops_by_the_rule(digits, no_convergence_warning):
    X, y = digits
    model = ERMClassifier(**SMALL, tol=0.02, n_iter_no_change=3).fit(X, y)
    assert model.n_iter_ < model.max_epochs
    assert model.history_[-1, "stop_reason"] == "no_improvement"
    epochs = list(range(1, model.n_iter_ + 1))
    assert rule_stop(model.loss_curve_, epochs, patience=3, tol=0.02) == model.n_iter_
    assert "stop_reason" not in model.history_[-2]  # recorded once, on the last epoch


def test_reaching_max_epochs_first_warns(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match=r"max_epochs=4 .*n_iter_no_change=None"):
        model = RGDClassifier(**SMALL, max_epochs=4).fit(X, y)
    assert model.n_iter_ == 4
    assert model.history_[-1, "stop_reason"] == "max_epochs"


def test_n_iter_no_change_none_runs_every_epoch_silently(digits, no_convergence_warning):
    X, y = digits
    stopping = ERMClassifier(**SMALL, max_epochs=6, tol=NEVER_IMPROVES, n_iter_no_change=2)
    assert stopping.fit(X, y).n_iter_ == 3  # the first epoch improves on nothing, then 2 misses
    every_epoch = stopping.set_params(n_iter_no_change=None).fit(X, y)
    assert every_epoch.n_iter_ == 6
    assert every_epoch.history_[-1, "stop_reason"] == "max_epochs"


def halving(epoch: float) -> float:
    """A user's schedule: the learning rate halves every epoch."""
    return 0.5**epoch


@pytest.mark.parametrize("schedule", ["cosine", "step", halving])
def test_a_schedule_runs_its_plan_to_the_end(digits, schedule, no_convergence_warning):
    """A decaying schedule is planned over max_epochs: the training-loss rule leaves it alone."""
    X, y = digits
    model = ERMClassifier(
        **SMALL, max_epochs=5, lr_schedule=schedule, tol=NEVER_IMPROVES, n_iter_no_change=2
    ).fit(X, y)
    assert model.n_iter_ == 5
    assert model.history_[-1, "stop_reason"] == "max_epochs"


def test_early_stopping_applies_under_a_schedule(digits):
    """``early_stopping=True`` is asked for explicitly: the validation rule stops a schedule."""
    X, y = digits
    model = ERMClassifier(
        **SMALL,
        max_epochs=8,
        lr_schedule="cosine",
        early_stopping=True,
        tol=NEVER_IMPROVES,
        n_iter_no_change=2,
    ).fit(X, y)
    assert model.n_iter_ == 3
    assert model.history_[-1, "stop_reason"] == "no_improvement"


def test_rais_counts_its_patience_in_epochs_equivalent(digits):
    X, y = digits
    model = RAISClassifier(
        **{**SMALL, "hidden_layer_sizes": (100,)},
        lr=0.05,
        uniform_fallback=None,  # the paper's algorithm: the gain ratio is used from epoch 2
        tol=NEVER_IMPROVES,
        n_iter_no_change=8,
    ).fit(X, y)
    progress = list(model.history_[:, "epochs_equivalent"])
    assert model.history_[-1, "stop_reason"] == "no_improvement"
    assert rule_stop(model.loss_curve_, progress, patience=8, tol=NEVER_IMPROVES) == model.n_iter_
    assert model.n_iter_ < 1 + 8  # fewer epochs than a rule counting epochs would train


def test_the_rule_survives_a_resumed_fit(digits, tmp_path):
    """A fit crashed while the rule counts epochs without improvement resumes its count."""
    X, y = digits
    params = {**SMALL, "tol": 0.05, "n_iter_no_change": 4}
    reference = ERMClassifier(**params).fit(X, y)
    assert reference.history_[-1, "stop_reason"] == "no_improvement"
    last_improvement = reference.n_iter_ - 4
    crash_at = last_improvement + 2  # two epochs into the count
    with pytest.raises(RuntimeError, match="crash"):
        ERMClassifier(
            **params, callbacks=[TrainingCheckpoint(tmp_path), FailsAtEpoch(crash_at)]
        ).fit(X, y)
    resumed = ERMClassifier(**params, callbacks=[TrainingCheckpoint(tmp_path)]).fit(X, y)
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.history_[-1, "stop_reason"] == "no_improvement"
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_partial_fit_does_not_warn_about_max_epochs(digits, no_convergence_warning):
    X, y = digits
    model = ERMClassifier(**SMALL)
    model.partial_fit(X, y, classes=np.unique(y))
    model.partial_fit(X, y)
    assert model.n_iter_ == 2


def test_n_iter_no_change_must_be_positive_or_none(digits):
    X, y = digits
    with pytest.raises(ValueError, match="n_iter_no_change"):
        ERMClassifier(**SMALL, n_iter_no_change=0).fit(X, y)


# ------------------------------------------------------------------------------ divergence


def test_sgd_with_a_huge_learning_rate_warns_that_training_diverged():
    X, y = load_breast_cancer(return_X_y=True)  # unscaled: the loss explodes but stays finite
    with pytest.warns(ConvergenceWarning, match=r"diverged.*StandardScaler.*lower lr") as caught:
        ERMClassifier(**SMALL, optimizer="sgd", lr=1e6, max_epochs=3).fit(X, y)
    assert "lr=1e+06" in str(caught[0].message)


@pytest.mark.parametrize("Classifier", [ERMClassifier, RGDClassifier])
def test_absurdly_large_inputs_warn(Classifier, breast_cancer):
    X, y = breast_cancer
    with pytest.warns(ConvergenceWarning, match=r"diverged: the training loss reached .*e\+"):
        Classifier(**SMALL, max_epochs=3, n_iter_no_change=None).fit(np.sign(X) * 1e30, y)


def test_rais_on_unscaled_features_warns_that_training_diverged():
    X, y = load_wine(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="RAISClassifier diverged.*unscaled"):
        RAISClassifier(device="cpu", random_state=0, max_epochs=3).fit(X, y)


def test_a_healthy_fit_does_not_warn(breast_cancer, no_convergence_warning):
    X, y = breast_cancer
    ERMClassifier(**SMALL, max_epochs=5, n_iter_no_change=None).fit(X, y)


@pytest.mark.parametrize(
    ("losses", "diverged"),
    [
        ([0.7, 0.4, 0.3], False),
        ([0.7, 0.4, 0.6], False),  # worse than its best, but better than where it started
        ([0.5, 0.3, 0.6], False),  # above its start, below log(2): still learnt something
        ([0.7, 0.4, 0.9], True),  # above where it started and above log(2)
        ([0.7, 7.5, 0.5], True),  # exploded on the way: more than 10 x log(2)
        ([2e27, 2e27, 2e27], True),  # flat, huge
    ],
)
def test_divergence_finding(losses, diverged):
    finding = divergence_finding(losses, list(range(1, len(losses) + 1)), n_classes=2)
    assert bool(finding) == diverged
