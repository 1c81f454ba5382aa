"""A stand-in for :mod:`sk_reweight.datasets` built from scikit-learn's bundled data (no network).

:func:`install` puts it into ``sys.modules`` so that the benchmark's lazy
``from .datasets import load_dataset`` finds it.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@dataclass
class FakeDataset:
    name: str
    kind: str
    data: Any
    target: Any
    data_test: Any = None
    target_test: Any = None
    description: str = ""

    def make_preprocessor(self):
        return make_column_transformer(
            (
                make_pipeline(SimpleImputer(), StandardScaler()),
                make_column_selector(dtype_include="number"),
            ),
            (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_exclude="number")),
        )


def _mixed_iris() -> FakeDataset:
    """Iris with string labels, a categorical column and missing values (tabular, mixed)."""
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame = frame.copy()
    frame["size"] = np.where(frame["petal length (cm)"] > 4, "large", "small").astype(object)
    frame.iloc[::17, 0] = np.nan
    labels = pd.Series(np.array(["setosa", "versicolor", "virginica"])[target], name="species")
    return FakeDataset("iris_mixed", "tabular", frame, labels)


def _breast_cancer() -> FakeDataset:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return FakeDataset("breast_cancer", "tabular", frame, target)


def _digits() -> FakeDataset:
    frame, target = load_digits(return_X_y=True, as_frame=True)
    return FakeDataset("digits", "tabular", frame, target)


DIGITS_IMAGES_DESCRIPTION = "scikit-learn's load_digits as 8x8 images; last 297 as test split"


def _digits_images() -> FakeDataset:
    """8x8 digit images in [0, 1] with an official test split of 297 images."""
    images, target = load_digits(return_X_y=True)
    images = (images / 16).astype(np.float32).reshape(-1, 8, 8)
    return FakeDataset(
        "digits_images",
        "image",
        images[:1500],
        target[:1500],
        images[1500:],
        target[1500:],
        DIGITS_IMAGES_DESCRIPTION,
    )


LOADERS = {
    "iris_mixed": _mixed_iris,
    "breast_cancer": _breast_cancer,
    "digits": _digits,
    "digits_images": _digits_images,
}


def load_dataset(name: str, *, data_home=None, download=True) -> FakeDataset:
    return LOADERS[name]()


def list_datasets() -> list[str]:
    return list(LOADERS)


def install(monkeypatch) -> None:
    """Make ``sk_reweight.datasets`` this module for the duration of a test."""
    module = types.ModuleType("sk_reweight.datasets")
    module.load_dataset = load_dataset
    module.list_datasets = list_datasets
    monkeypatch.setitem(sys.modules, "sk_reweight.datasets", module)
