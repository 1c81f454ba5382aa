"""``partial_fit``: scikit-learn's incremental learning, one pass over each chunk."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

from .test_interrupts import CtrlCAtStep, previous_handler  # noqa: F401 (a fixture)

SETTINGS = {
    "device": "cpu",
    "random_state": 0,
    "batch_size": 64,
    "hidden_layer_sizes": (32,),
    "n_iter_no_change": None,  # fits of a few epochs, every one of them run
}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def test_rais_does_not_offer_partial_fit():
    assert not hasattr(RAISClassifier(), "partial_fit")
    assert hasattr(ERMClassifier(), "partial_fit")
    assert hasattr(RGDClassifier(), "partial_fit")


@pytest.mark.parametrize("estimator", [ERMClassifier, RGDClassifier])
def test_one_call_is_one_epoch_of_fit_and_calls_continue_like_warm_fits(estimator, digits):
    X, y = digits
    chunk = estimator(**SETTINGS, max_epochs=7).partial_fit(X, y, classes=np.unique(y))
    once = estimator(**SETTINGS, max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(chunk.predict_proba(X), once.predict_proba(X))
    chunk.partial_fit(X, y)
    twice = estimator(**SETTINGS, max_epochs=1, warm_start=True).fit(X, y).fit(X, y)
    np.testing.assert_array_equal(chunk.predict_proba(X), twice.predict_proba(X))
    assert chunk.n_iter_ == 2
    assert chunk.max_epochs == 7  # the parameters are left as they were
    assert not chunk.warm_start


def test_chunks_one_pass_each_at_a_constant_learning_rate(digits):
    X, y = digits
    classes = np.unique(y)
    model = RGDClassifier(**SETTINGS, lr=1e-2, lr_schedule="cosine", early_stopping=True)
    chunks = np.array_split(np.arange(len(y)), 6)
    for rows in chunks:
        model.partial_fit(X[rows], y[rows], classes=classes)
    assert model.n_iter_ == 6
    batches = [-(-len(rows) // SETTINGS["batch_size"]) for rows in chunks]
    assert list(model.history_[:, "train_batch_count"]) == batches
    assert list(model.history_[:, "lr"]) == [1e-2] * 6
    assert model.validation_loss_curve_ is None
    for _ in range(3):  # the data stream again
        for rows in chunks:
            model.partial_fit(X[rows], y[rows])
    assert model.n_iter_ == 24
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 5
    assert model.score(X, y) > 0.9


def test_a_chunk_may_lack_classes_but_may_not_bring_new_ones(digits):
    X, y = digits
    low = y < 5
    model = ERMClassifier(**SETTINGS).partial_fit(X[low], y[low], classes=np.arange(10))
    assert model.classes_.tolist() == list(range(10))
    assert model.predict_proba(X).shape == (len(y), 10)
    model.partial_fit(X[~low], y[~low])
    with pytest.raises(ValueError, match="new classes"):
        model.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="not the same as on the first call"):
        model.partial_fit(X, y, classes=np.arange(11))
    assert model.n_iter_ == 2


def test_partial_fit_refuses_what_it_cannot_do(digits):
    X, y = digits
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        ERMClassifier(**SETTINGS).partial_fit(X, y)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported"):
        ERMClassifier(**SETTINGS, class_weight="balanced").partial_fit(X, y, classes=range(10))
    with pytest.raises(ValueError, match="features"):
        ERMClassifier(**SETTINGS).partial_fit(X, y, classes=range(10)).partial_fit(X[:, 1:], y)


def test_ctrl_c_in_partial_fit_leaves_the_classifier_as_it_was(digits, previous_handler):  # noqa: F811
    X, y = digits
    steps = []
    model = ERMClassifier(**SETTINGS, callbacks=[CtrlCAtStep(steps, step=3)])
    with pytest.raises(KeyboardInterrupt):
        model.partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    model.set_params(callbacks=None).partial_fit(X, y, classes=np.unique(y))
    proba = model.predict_proba(X)
    model.net_.callbacks_.append(("ctrl_c", CtrlCAtStep(steps, step=len(steps) + 2)))
    with pytest.raises(KeyboardInterrupt):
        model.partial_fit(X, y)
    assert model.n_iter_ == 1
    np.testing.assert_array_equal(model.predict_proba(X), proba)


def test_partial_fit_continues_a_model_fitted_with_early_stopping(digits):
    X, y = digits
    model = RGDClassifier(**SETTINGS, max_epochs=3, early_stopping=True).fit(X, y)
    model.partial_fit(X, y)
    assert model.n_iter_ == 4
    assert "valid_loss" not in model.history_[-1]
    assert model.early_stopping
    rule = dict(model.net_.callbacks_)["stopping_rule"]
    assert (rule.monitor, rule.patience) == ("train_loss", None)  # the call's: it stops nothing
    model.set_params(warm_start=True, max_epochs=2, n_iter_no_change=5).fit(X, y)
    assert (rule.monitor, rule.patience, rule.load_best) == ("valid_loss", 5, True)
    assert "valid_loss" in model.history_[-1]


def test_an_interrupted_partial_fit_changes_nothing_that_follows(digits, previous_handler):  # noqa: F811
    """The restored classifier (weights, optimizer state, stopping rule, history) trains on
    exactly as if the interrupted call had never happened."""
    X, y = digits
    chunks = [(X[i::3], y[i::3]) for i in range(3)]
    reference = RGDClassifier(**SETTINGS)
    for chunk in chunks:
        reference.partial_fit(*chunk, classes=np.unique(y))
    steps = []
    model = RGDClassifier(**SETTINGS)
    model.partial_fit(*chunks[0], classes=np.unique(y))
    model.partial_fit(*chunks[1])
    model.net_.callbacks_.append(("ctrl_c", CtrlCAtStep(steps, step=2)))
    with pytest.raises(KeyboardInterrupt):
        model.partial_fit(*chunks[2])
    assert [name for name, _ in model.net_.callbacks_][-1] == "ctrl_c"
    model.net_.callbacks_.pop()
    model.partial_fit(*chunks[2])
    assert model.n_iter_ == reference.n_iter_ == 3
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert model.loss_curve_ == reference.loss_curve_
