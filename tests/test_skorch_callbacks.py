"""skorch's own callbacks, passed through ``callbacks=``, work with every estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from skorch.callbacks import (
    BatchScoring,
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    GradientNormClipping,
    LoadInitState,
    LRScheduler,
    PrintLog,
    ProgressBar,
    TrainEndCheckpoint,
)

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

from .settings import RecordsValidationSet, held_out_rows

ESTIMATORS = [ERMClassifier, RGDClassifier, RAISClassifier]
SMALL = {
    "max_epochs": 3,
    "n_iter_no_change": None,  # every epoch run
    "batch_size": 64,
    "device": "cpu",
    "random_state": 0,
}


def correct_fraction(net, X, y):
    """A scorer written against the skorch net: accuracy of its class indices."""
    return float(np.mean(net.predict(X) == y))


def scored_examples(net, X, y):
    """How many examples a scorer receives."""
    return len(y)


def print_line(text):
    """A sink for PrintLog other than ``print``, so that it prints at ``verbose=0``."""
    print(text)


def validation_split(estimator, X, y_encoded):
    """The examples that the estimator held out for early stopping."""
    held_out = held_out_rows(estimator, X)
    return X[held_out], y_encoded[held_out]


class PredictsDuringTraining(Callback):
    """Predicts with the skorch net at every epoch end, from NumPy, pandas and torch input."""

    def __init__(self, X):
        self.X = X

    def initialize(self):
        self.predictions_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        proba = net.predict_proba(self.X)
        for data in (self.X, pd.DataFrame(self.X), torch.from_numpy(self.X)):
            np.testing.assert_array_equal(net.predict(data), proba.argmax(axis=1))
        self.predictions_.append(proba)


class GradientNormRecorder(Callback):
    """Records the norm of the gradient that the optimizer is about to apply."""

    def initialize(self):
        self.norms_ = []
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        gradients = [p.grad for _, p in named_parameters if p.grad is not None]
        self.norms_.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in gradients])))


@pytest.fixture(scope="module")
def data(breast_cancer):
    X, y = breast_cancer
    return X.astype(np.float32), y


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("use_caching", [True, False])
def test_epoch_scoring_on_validation_is_the_models_own_score(estimator_class, data, use_caching):
    X, y = data
    callbacks = [
        EpochScoring("accuracy", lower_is_better=False, use_caching=use_caching),
        EpochScoring(correct_fraction, lower_is_better=False, use_caching=use_caching),
        EpochScoring("roc_auc", lower_is_better=False, use_caching=use_caching),
        ("validation_set", RecordsValidationSet()),
    ]
    model = estimator_class(early_stopping=True, callbacks=callbacks, **SMALL).fit(X, y)
    assert model.history_[-1, "valid_loss_best"]  # the final network is the last epoch's
    X_valid, y_valid = validation_split(model, X, y)
    proba = model.predict_proba(X_valid)
    for name, expected in [
        ("accuracy", model.score(X_valid, y_valid)),
        ("correct_fraction", model.score(X_valid, y_valid)),
        ("roc_auc", roc_auc_score(y_valid, proba[:, 1])),
    ]:
        scores = model.history_[:, name]
        assert len(scores) == model.n_iter_
        assert all(0 <= score <= 1 for score in scores)
        assert scores[-1] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_scoring_on_training_data_scores_the_drawn_minibatches(estimator_class, data):
    X, y = data
    callbacks = [
        EpochScoring("accuracy", on_train=True, name="train_acc", lower_is_better=False),
        EpochScoring(correct_fraction, on_train=True, name="train_fraction"),
        BatchScoring("accuracy", on_train=True, name="train_batch_acc"),
        BatchScoring("accuracy", name="valid_batch_acc", lower_is_better=False),
        EpochScoring(scored_examples, on_train=True),
        ("validation_set", RecordsValidationSet()),
    ]
    model = estimator_class(early_stopping=True, callbacks=callbacks, **SMALL).fit(X, y)
    history = model.history_
    for name in ("train_acc", "train_fraction", "train_batch_acc", "valid_batch_acc"):
        assert all(0 <= score <= 1 for score in history[:, name])
    # Scored on the predictions made at each step: the epoch's and the batches' agree.
    np.testing.assert_allclose(history[:, "train_acc"], history[:, "train_fraction"])
    np.testing.assert_allclose(history[:, "train_acc"], history[:, "train_batch_acc"])
    X_valid, y_valid = validation_split(model, X, y)
    assert history[-1, "valid_batch_acc"] == pytest.approx(model.score(X_valid, y_valid))
    # Per-batch records exist only because BatchScoring asked for them.
    train_batch_sizes = history[-1, "batches", :, "train_batch_size"]
    assert len(train_batch_sizes) == history[-1, "train_batch_count"]
    assert all(0 < size <= SMALL["batch_size"] for size in train_batch_sizes)
    assert history[-1, "scored_examples"] == sum(train_batch_sizes)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_default_loop_keeps_no_per_batch_records(estimator_class, data):
    X, y = data
    model = estimator_class(callbacks=[EpochScoring("accuracy", on_train=True)], **SMALL)
    model.fit(X, y)
    assert all(batch == {} for batch in model.history_[-1, "batches"])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_skorch_net_predicts_class_indices_during_and_after_training(estimator_class, data):
    X, y = data
    probe = PredictsDuringTraining(X[:20])
    model = estimator_class(callbacks=[("probe", probe)], **SMALL).fit(X, y)
    predictions = dict(model.net_.callbacks_)["probe"].predictions_
    assert len(predictions) == model.n_iter_
    np.testing.assert_allclose(predictions[-1], model.predict_proba(X[:20]), rtol=1e-5)
    np.testing.assert_array_equal(model.net_.predict(X[:20]), model.predict(X[:20]))
    assert set(model.net_.classes_) == {0, 1}


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_checkpoints_are_written_and_load_init_state_restores_them(
    estimator_class, data, tmp_path
):
    X, y = data
    every_epoch = Checkpoint(monitor=None, dirname=tmp_path / "every_epoch")
    best_valid = Checkpoint(dirname=tmp_path / "best_valid")  # monitors valid_loss_best
    train_end = TrainEndCheckpoint(dirname=tmp_path / "train_end")
    model = estimator_class(
        early_stopping=True, callbacks=[every_epoch, best_valid, train_end], **SMALL
    ).fit(X, y)
    for folder, prefix in [("every_epoch", ""), ("best_valid", ""), ("train_end", "train_end_")]:
        for part in ("params.pt", "optimizer.pt", "history.json"):
            assert (tmp_path / folder / f"{prefix}{part}").is_file()
    saved = torch.load(tmp_path / "train_end" / "train_end_params.pt")
    for name, parameter in model.net_.module_.state_dict().items():
        torch.testing.assert_close(saved[name], parameter)

    # A tiny learning rate leaves the loaded parameters as they were after one more epoch.
    saved = torch.load(tmp_path / "every_epoch" / "params.pt")
    resumed = estimator_class(
        early_stopping=True,
        callbacks=[LoadInitState(Checkpoint(monitor=None, dirname=tmp_path / "every_epoch"))],
        **{**SMALL, "max_epochs": 1, "lr": 1e-12},
    ).fit(X, y)
    for name, parameter in resumed.net_.module_.state_dict().items():
        torch.testing.assert_close(parameter, saved[name], atol=1e-6, rtol=0)
    assert len(resumed.history_) == model.n_iter_ + 1  # the history was loaded too


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_skorchs_early_stopping_stops_early(estimator_class, data):
    X, y = data
    never_improves = EarlyStopping(monitor="train_loss", patience=2, threshold=10.0)
    model = estimator_class(callbacks=[never_improves], **{**SMALL, "max_epochs": 20})
    model.fit(X, y)
    assert model.n_iter_ == 3


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_gradient_norm_clipping_bounds_the_gradient(estimator_class, data):
    X, y = data
    callbacks = [
        GradientNormClipping(gradient_clip_value=1e-3),
        ("recorder", GradientNormRecorder()),
    ]
    model = estimator_class(callbacks=callbacks, **SMALL).fit(X, y)
    norms = torch.stack(dict(model.net_.callbacks_)["recorder"].norms_)
    assert len(norms) == sum(model.history_[:, "train_batch_count"])
    assert norms.max() <= 1e-3 * (1 + 1e-4)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_progress_bar_and_print_log_report_the_epochs(estimator_class, data, capsys):
    X, y = data
    callbacks = [ProgressBar(), PrintLog(sink=print_line)]  # print would heed verbose=0
    model = estimator_class(callbacks=callbacks, **SMALL).fit(X, y)
    printed = capsys.readouterr()
    assert "train_loss" in printed.out
    assert len([line for line in printed.out.splitlines() if line.strip()[:1].isdigit()]) == (
        model.n_iter_
    )
    assert "it/s" in printed.err or "s/it" in printed.err


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_lr_scheduler_is_refused_for_lr_schedule(estimator_class, data):
    X, y = data
    scheduler = LRScheduler(policy="StepLR", step_size=1)
    with pytest.raises(ValueError, match="lr_schedule"):
        estimator_class(callbacks=[("scheduler", scheduler)], **SMALL).fit(X, y)
