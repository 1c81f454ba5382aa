"""The benchmark's method registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.harness._methods import (
    METHODS,
    Budget,
    PlainSkorchClassifier,
    chosen_parameters,
    fitted_classifier,
    make_model,
    quiet_fit,
)

from .fake_datasets import load_dataset

BUDGET = Budget(hidden_layer_sizes=(16,), max_epochs=2, lr_grid=(1e-3, 1e-2), tau_grid=(1.0,))


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_fits_mixed_tabular_data_and_images(name):
    for dataset in ("iris_mixed", "digits_images"):
        data = load_dataset(dataset)
        y = np.unique(np.asarray(data.target), return_inverse=True)[1]
        preprocessor = data.make_preprocessor() if data.kind == "tabular" else None
        model = make_model(
            name,
            data.kind,
            3 if dataset == "iris_mixed" else 10,
            preprocessor,
            BUDGET,
            seed=0,
            tune=False,
        )
        assert isinstance(model, Pipeline)
        quiet_fit(model, data.data, y)
        proba = model.predict_proba(data.data)
        assert proba.shape == (len(y), len(np.unique(y)))
        assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_same_network_and_budget_for_the_networks():
    erm = make_model("erm", "tabular", 2, None, BUDGET, seed=3, tune=False)[-1]
    rgd = make_model("rgd", "tabular", 2, None, BUDGET, seed=3, tune=False)[-1]
    skorch = make_model("skorch", "tabular", 2, None, BUDGET, seed=3, tune=False)[-1]
    mlp = make_model("mlp", "tabular", 2, None, BUDGET, seed=3, tune=False)[-1]
    erm_sgd = make_model("erm_sgd", "tabular", 2, None, BUDGET, seed=3, tune=False)[-1]
    assert isinstance(erm, ERMClassifier)
    assert isinstance(rgd, RGDClassifier)
    assert isinstance(skorch, PlainSkorchClassifier)
    for model in (erm, rgd, erm_sgd):
        assert (model.hidden_layer_sizes, model.max_epochs) == ((16,), 2)
        assert model.n_iter_no_change is None  # a fixed budget: no stopping rule
        assert model.random_state == 3
    assert (erm.optimizer, erm.lr) == ("adam", 1e-3)
    assert (erm_sgd.optimizer, erm_sgd.lr, erm_sgd.momentum) == ("sgd", BUDGET.sgd_lr, 0.9)
    assert skorch.module__hidden_layer_sizes == (16,)
    assert skorch.max_epochs == 2
    assert (mlp.hidden_layer_sizes, mlp.max_iter, mlp.random_state) == ((16,), 2, 3)


def test_images_are_flattened_only_for_models_without_convolutions():
    images = load_dataset("digits_images")
    X, y = images.data[:200], images.target[:200]
    mlp = quiet_fit(make_model("mlp", "image", 10, None, BUDGET, seed=0, tune=False), X, y)
    assert mlp[-1].n_features_in_ == 64
    erm = make_model("erm", "image", 10, None, BUDGET, seed=0, tune=False).fit(X, y)
    assert erm[-1].input_shape_ == (1, 8, 8)


def test_tuning_searches_the_grid_on_an_inner_split_and_reports_the_choice(breast_cancer):
    X, y = breast_cancer
    model = make_model("rgd", "tabular", 2, None, BUDGET, seed=0, tune=True)
    assert isinstance(model, GridSearchCV)
    assert model.param_grid == {"classifier__lr": [1e-3, 1e-2], "classifier__tau": [1.0]}
    assert model.cv.get_n_splits() == 1
    model.fit(X, y)
    params = chosen_parameters(model)
    assert set(params) == {"lr", "tau"}
    assert params["lr"] in (1e-3, 1e-2)
    assert fitted_classifier(model).lr == params["lr"]
    # Untuned methods and runs: no search.
    assert not isinstance(
        make_model("hgb", "tabular", 2, None, BUDGET, 0, tune=True), GridSearchCV
    )
    assert chosen_parameters(make_model("erm", "tabular", 2, None, BUDGET, 0, tune=False)) == {}
