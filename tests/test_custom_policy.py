"""The policy as a public extension point, used as a user would: a MinibatchPolicy subclass
trained by ReweightingClassifier, tuned, checked, checkpointed and saved."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skops.io.exceptions import UntrustedTypesFoundException
from skorch.callbacks import Callback

from sk_reweight import (
    TRUSTED_TYPES,
    ERMClassifier,
    MinibatchPolicy,
    ReweightingClassifier,
    TrainingCheckpoint,
)

from .custom_policies import DrawCountPolicy, FocalPolicy, MistakesPolicy, NoDropoutPolicy
from .settings import RecordsValidationSet, held_out_rows
from .test_checkpoint import FailsAtEpoch, only_checkpoint

QUICK = {"max_epochs": 4, "n_iter_no_change": None, "device": "cpu", "random_state": 0}


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:300], y[:300]


def same_training(model, reference, X):
    """The two fits ended with the same network and history, bit for bit."""
    assert model.loss_curve_ == reference.loss_curve_
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    for name, tensor in reference.net_.module_.state_dict().items():
        assert torch.equal(model.net_.module_.state_dict()[name], tensor), name


# ----------------------------------------------------------- parameters and search


def test_the_policys_parameters_are_nested_parameters_of_the_classifier():
    model = ReweightingClassifier(FocalPolicy(gamma=1.5), lr=0.01)
    params = model.get_params(deep=True)
    assert params["policy__gamma"] == 1.5
    assert "policy__gamma" not in model.get_params(deep=False)
    assert repr(model.policy) == "FocalPolicy(gamma=1.5)"
    assert "FocalPolicy(gamma=1.5)" in repr(model)

    copy = clone(model)
    assert copy.policy is not model.policy
    assert type(copy.policy) is FocalPolicy
    assert copy.get_params()["policy__gamma"] == 1.5

    copy.set_params(policy__gamma=3.0)
    assert copy.policy.gamma == 3.0
    assert model.policy.gamma == 1.5  # the clone's policy is its own
    with pytest.raises(ValueError, match="Invalid parameter 'alpha' for FocalPolicy"):
        copy.set_params(policy__alpha=1.0)


def test_grid_search_tunes_the_policys_parameters(data):
    X, y = data
    search = GridSearchCV(
        ReweightingClassifier(FocalPolicy(), **{**QUICK, "max_epochs": 2}),
        {"policy__gamma": [0.0, 2.0]},
        cv=StratifiedKFold(2),
    ).fit(X, y)
    assert list(search.cv_results_["param_policy__gamma"]) == [0.0, 2.0]
    best = search.best_estimator_
    assert best.policy.gamma == search.best_params_["policy__gamma"]
    assert search.estimator.policy.gamma == 2.0  # the template is left as it was
    # The candidates trained differently: gamma=2 weights the losses, gamma=0 does not.
    fits = [
        ReweightingClassifier(FocalPolicy(gamma), **{**QUICK, "max_epochs": 2}).fit(X, y)
        for gamma in (0.0, 2.0)
    ]
    assert fits[0].loss_curve_ != fits[1].loss_curve_


def test_fit_trains_a_copy_of_the_policy_and_leaves_the_one_passed_unchanged(data):
    X, y = data
    policy = MistakesPolicy(share=0.3)
    model = ReweightingClassifier(policy, **QUICK).fit(X, y)
    assert model.policy is policy
    assert vars(policy) == {"share": 0.3}  # nothing of the fit was set on it
    assert model.net_.policy is not policy
    assert type(model.net_.policy) is MistakesPolicy
    # Training ended: the fit's copy holds no per-example state and no generator.
    assert model.net_.policy.mistaken is None
    assert model.net_.policy.generator is None


def test_no_policy_trains_exactly_as_erm(data):
    X, y = data
    erm = ERMClassifier(**QUICK).fit(X, y)
    same_training(ReweightingClassifier(**QUICK).fit(X, y), erm, X)
    same_training(ReweightingClassifier(MinibatchPolicy(), **QUICK).fit(X, y), erm, X)
    # Unit weights returned by a policy change nothing either: the focal loss at gamma=0.
    same_training(ReweightingClassifier(FocalPolicy(0.0), **QUICK).fit(X, y), erm, X)


# ----------------------------------------------------------------------- the hooks


class TrainingStarts(Callback):
    """Counts the fits that started training (a class attribute: callbacks are copied)."""

    started = 0

    def on_train_begin(self, net, **kwargs):
        type(self).started += 1


def test_a_module_the_policy_refuses_fails_fit_before_training(data):
    X, y = data
    callbacks = [TrainingStarts()]
    model = ReweightingClassifier(NoDropoutPolicy(), dropout=0.5, callbacks=callbacks, **QUICK)
    before = dict(vars(model))
    started = TrainingStarts.started
    with pytest.raises(ValueError, match=r"NoDropoutPolicy .* \(dropout=0\)"):
        model.fit(X, y)
    assert TrainingStarts.started == started
    assert not hasattr(model, "net_")
    assert vars(model) == before

    # A fitted classifier keeps its network when a refit is refused.
    model.set_params(dropout=0.0).fit(X, y)
    assert TrainingStarts.started == started + 1
    net, proba = model.net_, model.predict_proba(X)
    with pytest.raises(ValueError, match="NoDropoutPolicy"):
        model.set_params(dropout=0.5).fit(X, y)
    assert TrainingStarts.started == started + 1
    assert model.net_ is net
    np.testing.assert_array_equal(model.predict_proba(X), proba)


def test_fitted_attributes_and_epoch_statistics_reach_the_classifier(data):
    X, y = data
    model = ReweightingClassifier(
        DrawCountPolicy(),
        early_stopping=True,
        validation_fraction=0.2,
        callbacks=[("validation_set", RecordsValidationSet())],
        **QUICK,
    ).fit(X, y)
    counts = model.draw_counts_
    assert counts.shape == (len(X),)
    held_out = held_out_rows(model, X)
    assert len(held_out) == 60
    assert (counts[held_out] == 0).all()
    # The base order visits every training example once per epoch.
    assert (np.delete(counts, held_out) == QUICK["max_epochs"]).all()
    assert model.history_[:, "examples_drawn"] == [len(X) - 60] * QUICK["max_epochs"]


def test_a_sampling_policy_sets_the_epochs_and_records_its_statistics(data):
    X, y = data
    model = ReweightingClassifier(MistakesPolicy(share=0.2), batch_size=32, **QUICK).fit(X, y)
    fractions = model.history_[:, "trained_fraction"]
    assert model.n_iter_ == QUICK["max_epochs"]  # progress counts epochs, short ones too
    assert fractions[0] == 1.0
    assert min(fractions[1:]) < 0.9
    batches = [int(np.ceil(round(f * len(X)) / 32)) for f in fractions]
    assert model.history_[:, "train_batch_count"] == batches


def test_a_policy_without_partial_fit_removes_it_from_the_classifier(data):
    X, y = data
    assert not hasattr(ReweightingClassifier(MistakesPolicy()), "partial_fit")
    model = ReweightingClassifier(FocalPolicy(), **QUICK)
    assert hasattr(model, "partial_fit")
    model.partial_fit(X, y, classes=np.unique(y))
    assert model.n_iter_ == 1


# ---------------------------------------------------------- checkpoints and saving


def test_a_stateful_sampling_policy_resumes_exactly_from_a_checkpoint(data, tmp_path):
    """Needs the policy's state_dict / load_state_dict, which TrainingCheckpoint saves."""
    X, y = data
    params = {**QUICK, "max_epochs": 6, "batch_size": 32, "lr_schedule": "cosine"}
    reference = ReweightingClassifier(MistakesPolicy(), **params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        ReweightingClassifier(
            MistakesPolicy(), callbacks=[checkpoint, FailsAtEpoch(3)], **params
        ).fit(X, y)
    saved = torch.load(only_checkpoint(tmp_path), weights_only=True)
    assert saved["epochs"] == 3
    assert saved["policy"]["epochs"] == 3.0
    assert saved["policy"]["mistaken"].shape == (len(X),)

    resumed = ReweightingClassifier(MistakesPolicy(), callbacks=[checkpoint], **params).fit(X, y)
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.history_[:, "trained_fraction"] == reference.history_[:, "trained_fraction"]
    assert resumed.history_[:, "lr"] == reference.history_[:, "lr"]
    same_training(resumed, reference, X)


def test_pickle_round_trip_of_a_classifier_with_a_users_policy(data):
    X, y = data
    model = ReweightingClassifier(FocalPolicy(gamma=1.0), **QUICK).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    assert type(loaded.policy) is FocalPolicy
    assert loaded.get_params() == {**model.get_params(), "policy": loaded.policy}
    assert loaded.policy.gamma == 1.0
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # The fit's policy is not saved: a refit of the loaded classifier is the same fit.
    same_training(clone(loaded).fit(X, y), model, X)


def test_skops_round_trip_trusts_the_users_policy_type(data, tmp_path):
    X, y = data
    model = ReweightingClassifier(FocalPolicy(gamma=1.0), **QUICK).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    policy_type = f"{FocalPolicy.__module__}.FocalPolicy"
    assert set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES) == {policy_type}
    with pytest.raises(UntrustedTypesFoundException, match="FocalPolicy"):
        sio.load(path, trusted=TRUSTED_TYPES)
    loaded = sio.load(path, trusted=[*TRUSTED_TYPES, policy_type])
    assert type(loaded.policy) is FocalPolicy
    assert loaded.policy.gamma == 1.0
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
