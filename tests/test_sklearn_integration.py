"""The classifiers inside the scikit-learn ecosystem: pipelines, search, cloning, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

from .settings import FAST

CLASSIFIERS = [ERMClassifier, RGDClassifier, RAISClassifier]


def mixed_pipeline(classifier):
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), make_column_selector(dtype_include="number")),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore"),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    return make_pipeline(preprocess, classifier)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_pipeline_with_column_transformer_on_dataframe(Classifier, mixed_frame):
    X, y = mixed_frame
    X_before = X.copy()
    model = mixed_pipeline(Classifier(max_epochs=40, device="cpu", random_state=0))
    model.fit(X.iloc[:200], y.iloc[:200])
    assert set(model.predict(X.iloc[200:])) <= {"buy", "skip"}
    assert model.score(X.iloc[200:], y.iloc[200:]) > 0.8
    assert list(model[-1].classes_) == ["buy", "skip"]
    assert model[-1].n_features_in_ == 2 + 3 + 4
    assert X.equals(X_before)


def test_feature_names_recorded_from_dataframe(mixed_frame):
    X, y = mixed_frame
    numeric = X[["age", "income"]]
    model = ERMClassifier(**FAST).fit(numeric, y)
    np.testing.assert_array_equal(model.feature_names_in_, ["age", "income"])
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(numeric.to_numpy())


def test_grid_search_over_tau_and_lr_in_parallel(breast_cancer):
    X, y = breast_cancer
    search = GridSearchCV(
        RGDClassifier(max_epochs=10, device="cpu", random_state=0),
        {"tau": [0.5, 3.0], "lr": [1e-3, 1e-2]},
        cv=3,
        n_jobs=2,
    ).fit(X, y)
    # A fit that fails in a worker scores NaN (with a warning) rather than raising.
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.9
    best = search.best_estimator_.get_params()
    assert {name: best[name] for name in search.best_params_} == search.best_params_


def test_sample_weight_is_sliced_by_grid_search(breast_cancer):
    """Zero weights on a class are honoured inside every fold: it is never predicted."""
    X, y = breast_cancer
    sample_weight = np.where(y == 1, 0.0, 1.0)
    search = GridSearchCV(
        RGDClassifier(max_epochs=5, device="cpu", random_state=0), {"tau": [1.0, 2.0]}, cv=3
    ).fit(X, y, sample_weight=sample_weight)
    assert np.all(search.predict(X) == 0)


def test_sample_weight_through_pipeline(breast_cancer):
    X, y = breast_cancer
    sample_weight = np.where(y == 0, 0.1, 1.0)
    pipeline = make_pipeline(StandardScaler(), ERMClassifier(**FAST))
    pipeline.fit(X, y, ermclassifier__sample_weight=sample_weight)
    direct = ERMClassifier(**FAST).fit(
        StandardScaler().fit_transform(X), y, sample_weight=sample_weight
    )
    np.testing.assert_array_equal(
        pipeline.predict_proba(X), direct.predict_proba(StandardScaler().fit_transform(X))
    )
    unweighted = ERMClassifier(**FAST).fit(StandardScaler().fit_transform(X), y)
    down_weighted_class_proba = pipeline.predict_proba(X)[:, 0].mean()
    assert down_weighted_class_proba < unweighted.predict_proba(X)[:, 0].mean()


def test_zero_weighted_class_is_never_predicted(breast_cancer):
    X, y = breast_cancer
    model = ERMClassifier(**{**FAST, "lr": 1e-2}).fit(X, y, sample_weight=np.where(y == 0, 0, 1))
    assert np.all(model.predict(X) == 1)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_clone_and_pickle_round_trips_predict_identically(Classifier, breast_cancer):
    X, y = breast_cancer
    model = Classifier(**FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert restored.history_[-1, "train_loss"] == model.history_[-1, "train_loss"]

    cloned = clone(model)
    assert not hasattr(cloned, "net_")
    assert cloned.get_params() == model.get_params()
    np.testing.assert_array_equal(cloned.fit(X, y).predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_same_random_state_gives_identical_predictions(Classifier, digits):
    X, y = digits
    first = Classifier(**FAST).fit(X, y).predict_proba(X)
    second = Classifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = Classifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_fit_leaves_global_torch_and_numpy_random_state_alone(digits):
    X, y = digits
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()  # noqa: NPY002
    ERMClassifier(**FAST).fit(X[:200], y[:200])
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()  # noqa: NPY002


@pytest.mark.parametrize("shape", [(-1, 8, 8), (-1, 1, 8, 8)])
def test_image_input_uses_cnn(shape, digits):
    X, y = digits
    images = X.reshape(shape)
    model = RGDClassifier(max_epochs=8, device="cpu", random_state=0, batch_size=64)
    model.fit(images[:1200], y[:1200])
    assert model.input_shape_ == (1, 8, 8)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.net_.module_.modules())
    # 0.968 here; the former default (two convolutions, global average pooling) had 0.945.
    assert model.score(images[1200:], y[1200:]) > 0.95
    with pytest.raises(ValueError, match=r"examples of shape \(8, 2, 4\)"):
        model.predict(X[:5].reshape(-1, 8, 2, 4))


def test_cross_val_score_with_string_and_boolean_labels(breast_cancer):
    X, y = breast_cancer
    for labels in (np.where(y == 1, "benign", "malignant"), y.astype(bool)):
        scores = cross_val_score(ERMClassifier(**FAST), X, labels, cv=3)
        assert scores.mean() > 0.9
        model = ERMClassifier(**FAST).fit(X, labels)
        assert model.predict(X[:3]).dtype == labels.dtype


def test_multiclass_probabilities(digits):
    X, y = digits
    model = RGDClassifier(**{**FAST, "max_epochs": 30}).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), proba, rtol=1e-10)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])
    assert model.score(X, y) > 0.95


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_predictions_do_not_depend_on_the_batch_they_are_made_in(Classifier, digits):
    """Subset invariance at float32 precision (the estimator check asks for 1e-7)."""
    X, y = digits
    model = Classifier(max_epochs=5, device="cpu", random_state=0).fit(X, y)
    whole = model.predict_proba(X)
    in_pieces = np.vstack([model.predict_proba(X[start : start + 7]) for start in range(0, 70, 7)])
    np.testing.assert_allclose(in_pieces, whole[:70], rtol=1e-5, atol=1e-6)
