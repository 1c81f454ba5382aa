"""Saving fitted classifiers: what a pickle holds, skops round trips, tampered files, devices."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skops.io.exceptions import UntrustedTypesFoundException
from torch import nn

import sk_reweight
from sk_reweight import (
    TRUSTED_TYPES,
    ERMClassifier,
    InfoBatchClassifier,
    RAISClassifier,
    RGDClassifier,
    TrainingCheckpoint,
)
from sk_reweight._batchnorm import WeightedBatchNorm2d

CLASSIFIERS = [ERMClassifier, RGDClassifier, RAISClassifier, InfoBatchClassifier]
QUICK = {"max_epochs": 3, "n_iter_no_change": None, "device": "cpu", "random_state": 0}


def small_mlp(input_shape, n_classes):
    """A user's own network factory (a module-level function, as skops requires)."""
    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, n_classes))


class WritesFileWhenUnpickled:
    """A pickle payload: unpickling it creates the file at ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def json_node(value):
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}  # fmt: skip


def rewrite_skops(path, edit):
    """Rewrite the skops file at ``path``: ``edit(schema, files)`` changes its parts in place."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files.pop("schema.json"))
    edit(schema, files)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, content in files.items():
            archive.writestr(name, content)


def attributes(schema):
    """The node states of the saved classifier's attributes, by name."""
    return schema["content"]["content"]


@pytest.fixture(scope="module")
def data(digits):
    return digits


@pytest.fixture(scope="module", params=CLASSIFIERS, ids=lambda c: c.__name__)
def fitted(request, data):
    return request.param(**QUICK).fit(*data)


# ----------------------------------------------------------------------- pickle


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_pickle_holds_no_training_or_validation_rows(Classifier, data):
    X, y = data
    model = Classifier(**QUICK, early_stopping=True, validation_fraction=0.2).fit(X, y)
    rows = [row.tobytes() for row in X]  # the training and the validation rows
    unique_rows = [row for row in rows if rows.count(row) == 1 and any(row)]
    assert all(row in pickle.dumps(X) for row in unique_rows)  # the search finds rows
    saved = pickle.dumps(model)
    assert not [row for row in unique_rows if row in saved]
    # Nor does the fitted classifier keep them in memory, or a generator.
    assert model.net_.train_split is None
    assert model.net_.policy.generator is None
    assert getattr(model.net_.policy, "sampler", None) is None


def test_pickle_keeps_weighted_batch_norm_inside_the_module(data):
    X, y = data
    images = X.reshape(-1, 8, 8)
    model = RAISClassifier(**{**QUICK, "max_epochs": 2}).fit(images, y)
    for net in (pickle.loads(pickle.dumps(model)).net_, pickle.loads(pickle.dumps(model.net_))):
        layers = net._weighted_layers
        assert layers
        assert all(isinstance(layer, WeightedBatchNorm2d) for layer in layers)
        in_module = [any(layer is m for m in net.module_.modules()) for layer in layers]
        assert all(in_module)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(images), model.predict_proba(images))
    # A warm refit after loading goes on exactly as it would have without saving.
    more = {"warm_start": True, "max_epochs": 1}
    expected = pickle.loads(pickle.dumps(model)).set_params(**more).fit(images, y)
    np.testing.assert_array_equal(
        restored.set_params(**more).fit(images, y).predict_proba(images),
        expected.predict_proba(images),
    )


def test_to_device_moves_the_fitted_network_and_leaves_the_parameter(fitted, data):
    X, _ = data
    expected = fitted.predict_proba(X)
    model = pickle.loads(pickle.dumps(fitted)).set_params(device="auto")
    assert model.to_device("cpu") is model
    assert model.device == "auto"
    assert all(p.device.type == "cpu" for p in model.net_.module_.parameters())
    np.testing.assert_array_equal(model.predict_proba(X), expected)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' cannot be used"):
            model.to_device("cuda")
    with pytest.raises(ValueError, match="not a valid torch device"):
        model.to_device("gpu please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_model_saved_on_a_gpu_loads_onto_the_cpu_without_cuda(fitted, data):
    """What a GPU-trained pickle holds differs from a CPU one only in the recorded device."""
    X, _ = data
    state = fitted.__getstate__()
    state["net_"] = {**state["net_"], "device": "cuda:0"}
    restored = type(fitted).__new__(type(fitted))
    restored.__setstate__(state)
    assert torch.device(restored.net_.device).type == "cpu"
    assert all(p.device.type == "cpu" for p in restored.net_.module_.parameters())
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


def test_to_device_needs_a_fitted_classifier():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ERMClassifier().to_device("cpu")


# ------------------------------------------------------------------------ skops


def test_skops_round_trip_is_bit_identical(fitted, data, tmp_path):
    X, y = data
    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= set(TRUSTED_TYPES)
    assert f"{type(fitted).__module__}.{type(fitted).__name__}" in untrusted
    with pytest.raises(UntrustedTypesFoundException):
        sio.load(path)  # skops trusts no type of this package by default
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert list(loaded.history_) == list(fitted.history_)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    if isinstance(fitted, RAISClassifier):
        np.testing.assert_array_equal(
            loaded.sampling_probabilities(), fitted.sampling_probabilities()
        )
        np.testing.assert_array_equal(loaded.uncertainty_set_.c, fitted.uncertainty_set_.c)
    # The optimizer's state came along: warm refits agree bit for bit.
    more = {"warm_start": True, "max_epochs": 1}
    expected = pickle.loads(pickle.dumps(fitted)).set_params(**more).fit(X, y)
    np.testing.assert_array_equal(
        loaded.set_params(**more).fit(X, y).predict_proba(X), expected.predict_proba(X)
    )


def test_trusted_types_name_this_packages_classes():
    for name in TRUSTED_TYPES:
        module, _, attribute = name.rpartition(".")
        cls = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert isinstance(cls, type)
        assert cls.__module__.startswith("sk_reweight.")
    assert sk_reweight.TRUSTED_TYPES is TRUSTED_TYPES


def test_skops_asks_to_trust_a_users_own_module_factory(data, tmp_path):
    X, y = data
    model = ERMClassifier(**QUICK, module=small_mlp).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    assert set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES) == {
        f"{__name__}.small_mlp"
    }
    with pytest.raises(UntrustedTypesFoundException, match="small_mlp"):
        sio.load(path, trusted=TRUSTED_TYPES)
    loaded = sio.load(path, trusted=[*TRUSTED_TYPES, f"{__name__}.small_mlp"])
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_skops_trusts_a_training_checkpoint_among_the_callbacks(data, tmp_path):
    X, y = data
    checkpoint = TrainingCheckpoint(str(tmp_path / "checkpoints"), every=2)
    model = RGDClassifier(**QUICK, callbacks=[checkpoint]).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    assert "sk_reweight._checkpoint.TrainingCheckpoint" in sio.get_untrusted_types(file=path)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    assert loaded.callbacks[0].dirname == checkpoint.dirname
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_skops_refuses_an_injected_type_without_running_it(data, tmp_path):
    model = ERMClassifier(**{**QUICK, "max_epochs": 1}).fit(*data)
    path, marker = tmp_path / "model.skops", tmp_path / "written_by_payload"

    def inject_open(schema, files):  # loss_curve_ = open(marker, "w") when constructed
        attributes(schema)["loss_curve_"] = {
            "__class__": "open", "__module__": "builtins",
            "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins",
                        "__loader__": "TupleNode",
                        "content": [json_node(str(marker)), json_node("w")]},
        }  # fmt: skip

    sio.dump(model, path)
    rewrite_skops(path, inject_open)
    assert "builtins.open" in sio.get_untrusted_types(file=path)
    with pytest.raises(UntrustedTypesFoundException, match=r"builtins\.open"):
        sio.load(path, trusted=TRUSTED_TYPES)
    assert not marker.exists()
    # The payload is real: trusting it writes the file.
    loaded = sio.load(path, trusted=[*TRUSTED_TYPES, "builtins.open"])
    loaded.loss_curve_.close()
    assert marker.exists()


@pytest.mark.parametrize("blob", ["module", "optimizer"])
def test_skops_refuses_weights_that_are_not_plain_tensors(blob, data, tmp_path):
    model = ERMClassifier(**{**QUICK, "max_epochs": 1}).fit(*data)
    path, marker = tmp_path / "model.skops", tmp_path / "written_by_payload"
    payload = pickle.dumps(WritesFileWhenUnpickled(marker))
    pickle.loads(payload).close()  # the payload is real: unpickling writes the file
    assert marker.exists()
    marker.unlink()

    def replace_weights(schema, files):
        saved_net = attributes(schema)["net_"]["content"]
        node = saved_net["module"] if blob == "module" else saved_net["optimizer"]["content"]
        if blob == "optimizer":
            node = node["tensors"]
        files[node["file"]] = payload

    sio.dump(model, path)
    rewrite_skops(path, replace_weights)
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)  # bytes look harmless
    with pytest.raises(ValueError, match="not a safetensors blob of plain tensors"):
        sio.load(path, trusted=TRUSTED_TYPES)
    assert not marker.exists()


def test_saved_weights_are_safetensors_not_pickle(fitted):
    from safetensors.torch import load

    saved = fitted.__getstate__()["net_"]
    weights = load(saved["module"])
    for name, parameter in fitted.net_.module_.state_dict().items():
        torch.testing.assert_close(weights[name], parameter, rtol=0, atol=0)
    assert b"\x80" not in saved["module"][:2]  # not a pickle stream (protocol 2+ header)
    assert "history_" not in fitted.__getstate__()


def test_unknown_saved_format_is_refused(fitted):
    state = fitted.__getstate__()
    state["net_"] = {**state["net_"], "format": 99}
    with pytest.raises(ValueError, match="unknown format 99"):
        type(fitted).__new__(type(fitted)).__setstate__(state)


def test_loading_does_not_touch_the_global_random_state(fitted):
    saved = pickle.dumps(fitted)
    state = torch.random.get_rng_state()
    pickle.loads(saved)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_saved_state_holds_only_plain_values(fitted):
    """Bytes, numbers, strings, containers, numpy arrays and this package's own objects."""

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        else:
            allowed = (bytes, str, int, float, bool, type(None), np.ndarray, np.generic)
            assert isinstance(value, allowed) or type(value).__module__.startswith(
                "sk_reweight."
            ), type(value)

    walk(fitted.__getstate__())


def test_a_pipeline_loads_as_mlflow_saves_it(data, tmp_path):
    """MLflow's skops format dumps the model and loads it back trusting ``skops_trusted_types``
    (docs/saving.md's recipe passes ``TRUSTED_TYPES``): a scaler and an early-stopped
    classifier need nothing more."""
    X, y = data
    pipeline = make_pipeline(
        StandardScaler(), RGDClassifier(**QUICK, early_stopping=True, verbose=0)
    ).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(pipeline, path)
    assert sio.get_untrusted_types(file=path) == ["sk_reweight._rgd.RGDClassifier"]
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
