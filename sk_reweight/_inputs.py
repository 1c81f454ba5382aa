"""The classifiers' input checks, with messages that say what to do.

:func:`validated_examples`, :func:`encoded_labels` and
:func:`training_weights` are what a fit makes of ``X``, ``y`` and
``sample_weight``, setting the classifier's ``n_features_in_``,
``input_shape_`` and ``classes_`` as scikit-learn's ``validate_data`` does.
Non-numeric columns (strings, categories) and images with their channels last
would otherwise fail with NumPy's ``could not convert string to float`` or,
worse, train on a misread layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, validate_data

CHANNEL_COUNTS = (1, 3, 4)
"""Channels of grey, RGB and RGBA images: a last axis of this size suggests channels last."""


def non_numeric_columns(X: Any) -> list:
    """The columns of ``X`` that cannot be read as floats: names of a DataFrame, else indices.

    Only 2-D input has columns; anything else gives ``[]``.
    """
    if hasattr(X, "columns"):
        return [name for name in X.columns if not _numeric(X[name])]
    array = np.asarray(X, dtype=object)
    if array.ndim != 2:
        return []
    return [j for j in range(array.shape[1]) if not _numeric(array[:, j])]


def _numeric(column: Any) -> bool:
    try:
        np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def non_numeric_message(columns: list, reason: str) -> str:
    """Why ``X`` with non-numeric ``columns`` is refused (NumPy's ``reason``), and the fix."""
    return (
        f"X has non-numeric columns {columns} ({reason}). The classifiers train on numbers: "
        "encode categorical columns first, e.g. with a sklearn.compose.ColumnTransformer that "
        "applies a OneHotEncoder to them (and a StandardScaler to the numeric ones), in a "
        "Pipeline before the classifier; the suite's data sets build one with "
        "sk_reweight.datasets.Dataset.make_preprocessor()."
    )


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether images of ``shape`` (n, A, B, C) look like (n, H, W, C), channels last.

    The last axis holds 1, 3 or 4 values (grey, RGB, RGBA) and is smaller
    than both others: (n, 8, 8, 3) does, (n, 3, 8, 8) does not.
    """
    return len(shape) == 4 and shape[3] in CHANNEL_COUNTS and shape[3] < min(shape[1:3])


def channels_last_message(shape: tuple[int, ...]) -> str:
    """Why images of ``shape`` are refused with the default network, and the fixes."""
    _, height, width, channels = shape
    return (
        f"X has shape {shape}, which looks like {height}x{width} images with {channels} "
        f"channel(s) last; the classifiers read 4-D input as (n_samples, C, H, W), i.e. as "
        f"{height} channels of {width}x{channels} images. Move the channels first: "
        "X.transpose(0, 3, 1, 2) (a torch tensor: X.permute(0, 3, 1, 2)). If the layout is "
        "right as it is, pass the network yourself, e.g. module=sk_reweight.default_module: "
        "this check is made for module=None only."
    )


VALIDATION_KWARGS: dict[str, Any] = dict(ensure_2d=False, allow_nd=True, dtype=np.float32)
"""``validate_data``'s options: float32 tables or images, no other conversion."""


def validated_examples(
    estimator: Any, X: ArrayLike, y: Any = "no_validation", *, reset: bool
) -> Any:
    """``X`` validated and shaped for the network (and ``y``, unless ``'no_validation'``).

    scikit-learn's ``validate_data``, whose error for non-numeric columns
    names them and the fix, then :func:`shaped_examples`. As in
    ``validate_data``, ``y=None`` is refused (a classifier requires ``y``).
    """
    try:
        validated = validate_data(estimator, X, y, reset=reset, **VALIDATION_KWARGS)
    except ValueError as exc:
        columns = non_numeric_columns(X)
        if not columns:
            raise
        raise ValueError(non_numeric_message(columns, str(exc))) from exc
    if isinstance(y, str) and y == "no_validation":
        return shaped_examples(estimator, validated, reset=reset)
    X, y = validated
    return shaped_examples(estimator, X, reset=reset), y


def shaped_examples(estimator: Any, X: NDArray[np.float32], *, reset: bool) -> NDArray:
    """Check or set ``n_features_in_`` and ``input_shape_``; add a channel axis to (n, H, W).

    ``validate_data`` checks the feature count only of 2-D input, so it is
    done here for every shape. Images that look channels last, (n, H, W, C)
    with C in (1, 3, 4), are refused for the default network (which would
    read them as H channels of W x C images); a ``module`` of the user's
    reads whatever layout it is given.
    """
    name = type(estimator).__name__
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} expects X of shape (n_samples, n_features) or images "
            f"(n_samples, H, W) / (n_samples, C, H, W); got an array with shape {X.shape}. "
            "Reshape your data, e.g. with X.reshape(-1, 1) for a single feature."
        )
    if reset and estimator.module is None and looks_channels_last(X.shape):
        raise ValueError(channels_last_message(X.shape))
    examples = X[:, None] if X.ndim == 3 else X
    if reset:
        estimator.n_features_in_ = X.shape[1]
        estimator.input_shape_ = tuple(examples.shape[1:])
    elif X.ndim == 2 and len(estimator.input_shape_) == 1:
        if X.shape[1] != estimator.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{estimator.n_features_in_} features as input."
            )
    elif tuple(examples.shape[1:]) != estimator.input_shape_:
        raise ValueError(
            f"X has examples of shape {tuple(examples.shape[1:])}, but "
            f"{name} was fitted on examples of shape {estimator.input_shape_}."
        )
    return examples


def check_augmentation(augmentation: str | None, X: NDArray) -> None:
    """Refuse ``augmentation`` for input that is not images (``X`` shaped for the network)."""
    if augmentation is not None and X.ndim != 4:
        raise ValueError(
            f"augmentation={augmentation!r} needs images shaped (n, C, H, W) or "
            f"(n, H, W); got tabular input with shape {X.shape}; set augmentation=None."
        )


def encoded_labels(
    estimator: Any, y: NDArray, *, reset: bool, classes: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Class indices of ``y``; ``reset`` sets ``classes_`` (from ``classes``, else ``y``)."""
    check_classification_targets(y)
    if reset:
        estimator.classes_ = np.unique(y if classes is None else classes)
        if len(estimator.classes_) < 2:
            raise ValueError(
                f"{type(estimator).__name__} needs samples of at least 2 classes, but y "
                f"contains only one class: {estimator.classes_.tolist()[0]!r}."
            )
    unseen = np.setdiff1d(y, estimator.classes_)
    if unseen.size:
        raise ValueError(
            f"y contains new classes {list(unseen)}, not among {list(estimator.classes_)}: "
            "the classes of the first fit (warm_start=True) or those passed as classes= "
            "to the first partial_fit."
        )
    return np.searchsorted(estimator.classes_, y).astype(np.int64)


def training_weights(
    X: NDArray, y: NDArray, sample_weight: ArrayLike | None, class_weight: Any
) -> NDArray[np.float32]:
    """``sample_weight`` (default ones) times the ``class_weight`` of each example."""
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    if class_weight is not None:
        weights = weights * compute_sample_weight(class_weight, y)
    if not weights.sum() > 0:
        raise ValueError("sample_weight (times class_weight) must have a positive sum.")
    return weights.astype(np.float32)
