"""Bad input fails before training with a clear ValueError or TypeError; input is never mutated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from sk_reweight import (
    ERMClassifier,
    RAISClassifier,
    RGDClassifier,
    default_module,
    resolve_device,
)

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
    model = ERMClassifier(**{**FAST, "device": "cuda"})
    with pytest.raises(ValueError, match="device='cuda' cannot be used: ") as caught:
        model.fit(*data)
    assert "use device='auto' (a CUDA GPU when there is one, else the CPU) or device='cpu'" in str(
        caught.value
    )
    assert not hasattr(model, "net_")


@pytest.mark.parametrize(("device", "suggested"), [("gpu", "cuda"), ("GPU:1", "cuda:1")])
def test_gpu_suggests_cuda(data, device, suggested):
    with pytest.raises(ValueError, match="did you mean") as caught:
        ERMClassifier(**{**FAST, "device": device}).fit(*data)
    assert str(caught.value) == (
        f"device={device!r} is not a torch device; did you mean device={suggested!r} "
        "(an NVIDIA GPU), or device='auto'?"
    )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_an_unavailable_backend_is_one_sentence_before_training(data):
    model = RAISClassifier(**{**FAST, "device": "mps"})
    with pytest.raises(ValueError, match="mps backend") as caught:
        model.fit(*data)
    assert str(caught.value) == (
        "device='mps' cannot be used: the mps backend is not available on this machine or in "
        "this torch; use device='auto' (a CUDA GPU when there is one, else the CPU) or "
        "device='cpu'."
    )
    assert not hasattr(model, "net_")


def test_the_meta_device_is_refused():
    with pytest.raises(ValueError, match="the meta device holds no data"):
        resolve_device("meta")


def test_resolve_device_passes_working_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_string_columns_of_a_frame_are_named_with_the_fix(mixed_frame):
    X, y = mixed_frame
    with pytest.raises(ValueError, match="non-numeric") as caught:
        ERMClassifier(**FAST).fit(X, y)
    message = str(caught.value)
    assert message.startswith("X has non-numeric columns ['colour', 'city'] (could not convert")
    assert "ColumnTransformer that applies a OneHotEncoder" in message
    assert "Pipeline" in message
    assert "Dataset.make_preprocessor()" in message


def test_string_columns_of_an_array_are_named_by_position(data):
    X, y = data
    X = np.column_stack([X, np.where(y == 1, "red", "blue")]).astype(object)
    with pytest.raises(ValueError, match=r"X has non-numeric columns \[3\] \(could not convert "):
        RGDClassifier(**FAST).fit(X, y)


def test_string_columns_at_predict_are_named(data):
    X, y = data
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = ERMClassifier(**FAST).fit(frame, y)
    with pytest.raises(ValueError, match=r"non-numeric columns \['b'\]"):
        model.predict(frame.assign(b="red"))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_last_images_are_refused_with_the_transpose(channels):
    X = np.zeros((6, 8, 8, channels), dtype=np.float32)
    y = np.arange(6) % 2
    model = ERMClassifier(**FAST)
    with pytest.raises(ValueError, match="channel") as caught:
        model.fit(X, y)
    message = str(caught.value)
    assert message.startswith(
        f"X has shape (6, 8, 8, {channels}), which looks like 8x8 images with {channels} "
        "channel(s) last"
    )
    assert f"as 8 channels of 8x{channels} images" in message
    assert "X.transpose(0, 3, 1, 2)" in message
    assert "module=sk_reweight.default_module" in message
    assert not hasattr(model, "net_")


def test_channels_first_images_and_an_own_module_pass():
    y = np.arange(6) % 2
    ERMClassifier(**FAST).fit(np.zeros((6, 3, 8, 8), dtype=np.float32), y)
    # The way out: a module given explicitly reads the layout as it is (8 channels of 8x3).
    model = ERMClassifier(**{**FAST, "module": default_module})
    model.fit(np.zeros((6, 8, 8, 3), dtype=np.float32), y)
    assert model.input_shape_ == (8, 8, 3)


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

    from sk_reweight._data import private_tensor

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


@pytest.mark.parametrize(
    ("classifier", "message"),
    [
        (ERMClassifier(optimizer=torch.optim.LBFGS), "closure"),
        (RAISClassifier(solver="cvxpy", cvxpy_solver="MOSEK"), "cvxpy_solver"),
        (ERMClassifier(device="gpu"), "'cuda'"),
        (ERMClassifier(optimizer=dict), "subclass of torch.optim.Optimizer"),
        (ERMClassifier(hidden_layer_sizes=(10, 0)), "positive integers"),
    ],
    ids=[
        "closure optimizer",
        "missing conic solver",
        "device name",
        "not an optimizer",
        "hidden layer sizes",
    ],
)
def test_every_parameter_is_resolved_before_the_data_are_read(classifier, message):
    """The plan of a fit comes first: a bad parameter is named even when X is bad too."""
    X = np.array([["a", "b"], ["c", "d"]], dtype=object)  # would be refused, later
    with pytest.raises((ValueError, TypeError), match=message):
        classifier.fit(X, [0, 1])
