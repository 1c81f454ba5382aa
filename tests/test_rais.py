"""RAISClassifier: training behaviour, diagnostics and the oracle."""

from __future__ import annotations

import functools
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from torch import nn
from torch.nn import functional

from sk_reweight import RAISClassifier
from sk_reweight._rais import _policy
from sk_reweight._rais._solver_report import SolverReport, solver_message
from sk_reweight._rais._uncertainty import SolverError, robust_scores

from .settings import FAST

RAIS = {**FAST, "lr": 0.05, "batch_size": 64, "uniform_fallback": None}  # the paper's algorithm


@pytest.fixture(scope="module")
def fitted_rais(digits):
    X, y = digits
    return RAISClassifier(**{**RAIS, "max_epochs": 8}).fit(X, y)


def test_history_records_rais_diagnostics(fitted_rais):
    history = fitted_rais.history_
    equivalent = history[:, "epochs_equivalent"]
    assert np.all(np.diff(equivalent) > 0)
    assert all(e >= epoch for e, epoch in zip(equivalent, history[:, "epoch"], strict=True))
    # The estimate is clipped to [1, batch_size]: 1 while sampling is uniform (no solve yet),
    # above it once RAIS samples.
    gain_ratios = history[:, "gain_ratio"]
    assert gain_ratios[:2] == [1.0, 1.0]
    assert gain_ratios[-1] > 1.5
    statuses = history[:, "solve_status"]
    # No solve before |D| = n draws after the first epoch have been recorded.
    assert statuses[:2] == ["none", "none"]
    assert statuses[2] == "optimal"
    assert history[0, "effective_sample_size"] == 1.0
    assert all(0 < ess <= 1 for ess in history[:, "effective_sample_size"])
    assert all(0 <= f <= 1 for f in history[:, "outlier_fraction"])
    assert sum(history[:, "solve_seconds"]) > 0


def test_training_ends_when_epochs_equivalent_reach_max_epochs(fitted_rais, digits):
    history = fitted_rais.history_
    assert len(history) == 8 or history[-1, "epochs_equivalent"] >= 8
    assert history[-2, "epochs_equivalent"] < 8
    # ... at the step that completes the schedule, not at the end of that epoch.
    steps_per_epoch = -(-len(digits[0]) // RAIS["batch_size"])
    assert history[-1, "train_batch_count"] < steps_per_epoch
    assert history[-1, "epochs_equivalent"] - 8 < 64 * RAIS["batch_size"] / len(digits[0])


class CheckScores(Callback):
    """Compare the incrementally maintained scores with Proposition 4.1 from scratch.

    ``checked`` counts the epochs compared. The estimator trains a deep copy
    of the callback: read it from ``net_`` with :func:`epochs_checked`.
    """

    def on_train_begin(self, net, **kwargs):
        self.checked = 0

    def on_epoch_end(self, net, **kwargs):
        policy = net.policy
        if policy.uncertainty_set is None:
            return
        incremental = policy.probabilities()
        found = policy.uncertainty_set
        c, d = (torch.as_tensor(v, dtype=torch.float32) for v in (found.c, found.d))
        features = policy.norm_history.features
        direct = robust_scores(features @ c, features @ d)
        torch.testing.assert_close(incremental, direct / direct.sum())
        self.checked += 1


def epochs_checked(model: RAISClassifier) -> int:
    return dict(model.net_.callbacks_)["CheckScores"].checked


def test_incremental_scores_equal_the_closed_form(digits):
    X, y = digits
    model = RAISClassifier(**{**RAIS, "max_epochs": 4, "callbacks": [CheckScores()]}).fit(X, y)
    assert epochs_checked(model) >= 2


def test_uncertainty_set_and_sampling_probabilities(fitted_rais, digits):
    X, y = digits
    found = fitted_rais.uncertainty_set_
    # Newton's iterates are never clipped (cvxpy's are), so c, d >= 0 is its own result.
    assert (found.status, found.solver) == ("optimal", "newton")
    assert found.c.shape == found.d.shape == (len(fitted_rais.feature_names_uncertainty_),)
    assert (found.c >= 0).all()
    assert (found.d >= 0).all()
    probabilities = fitted_rais.sampling_probabilities()
    assert probabilities.shape == (len(X),)
    assert probabilities.sum() == pytest.approx(1.0)
    assert (probabilities > 0).all()
    # RAIS prioritises the examples the network gets wrong or barely right.
    confidence = fitted_rais.predict_proba(X)[np.arange(len(y)), y]
    hard, easy = confidence < np.quantile(confidence, 0.1), confidence > 0.99
    assert probabilities[hard].mean() > 2 * probabilities[easy].mean()


def test_sampling_probabilities_are_zero_on_the_validation_split(digits):
    X, y = digits
    model = RAISClassifier(**{**RAIS, "max_epochs": 3, "early_stopping": True}).fit(X, y)
    probabilities = model.sampling_probabilities()
    n_valid = int(np.ceil(0.1 * len(X)))
    assert (probabilities == 0).sum() == n_valid
    assert probabilities.sum() == pytest.approx(1.0)


def test_without_lr_scaling_epochs_equivalent_are_epochs(breast_cancer):
    model = RAISClassifier(**{**RAIS, "lr_scaling": False, "max_epochs": 4}).fit(*breast_cancer)
    history = model.history_
    np.testing.assert_allclose(history[:, "epochs_equivalent"], [1, 2, 3, 4])
    assert history[:, "lr"] == [RAIS["lr"]] * 4


@pytest.mark.parametrize("grad_norm", ["logits", "last_layer", "exact"])
def test_every_gradient_norm_trains(grad_norm, digits):
    X, y = digits
    model = RAISClassifier(**{**RAIS, "grad_norm": grad_norm, "max_epochs": 4}).fit(X, y)
    assert model.score(X, y) > 0.85
    assert model.history_[-1, "train_loss"] < model.history_[0, "train_loss"]


def test_same_random_state_is_reproducible_despite_the_background_solver(digits):
    X, y = digits
    first, second = (RAISClassifier(**{**RAIS, "max_epochs": 5}).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(first.uncertainty_set_.c, second.uncertainty_set_.c)


def test_scaling_all_sample_weights_changes_nothing(breast_cancer):
    X, y = breast_cancer
    plain = RAISClassifier(**RAIS).fit(X, y)
    # A power of two scales every intermediate value exactly: training must be identical.
    scaled = RAISClassifier(**RAIS).fit(X, y, sample_weight=np.full(len(y), 4.0))
    np.testing.assert_array_equal(plain.predict_proba(X), scaled.predict_proba(X))


def test_zero_weighted_class_is_never_predicted(breast_cancer):
    X, y = breast_cancer
    model = RAISClassifier(**RAIS).fit(X, y, sample_weight=(y == 1).astype(float))
    assert (model.predict(X) == 1).all()


def test_solver_failure_warns_and_keeps_training(digits, monkeypatch):
    def failing(*args, **kwargs):
        raise SolverError("CLARABEL returned status 'infeasible' for (PT)")

    monkeypatch.setattr(_policy, "solve_uncertainty_set", failing)
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="keeping the previous sampling"):
        model = RAISClassifier(**{**RAIS, "max_epochs": 3}).fit(X, y)
    assert model.uncertainty_set_ is None
    statuses = model.history_[:, "solve_status"]
    assert statuses[2] == "failed"
    assert "optimal" not in statuses
    # Uniform sampling throughout: the distribution stays uniform.
    np.testing.assert_allclose(model.sampling_probabilities(), 1 / len(X))
    assert model.score(X, y) > 0.8


def pt_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The messages of the caught warnings about (PT), ours and any of cvxpy's."""
    messages = [str(w.message) for w in caught]
    return [message for message in messages if "(PT)" in message or "solver" in message]


def test_rais_on_unscaled_wine_names_the_solver_that_ran_and_suggests_scaling():
    X, y = load_wine(return_X_y=True)  # proline in the hundreds to thousands
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # On this seed the first (PT) solve (epoch 3) is one Newton cannot certify.
        RAISClassifier(batch_size=8, max_epochs=4, random_state=15, device="cpu").fit(X, y)
    (message,) = pt_warnings(caught)
    assert message.startswith("RAISClassifier's (PT) solves: 1 of 2 fell back from the Newton")
    assert "certified no optimum in 50 iterations" in message
    assert "to cvxpy's CLARABEL" in message
    assert "StandardScaler in a Pipeline" in message
    assert "lower lr" in message
    assert "largest root mean square of a feature is 810" in message
    assert not [w for w in caught if w.category is UserWarning]


@pytest.mark.slow
def test_an_inaccurate_cvxpy_fallback_is_told_in_our_words_only():
    """The issue's case: cvxpy's 'optimal_inaccurate' after an uncertified Newton solve."""
    X, y = load_wine(return_X_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = RAISClassifier(
            max_epochs=26, n_iter_no_change=None, random_state=0, device="cpu"
        ).fit(X, y)
    assert model.history_[:, "solve_status"].count("failed") == 1
    (message,) = pt_warnings(caught)
    assert "1 of 24 failed, keeping the previous sampling distribution" in message
    assert "the Newton solver of (PT) certified no optimum" in message
    assert "its cvxpy fallback failed too: cvxpy's CLARABEL returned status " in message
    assert "'optimal_inaccurate'" in message
    assert "StandardScaler" in message
    assert not any("Solution may be inaccurate" in str(w.message) for w in caught)


def test_solver_message_names_the_requested_solver_and_advises_on_scaled_inputs():
    report = SolverReport()
    report.record_set(None)
    for _ in range(2):
        report.record_failure("cvxpy's SCS returned status 'optimal_inaccurate' for (PT)")
    message = solver_message(report, "SCS", feature_scale=1.0)
    assert message == (
        "RAISClassifier's (PT) solves: 2 of 3 failed, keeping the previous sampling "
        "distribution (the first: cvxpy's SCS returned status 'optimal_inaccurate' for (PT)). "
        "This happens mostly when training is unstable: lower lr."
    )
    assert "unscaled" in solver_message(report, "SCS", feature_scale=255.0)


def exact_norms(module, X, y):
    norms = []
    module.eval()
    for i in range(len(X)):
        module.zero_grad()
        functional.cross_entropy(module(X[i : i + 1]), y[i : i + 1]).backward()
        norms.append(torch.cat([p.grad.flatten() for p in module.parameters()]).norm())
    return torch.stack(norms)


def test_oracle_samples_proportionally_to_exact_gradient_norms(breast_cancer):
    X, y = breast_cancer
    X, y = X[:120], y[:120]
    model = RAISClassifier(
        **{
            **RAIS,
            "oracle": True,
            "grad_norm": "exact",
            "max_epochs": 3,
            "hidden_layer_sizes": (8,),
        }
    ).fit(X, y)
    norms = exact_norms(
        model.net_.module_, torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    ).numpy()
    np.testing.assert_allclose(model.sampling_probabilities(), norms / norms.sum(), rtol=1e-4)
    assert model.uncertainty_set_ is None
    # Sampling by unequal norms gains from the first step: above the clip's floor of 1.
    assert all(r > 1 for r in model.history_[:, "gain_ratio"])


def test_default_cnn_trains_with_weighted_batch_norm(digits):
    X, y = digits
    images = X.reshape(-1, 8, 8)
    model = RAISClassifier(**{**RAIS, "max_epochs": 3, "lr": 0.05}).fit(images, y)
    assert model.score(images, y) > 0.5
    batch_norm = model.net_.module_.features[1]
    assert torch.isfinite(batch_norm.running_var).all()
    assert model.history_[-1, "effective_sample_size"] < 1


def test_last_layer_norm_needs_linear_logits(breast_cancer):
    def factory(input_shape, n_classes):
        return nn.Sequential(nn.Linear(input_shape[0], n_classes), nn.LogSoftmax(dim=1))

    class TrainingStarted(Callback):
        def on_train_begin(self, net, **kwargs):
            raise AssertionError("the module should have been refused before training")

    # Refused by the policy's check_module, before the training data are copied or split.
    refused = RAISClassifier(**{**RAIS, "module": factory}, callbacks=[TrainingStarted()])
    with pytest.raises(ValueError, match=r"last nn\.Linear .*transforms it"):
        refused.fit(*breast_cancer)
    model = RAISClassifier(**{**RAIS, "module": factory, "grad_norm": "logits"})
    assert model.fit(*breast_cancer).score(*breast_cancer) > 0.9


def test_pickled_model_carries_no_training_data(fitted_rais, digits):
    policy = fitted_rais.net_.policy
    assert policy.dataset is None
    assert policy.records is None
    assert policy.norm_history is None
    restored = pickle.loads(pickle.dumps(fitted_rais))
    assert not hasattr(restored.net_.policy, "norm_history")  # a policy is not saved
    X, _ = digits
    np.testing.assert_array_equal(restored.predict(X), fitted_rais.predict(X))


def test_grid_search_over_rais_parameters(breast_cancer):
    search = GridSearchCV(
        RAISClassifier(**{**RAIS, "max_epochs": 3}),
        {"grad_norm": ["logits", "last_layer"], "lr": [0.01, 0.05]},
        cv=2,
    ).fit(*breast_cancer)
    assert search.best_score_ > 0.9
    assert set(search.best_params_) == {"grad_norm", "lr"}


def test_cvxpy_solver_gives_the_newton_solvers_sets(digits):
    X, y = digits
    params = {**RAIS, "max_epochs": 4}
    newton = RAISClassifier(**params).fit(X, y)
    reference = RAISClassifier(**params, solver="cvxpy").fit(X, y)
    assert newton.uncertainty_set_.solver == "newton"
    assert reference.uncertainty_set_.solver == "cvxpy"
    # Same draws until the first solve; the sets then differ only by solver tolerance.
    first = next(epoch for epoch in newton.history_ if epoch["solves"])
    assert first["epoch"] == 3
    assert sum(newton.history_[:, "solver_fallbacks"]) == 0
    fast, slow = newton.sampling_probabilities(), reference.sampling_probabilities()
    uniform = np.full(len(fast), 1 / len(fast))
    assert 0.5 * np.abs(fast - uniform).sum() > 0.1  # a distribution worth comparing
    # The solvers agree so closely that the draws, and so the whole fits, coincide.
    assert 0.5 * np.abs(fast - slow).sum() < 1e-4


def test_uncertified_newton_solves_fall_back_to_cvxpy_and_are_counted(digits, monkeypatch):
    one_iteration = functools.partial(_policy.solve_uncertainty_set, max_newton_iterations=1)
    monkeypatch.setattr(_policy, "solve_uncertainty_set", one_iteration)
    X, y = digits
    with pytest.warns(ConvergenceWarning) as caught:
        model = RAISClassifier(**{**RAIS, "max_epochs": 6}).fit(X, y)
    solves, fallbacks = model.history_[:, "solves"], model.history_[:, "solver_fallbacks"]
    (message,) = [str(w.message) for w in caught if "(PT)" in str(w.message)]
    # Every solve fell back, the one installed at the end of training (not in history_) too.
    assert re.search(r"solves: (\d+) of \1 fell back from the Newton solver", message)
    assert "to cvxpy's CLARABEL" in message
    assert "in 1 iterations" in message
    assert "StandardScaler" not in message  # the digits are scaled to [0, 1]
    assert sum(solves) >= 2
    assert fallbacks == solves
    assert model.uncertainty_set_.solver == "cvxpy"
    assert "iteration" in model.uncertainty_set_.fallback_reason


@pytest.mark.parametrize("refresh_interval", [1, 5])
def test_every_refresh_interval_keeps_scores_exact_at_epoch_ends(refresh_interval, digits):
    X, y = digits
    params = {**RAIS, "max_epochs": 4, "refresh_interval": refresh_interval}
    model = RAISClassifier(**params, callbacks=[CheckScores()]).fit(X, y)
    assert epochs_checked(model) >= 2
    assert model.score(X, y) > 0.9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"solver": "clarabel"}, "solver"),
        ({"solver": "cvxpy", "cvxpy_solver": "OSQP"}, "cvxpy_solver"),
        ({"cvxpy_solver": "NOT_A_SOLVER"}, "cvxpy_solver"),
        ({"solver": "cvxpy", "cvxpy_solver": "MOSEK"}, "cvxpy_solver.*not an installed"),
        ({"refresh_interval": 0}, "refresh_interval"),
        ({"grad_norm": "full"}, "grad_norm"),
        ({"history_size": 0}, "history_size"),
        ({"gain_ema": 0.0}, "gain_ema"),
        ({"outlier_threshold": -1.0}, "outlier_threshold"),
    ],
)
def test_bad_rais_parameters(params, message, breast_cancer):
    with pytest.raises(ValueError, match=message):
        RAISClassifier(**{**RAIS, **params}).fit(*breast_cancer)
