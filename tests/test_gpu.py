"""Training on a CUDA device (run with `make test-gpu` on a machine with a GPU)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import skops.io as sio
import torch
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("Classifier", [ERMClassifier, RGDClassifier, RAISClassifier])
def test_auto_device_trains_on_gpu_and_matches_cpu_accuracy(Classifier, digits):
    X, y = digits
    gpu = Classifier(max_epochs=20, random_state=0).fit(X, y)
    assert next(gpu.net_.module_.parameters()).device.type == "cuda"
    assert gpu.net_.policy.device.type == "cuda"  # the training data were moved once
    cpu = Classifier(max_epochs=20, random_state=0, device="cpu").fit(X, y)
    assert abs(gpu.score(X, y) - cpu.score(X, y)) < 0.02
    np.testing.assert_allclose(gpu.predict_proba(X).sum(axis=1), 1, rtol=1e-9)


def test_gpu_training_is_reproducible(digits):
    X, y = digits
    runs = [
        RGDClassifier(max_epochs=5, random_state=0, device="cuda").fit(X, y).predict_proba(X)
        for _ in range(2)
    ]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)


def test_images_on_gpu(digits):
    X, y = digits
    model = RGDClassifier(max_epochs=5, random_state=0, device="cuda").fit(
        X.reshape(-1, 1, 8, 8), y
    )
    assert model.score(X.reshape(-1, 1, 8, 8), y) > 0.8


def test_gpu_fit_leaves_global_cuda_generator_alone(digits):
    X, y = digits
    state = torch.cuda.get_rng_state()
    ERMClassifier(max_epochs=1, random_state=0, device="cuda").fit(X, y)
    assert torch.equal(torch.cuda.get_rng_state(), state)


def test_pickled_gpu_model_predicts_identically(digits):
    X, y = digits
    model = RGDClassifier(max_epochs=3, random_state=0, device="cuda").fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("grad_norm", ["logits", "last_layer", "exact"])
def test_rais_on_gpu_samples_on_the_device_and_is_reproducible(grad_norm, digits):
    X, y = digits
    runs = [
        RAISClassifier(grad_norm=grad_norm, max_epochs=4, random_state=0, device="cuda").fit(X, y)
        for _ in range(2)
    ]
    assert runs[0].net_.policy.final_probabilities.device.type == "cuda"
    assert runs[0].uncertainty_set_ is not None
    np.testing.assert_allclose(runs[0].predict_proba(X), runs[1].predict_proba(X), atol=1e-5)
    assert runs[0].score(X, y) > 0.85


def test_rais_cnn_with_weighted_batch_norm_on_gpu(digits):
    X, y = digits
    images = X.reshape(-1, 1, 8, 8)
    model = RAISClassifier(max_epochs=3, lr=0.05, random_state=0, device="cuda").fit(images, y)
    assert model.score(images, y) > 0.5


class CountSynchronisations(Callback):
    """Count the device synchronisations of every epoch after the first two (sampling epochs)."""

    def __init__(self):
        self.per_epoch: list[int] = []
        self.steps: list[int] = []

    def on_epoch_begin(self, net, **kwargs):
        self._recording = len(net.history) > 2
        if self._recording:
            self._caught = warnings.catch_warnings(record=True)
            self._log = self._caught.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_epoch_end(self, net, **kwargs):
        # Called after the engine's own once-per-epoch reads (the epoch's loss, statistics).
        if self._recording:
            torch.cuda.set_sync_debug_mode("default")
            self._caught.__exit__(None, None, None)
            self.per_epoch.append(sum("synchroniz" in str(w.message) for w in self._log))
            self.steps.append(net.history[-1, "train_batch_count"])


def test_rais_steps_do_not_synchronise_the_device(digits):
    """At most one read per bookkeeping block and a few per epoch and solve: none per step."""
    X, y = digits
    counter = CountSynchronisations()
    model = RAISClassifier(
        max_epochs=8, batch_size=32, random_state=0, device="cuda", callbacks=[counter]
    ).fit(X, y)
    assert counter.per_epoch, "no sampling epoch was recorded"
    refresh = model.refresh_interval
    for syncs, steps, solves in zip(
        counter.per_epoch, counter.steps, model.history_[3:, "solves"], strict=False
    ):
        blocks = -(-steps // refresh)
        assert syncs <= blocks + 8 * solves + 10, (syncs, steps, solves)
        assert syncs < steps / 2


LOAD_WITHOUT_CUDA = """
import pickle, sys
import numpy as np, skops.io as sio, torch
import sk_reweight
assert not torch.cuda.is_available()
X = np.load(sys.argv[1] + "/X.npy")
with open(sys.argv[1] + "/model.pkl", "rb") as file:
    pickled = pickle.load(file)
loaded = sio.load(sys.argv[1] + "/model.skops", trusted=sk_reweight.TRUSTED_TYPES)
for name, model in [("pickled", pickled), ("skops", loaded)]:
    assert all(p.device.type == "cpu" for p in model.net_.module_.parameters())
    np.save(f"{sys.argv[1]}/{name}.npy", model.predict_proba(X))
"""


@pytest.mark.parametrize("images", [False, True])
def test_gpu_model_loads_and_predicts_where_there_is_no_cuda(images, digits, tmp_path):
    X, y = digits
    if images:
        X = X.reshape(-1, 1, 8, 8)
    model = RAISClassifier(max_epochs=3, random_state=0, device="cuda", early_stopping=True)
    model.fit(X, y)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    sio.dump(model, tmp_path / "model.skops")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CUDA, str(tmp_path)], check=True, env=env)
    on_cpu = model.to_device("cpu").predict_proba(X)
    for name in ("pickled", "skops"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), on_cpu, atol=1e-6)


def test_to_device_moves_a_gpu_model_and_its_optimizer_state(digits):
    X, y = digits
    model = ERMClassifier(max_epochs=3, random_state=0, device="cuda").fit(X, y)
    on_gpu = model.predict_proba(X)
    model.to_device("cpu")
    state = model.net_.optimizer_.state.values()
    assert all(p.device.type == "cpu" for p in model.net_.module_.parameters())
    assert all(v.device.type == "cpu" for s in state for k, v in s.items() if k != "step")
    np.testing.assert_allclose(model.predict_proba(X), on_gpu, atol=1e-5)
    model.to_device("cuda")
    assert all(p.device.type == "cuda" for p in model.net_.module_.parameters())
    model.set_params(warm_start=True, max_epochs=1).fit(X, y)  # trains on, on the GPU
    assert model.device == "cuda"


def test_pickled_gpu_model_loads_back_onto_the_gpu(digits):
    X, y = digits
    model = RGDClassifier(max_epochs=2, random_state=0, device="cuda").fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    assert next(restored.net_.module_.parameters()).device.type == "cuda"
