"""augmentation: random crops of the zero-padded image and flips, on training minibatches only."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from torch import nn

from sk_reweight import TRUSTED_TYPES, ERMClassifier, RAISClassifier, RGDClassifier
from sk_reweight._augmentation import (
    augment,
    augmentation_generator,
    crop_offsets,
    crop_padded,
    crop_padding,
    random_crop,
    random_horizontal_flip,
)

from .test_checkpoint import FailsAtEpoch

CLASSIFIERS = [ERMClassifier, RGDClassifier, RAISClassifier]
QUICK = {"max_epochs": 2, "n_iter_no_change": None, "device": "cpu", "random_state": 0}


@pytest.fixture(scope="module")
def digit_images(digits):
    """400 of scikit-learn's 8x8 digits as images (n, H, W): padding 1."""
    X, y = digits
    return X[:400].reshape(-1, 8, 8), y[:400]


def translated(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` (C, H, W) moved down by ``rows`` and right by ``columns`` pixels, zero-filled."""
    _, height, width = image.shape
    moved = np.zeros_like(image)
    if abs(rows) >= height or abs(columns) >= width:
        return moved  # moved out of the frame
    target_rows = slice(max(rows, 0), min(height, height + rows))
    source_rows = slice(max(-rows, 0), min(height, height - rows))
    target_columns = slice(max(columns, 0), min(width, width + columns))
    source_columns = slice(max(-columns, 0), min(width, width - columns))
    moved[:, target_rows, target_columns] = image[:, source_rows, source_columns]
    return moved


@st.composite
def images_and_offsets(draw):
    n, channels = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    height, width, padding = (
        draw(st.integers(1, 9)),
        draw(st.integers(1, 9)),
        draw(st.integers(0, 4)),
    )
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, channels, height, width)).astype(np.float32)
    offsets = rng.integers(0, 2 * padding + 1, size=(n, 2))
    return X, offsets, padding


@given(images_and_offsets())
def test_a_crop_of_the_padded_image_is_the_image_translated_with_zeros(case):
    X, offsets, padding = case
    cropped = crop_padded(torch.from_numpy(X), torch.from_numpy(offsets), padding).numpy()
    height, width = X.shape[-2:]
    for image, crop, (row, column) in zip(X, cropped, offsets, strict=True):
        # Independently: the padded image sliced at the offset ...
        padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
        np.testing.assert_array_equal(crop, padded[:, row : row + height, column : column + width])
        # ... is the image moved by (p - row, p - column).
        np.testing.assert_array_equal(crop, translated(image, padding - row, padding - column))


def test_the_centre_offset_leaves_the_images_unchanged():
    X = torch.randn(5, 3, 32, 32)
    np.testing.assert_array_equal(crop_padded(X, torch.full((5, 2), 4), 4), X)


@pytest.mark.parametrize(
    ("height", "width", "padding"), [(32, 32, 4), (28, 28, 4), (8, 8, 1), (28, 64, 4), (1, 5, 1)]
)
def test_the_padding_is_an_eighth_of_the_shorter_side_rounded_up(height, width, padding):
    assert crop_padding(height, width) == padding


def test_crop_offsets_are_uniform_over_every_position():
    padding, per_cell = 2, 400
    cells = (2 * padding + 1) ** 2
    generator = torch.Generator().manual_seed(0)
    offsets = crop_offsets(cells * per_cell, padding, generator, "cpu").numpy()
    assert offsets.min() == 0
    assert offsets.max() == 2 * padding
    counts = np.bincount(offsets[:, 0] * (2 * padding + 1) + offsets[:, 1], minlength=cells)
    assert counts.size == cells
    assert chisquare(counts).pvalue > 1e-3  # fixed seed: deterministic


def test_random_crop_crops_at_the_drawn_offsets():
    X = torch.randn(50, 2, 28, 28)
    offsets = crop_offsets(50, 4, torch.Generator().manual_seed(3), "cpu")
    cropped = random_crop(X, 4, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(cropped, crop_padded(X, offsets, 4))


def test_a_flip_mirrors_each_image_with_probability_one_half():
    n = 20_000
    X = torch.arange(3.0).expand(n, 1, 2, 3)  # every row 0 1 2: mirrored, 2 1 0
    flipped = random_horizontal_flip(X, torch.Generator().manual_seed(0))
    mirrored = (flipped == X.flip(-1)).flatten(1).all(1)
    unchanged = (flipped == X).flatten(1).all(1)
    assert bool((mirrored ^ unchanged).all())
    assert abs(mirrored.float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / n)


def test_crop_flip_crops_then_flips_from_one_stream():
    X = torch.randn(64, 1, 8, 8)
    generator = torch.Generator().manual_seed(5)
    expected = random_horizontal_flip(random_crop(X, 1, generator), generator)
    augmented = augment(X, "crop_flip", torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(augmented, expected)
    cropped = augment(X, "crop", torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(cropped, random_crop(X, 1, torch.Generator().manual_seed(5)))


def test_the_augmentation_stream_is_not_the_policys():
    seed = 12345
    ours = torch.rand(8, generator=augmentation_generator(seed, "cpu"))
    policys = torch.rand(8, generator=torch.Generator().manual_seed(seed))
    assert not torch.equal(ours, policys)
    np.testing.assert_array_equal(
        ours, torch.rand(8, generator=augmentation_generator(seed, "cpu"))
    )


# ----------------------------------------------------------------- the classifiers


class Recorder(nn.Module):
    """A linear model that keeps every input it sees, in training and in evaluation mode."""

    def __init__(self, input_shape, n_classes):
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), n_classes)
        self.seen = {True: [], False: []}

    def forward(self, X):
        self.seen[self.training].append(X.detach().clone())
        return self.linear(X.flatten(1))


class RecordIndices(Callback):
    """The positions in the training set of every training minibatch, in order."""

    def initialize(self):
        self.indices_ = []
        return self

    def on_batch_begin(self, net, training=False, indices=None, **kwargs):
        if training:
            self.indices_.append(indices.clone())


def fitted_recorder(X, y, **params):
    recorder = RecordIndices()
    model = ERMClassifier(module=Recorder, callbacks=[("indices", recorder)], **QUICK, **params)
    model.fit(X, y)
    return model, dict(model.net_.callbacks_)["indices"].indices_


@pytest.mark.parametrize("augmentation", ["crop", "crop_flip"])
def test_training_sees_every_image_shifted_by_at_most_the_padding(digit_images, augmentation):
    X, y = digit_images
    images = X[:, None]
    model, batches = fitted_recorder(X, y, augmentation=augmentation)
    seen = model.net_.module_.seen[True]
    assert len(seen) == len(batches) > 0
    shifts = [(rows, columns) for rows in (-1, 0, 1) for columns in (-1, 0, 1)]
    flips = [False, True] if augmentation == "crop_flip" else [False]
    moved, mirrored = 0, 0
    for batch, indices in zip(seen, batches, strict=True):
        for image, source in zip(batch.numpy(), images[indices.numpy()], strict=True):
            matches = [
                (shift, flip)
                for shift in shifts
                for flip in flips
                if np.array_equal(image, translated(source[..., ::-1] if flip else source, *shift))
            ]
            assert matches, "a training image is no translation of its source by <= 1 pixel"
            moved += all(shift != (0, 0) for shift, _ in matches)
            mirrored += all(flip for _, flip in matches)
    n_seen = sum(len(indices) for indices in batches)
    assert moved > n_seen * 0.7  # 8 of 9 offsets move the image
    assert (mirrored > n_seen * 0.3) == (augmentation == "crop_flip")


def test_augmentation_changes_no_minibatch_the_policy_draws(digit_images):
    X, y = digit_images
    _, plain = fitted_recorder(X, y)
    _, augmented = fitted_recorder(X, y, augmentation="crop_flip")
    assert len(plain) == len(augmented)
    for before, after in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(before, after)


def test_prediction_and_validation_see_the_images_as_they_are(digit_images):
    X, y = digit_images
    model, _ = fitted_recorder(X, y, augmentation="crop_flip", early_stopping=True)
    rows = {image.tobytes() for image in X[:, None]}
    evaluated = model.net_.module_.seen[False]
    assert evaluated  # the module check and the validation epochs
    assert all(image.tobytes() in rows for batch in evaluated for image in batch.numpy())
    with torch.no_grad():
        logits = model.net_.module_.eval()(torch.from_numpy(X[:, None]))
    np.testing.assert_allclose(
        model.predict_proba(X), torch.softmax(logits.double(), 1), atol=1e-6
    )
    np.testing.assert_array_equal(model.predict(X), model.classes_[logits.argmax(1).numpy()])


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_the_same_seed_gives_the_same_fit_and_another_seed_another(Classifier, digit_images):
    X, y = digit_images
    params = {**QUICK, "augmentation": "crop_flip"}
    first = Classifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(Classifier(**params).fit(X, y).predict_proba(X), first)
    other = Classifier(**{**params, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(other, first)
    plain = Classifier(**{**params, "augmentation": None}).fit(X, y).predict_proba(X)
    assert not np.array_equal(plain, first)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
@pytest.mark.parametrize("augmentation", ["crop", "crop_flip"])
def test_tabular_input_is_refused_before_training(Classifier, augmentation, digits):
    X, y = digits
    model = Classifier(**QUICK, augmentation=augmentation)
    message = (
        rf"augmentation='{augmentation}' needs images shaped \(n, C, H, W\) or \(n, H, W\); got "
        r"tabular input with shape \(1797, 64\); set augmentation=None"
    )
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)
    assert not hasattr(model, "net_")


@pytest.mark.parametrize("value", ["flip", "Crop", True, 4])
def test_an_unknown_augmentation_is_refused(value, digit_images):
    with pytest.raises(InvalidParameterError, match="'augmentation' parameter"):
        ERMClassifier(augmentation=value).fit(*digit_images)


def test_clone_and_get_params_carry_the_augmentation():
    model = RGDClassifier(augmentation="crop")
    assert model.get_params()["augmentation"] == "crop"
    assert clone(model).augmentation == "crop"
    assert model.set_params(augmentation="crop_flip").augmentation == "crop_flip"
    assert ERMClassifier().augmentation is None


def test_sample_weight_bf16_and_saving(digit_images):
    X, y = digit_images
    weights = np.where(y % 2 == 0, 2.0, 0.5)
    params = {**QUICK, "augmentation": "crop", "precision": "bf16"}
    model = ERMClassifier(**params).fit(X, y, sample_weight=weights)
    assert np.isfinite(model.loss_curve_).all()
    assert model.net_.augmentation_generator is None  # dropped after training
    expected = model.predict_proba(X)
    for copy in (pickle.loads(pickle.dumps(model)), sio.loads(sio.dumps(model), TRUSTED_TYPES)):
        assert copy.augmentation == "crop"
        np.testing.assert_array_equal(copy.predict_proba(X), expected)


def test_partial_fit_augments_each_chunk_reproducibly(digit_images):
    X, y = digit_images
    classes = np.unique(y)

    def two_chunks(augmentation):
        model = RGDClassifier(**QUICK, augmentation=augmentation)
        model.partial_fit(X[:200], y[:200], classes=classes).partial_fit(X[200:], y[200:])
        return model.predict_proba(X)

    first = two_chunks("crop")
    np.testing.assert_array_equal(two_chunks("crop"), first)
    assert not np.array_equal(two_chunks(None), first)


def test_a_crashed_fit_resumes_with_the_augmentations_of_an_uninterrupted_one(
    digit_images, tmp_path
):
    from sk_reweight import TrainingCheckpoint

    X, y = digit_images
    params = {**QUICK, "max_epochs": 4, "augmentation": "crop_flip", "dropout": 0.2}
    reference = ERMClassifier(**params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        ERMClassifier(**params, callbacks=[checkpoint, FailsAtEpoch(2)]).fit(X, y)
    resumed = ERMClassifier(**params, callbacks=[checkpoint]).fit(X, y)
    assert resumed.loss_curve_ == reference.loss_curve_
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_draws_on_the_gpu(digit_images):
    X = torch.randn(256, 3, 32, 32, device="cuda")
    augmented = augment(X, "crop_flip", augmentation_generator(0, X.device))
    assert augmented.device == X.device
    assert augmented.shape == X.shape
    model = ERMClassifier(max_epochs=1, device="cuda", random_state=0, augmentation="crop")
    assert model.fit(*digit_images).score(*digit_images) > 0


def test_a_warm_start_fit_takes_the_new_augmentation(digit_images):
    X, y = digit_images
    model = ERMClassifier(**QUICK, warm_start=True).fit(X, y)
    model.set_params(augmentation="crop").fit(X, y)
    assert model.net_.augmentation == "crop"
    assert model.n_iter_ == 4
    model.set_params(augmentation=None).fit(X, y)
    assert model.net_.augmentation is None
