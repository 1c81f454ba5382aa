"""Mixed precision: the forward pass in bfloat16 / float16, everything the policies compute
from the losses in float32 (bf16 runs on the CPU; fp16 speed and GPU behaviour need a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

SETTINGS = {"max_epochs": 8, "random_state": 0, "batch_size": 64, "hidden_layer_sizes": (64,)}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


class Dtypes(Callback):
    """Records the dtypes of the first layer's training output and of what the policy saw."""

    def __init__(self):
        self.forward, self.y_pred, self.loss = set(), set(), set()

    def __deepcopy__(self, memo):
        return self

    def on_train_begin(self, net, **kwargs):
        layers = net.module_.modules()
        first = next(layer for layer in layers if isinstance(layer, torch.nn.Linear))
        first.register_forward_hook(lambda layer, inputs, output: self.forward.add(output.dtype))

    def on_batch_end(self, net, training=False, y_pred=None, loss=None, **kwargs):
        if training:
            self.y_pred.add(y_pred.dtype)
            self.loss.add(loss.dtype)


def fit(estimator, X, y, precision, device="cpu"):
    dtypes = Dtypes()
    model = estimator(**SETTINGS, device=device, precision=precision, callbacks=[dtypes])
    return model.fit(X, y), dtypes


@pytest.mark.parametrize("estimator", [ERMClassifier, RGDClassifier, RAISClassifier])
def test_bf16_trains_the_forward_pass_in_bfloat16_and_the_rest_in_float32(estimator, digits):
    X, y = digits
    reference, _ = fit(estimator, X, y, "fp32")
    model, dtypes = fit(estimator, X, y, "bf16")
    assert torch.bfloat16 in dtypes.forward  # autocast ran the layers in bfloat16 ...
    assert dtypes.y_pred == dtypes.loss == {torch.float32}  # ... and the losses in float32
    assert model.predict_proba(X).dtype == np.float64
    assert not np.array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert abs(model.score(X, y) - reference.score(X, y)) < 0.03
    if estimator is RGDClassifier:
        assert 1 <= model.history_[-1, "rgd_weight_min"] <= model.history_[-1, "rgd_weight_max"]
    if estimator is RAISClassifier:
        assert np.isfinite(model.history_[:, "gain_ratio"]).all()
        assert model.uncertainty_set_ is not None


def test_fp16_uses_a_gradient_scaler(digits):
    X, y = digits
    try:
        model, dtypes = fit(RGDClassifier, X, y, "fp16")
    except RuntimeError as exc:  # a torch build without float16 autocast on the CPU
        pytest.skip(f"float16 autocast on the CPU: {exc}")
    assert torch.float16 in dtypes.forward
    assert dtypes.y_pred == {torch.float32}
    assert model.net_.grad_scaler_.get_scale() > 0
    assert model.score(X, y) > 0.9


def test_fp32_has_no_autocast_and_no_scaler(digits):
    X, y = digits
    model, dtypes = fit(ERMClassifier, X, y, "fp32")
    assert dtypes.forward == {torch.float32}
    assert model.net_.grad_scaler_ is None


def test_an_unknown_precision_is_refused_before_training(digits):
    with pytest.raises(ValueError, match="precision"):
        ERMClassifier(precision="fp8").fit(*digits)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("estimator", [ERMClassifier, RGDClassifier, RAISClassifier])
def test_mixed_precision_on_the_gpu_matches_fp32_accuracy(estimator, precision, digits):
    X, y = digits
    reference, _ = fit(estimator, X, y, "fp32", device="cuda")
    model, dtypes = fit(estimator, X, y, precision, device="cuda")
    assert {"bf16": torch.bfloat16, "fp16": torch.float16}[precision] in dtypes.forward
    assert abs(model.score(X, y) - reference.score(X, y)) < 0.03


def test_a_mixed_precision_model_pickles_and_trains_on(digits):
    import pickle

    X, y = digits
    model, _ = fit(RGDClassifier, X, y, "fp16")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert restored.net_.grad_scaler_ is not None
    restored.set_params(warm_start=True, max_epochs=1, callbacks=None).fit(X, y)
    assert restored.n_iter_ == SETTINGS["max_epochs"] + 1
