"""Bad input fails before training with a clear ValueError or TypeError; input is never mutated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from sk_reweight import ERMClassifier, RGDClassifier

from .settings import FAST


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.arange(40) % 2
    return X, y


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_features(data, bad_value):
    X, y = data
    X = X.copy()
    X[3, 1] = bad_value
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        ERMClassifier(**FAST).fit(X, y)
    fitted = ERMClassifier(**FAST).fit(*data)
    with pytest.raises(ValueError, match="Input X contains"):
        fitted.predict(X)


def test_wrong_feature_count_at_predict(data):
    model = ERMClassifier(**FAST).fit(*data)
    with pytest.raises(ValueError, match="X has 4 features, but ERMClassifier is expecting 3"):
        model.predict(np.zeros((2, 4)))


def test_single_class(data):
    X, _ = data
    with pytest.raises(ValueError, match=r"at least 2 classes.*only one class: 'a'"):
        RGDClassifier(**FAST).fit(X, np.full(len(X), "a"))


def test_continuous_target(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type"):
        ERMClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))


@pytest.mark.parametrize(
    ("sample_weight", "message"),
    [
        (np.ones(39), r"sample_weight.shape == \(39,\), expected \(40,\)"),
        (np.r_[-1.0, np.ones(39)], "Negative values in data passed to `sample_weight`"),
        (np.zeros(40), "Sample weights must contain at least one non-zero number"),
        (np.r_[np.nan, np.ones(39)], "Input sample_weight contains NaN"),
    ],
)
def test_bad_sample_weight(data, sample_weight, message):
    with pytest.raises(ValueError, match=message):
        RGDClassifier(**FAST).fit(*data, sample_weight=sample_weight)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"optimizer": "rmsprop"}, ValueError, "'optimizer' parameter .* must be a str among"),
        ({"optimizer": dict}, TypeError, "subclass of torch.optim.Optimizer"),
        ({"lr": 0}, ValueError, "'lr' parameter .* must be a float in the range \\(0.0, inf\\)"),
        ({"tau": -1.0}, ValueError, "'tau' parameter"),
        ({"weighting": "softmax"}, ValueError, "'weighting' parameter"),
        ({"lr_schedule": "linear"}, ValueError, "'lr_schedule' parameter"),
        ({"class_weight": "uniform"}, ValueError, "'class_weight' parameter"),
        ({"batch_size": 0}, ValueError, "'batch_size' parameter"),
        ({"dropout": 1.0}, ValueError, "'dropout' parameter"),
        ({"validation_fraction": 1.0}, ValueError, "'validation_fraction' parameter"),
        ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes must contain positive"),
        ({"device": "tpu"}, ValueError, "device='tpu' is not a valid torch device"),
        ({"class_weight": {7: 2.0}}, ValueError, "not in class"),
        ({"class_weight": {0: 0.0, 1: 0.0}}, ValueError, "must have a positive sum"),
    ],
)
def test_bad_parameters_fail_before_training(data, params, error, message):
    model = RGDClassifier(**{**FAST, **params})
    with pytest.raises(error, match=message):
        model.fit(*data)
    assert not hasattr(model, "net_")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(data):
    with pytest.raises(ValueError, match="CUDA is not available"):
        ERMClassifier(**{**FAST, "device": "cuda"}).fit(*data)


def test_one_dimensional_X(data):
    _, y = data
    with pytest.raises(ValueError, match=r"Reshape your data"):
        ERMClassifier(**FAST).fit(np.arange(40.0), y)


def test_sparse_X_is_rejected_with_type_error(data):
    X, y = data
    with pytest.raises(TypeError, match="Sparse data was passed"):
        ERMClassifier(**FAST).fit(sparse.csr_matrix(X), y)


def test_module_with_wrong_output_width(data):
    with pytest.raises(
        ValueError, match=r"logits of shape \(n_samples, n_classes\) = \(2, 2\); got \(2, 5\)"
    ):
        ERMClassifier(**{**FAST, "module": torch.nn.Linear(3, 5)}).fit(*data)


def test_module_that_fails_on_the_input(data):
    with pytest.raises(ValueError, match="module failed on input of shape"):
        ERMClassifier(**{**FAST, "module": torch.nn.Linear(7, 2)}).fit(*data)


def test_module_factory_must_return_a_module(data):
    with pytest.raises(TypeError, match=r"must return a torch\.nn\.Module; got str"):
        ERMClassifier(**{**FAST, "module": lambda shape, n_classes: "mlp"}).fit(*data)


def test_caller_arrays_are_not_mutated(data):
    X, y = data
    X32 = X.astype(np.float32)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    sample_weight = np.linspace(0.5, 2, len(y))
    copies = [X32.copy(), y.copy(), sample_weight.copy(), frame.copy()]
    model = RGDClassifier(**{**FAST, "class_weight": "balanced"})
    model.fit(X32, y, sample_weight=sample_weight)
    model.predict_proba(X32)
    model.fit(frame, y, sample_weight=sample_weight)
    np.testing.assert_array_equal(X32, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(sample_weight, copies[2])
    assert frame.equals(copies[3])


def test_module_instance_is_not_mutated(data):
    module = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in module.parameters()]
    model = ERMClassifier(**{**FAST, "module": module}).fit(*data)
    for parameter, original in zip(module.parameters(), before, strict=True):
        torch.testing.assert_close(parameter.detach(), original)
    assert model.net_.module_ is not module


def test_training_tensors_never_share_the_callers_memory_but_take_over_a_fresh_copy(data):
    """``private_tensor``: a float64 input's validated float32 copy becomes the training tensor
    as it is (no second copy); the caller's own float32 array, or a view of a DataFrame, is
    copied."""
    from sklearn.utils.validation import validate_data

    from sk_reweight._base import private_tensor

    X, _ = data
    model = ERMClassifier()
    float64 = np.asarray(X, dtype=np.float64)
    float32 = np.ascontiguousarray(X, dtype=np.float32)
    frame = pd.DataFrame(float32)
    for given in (float64, float32, frame, float32[::2], float64.tolist()):
        validated = validate_data(model, given, dtype=np.float32)
        tensor = private_tensor(validated, given)
        caller = given.to_numpy() if isinstance(given, pd.DataFrame) else np.asarray(given)
        assert not np.shares_memory(tensor.numpy(), caller)
        np.testing.assert_array_equal(tensor.numpy(), validated)
        fresh = given is float64 or isinstance(given, list)
        assert np.shares_memory(tensor.numpy(), validated) == fresh
