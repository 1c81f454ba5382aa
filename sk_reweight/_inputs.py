"""What the classifiers refuse in ``X`` before training, with messages that say what to do.

Non-numeric columns (strings, categories) and images with their channels last
would otherwise fail with NumPy's ``could not convert string to float`` or,
worse, train on a misread layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
