"""The container every loader returns, with its recommended preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: training data, the official test split if any, and provenance.

    Attributes
    ----------
    name : str
        The name :func:`load_dataset` knows it by.
    kind : {"tabular", "image"}
    data : DataFrame or ndarray
        Tabular: a DataFrame, categorical columns as pandas ``category``, missing
        values as NaN. Images: float32 array of shape ``(n, H, W)`` in [0, 1].
    target : Series or ndarray
        Tabular: a Series of the original labels. Images: int64 labels 0..C-1.
    description : str
        Source artifact and version, licence, citation and caveats.
    data_test, target_test : same types, or None
        The official test split where the source defines one, else None.
    """

    name: str
    kind: Literal["tabular", "image"]
    data: pd.DataFrame | np.ndarray = field(repr=False)
    target: pd.Series | np.ndarray = field(repr=False)
    description: str = field(repr=False)
    data_test: pd.DataFrame | np.ndarray | None = field(default=None, repr=False)
    target_test: pd.Series | np.ndarray | None = field(default=None, repr=False)

    def make_preprocessor(self) -> TransformerMixin:
        """A fresh, unfitted transformer recommended for this dataset.

        - Tabular with non-numeric columns: a :class:`~sklearn.compose.ColumnTransformer`
          that imputes the median and standardises numeric columns, and imputes the
          most frequent value and one-hot encodes (dense, unknown categories ignored)
          the others.
        - Tabular, all numeric: a :class:`~sklearn.preprocessing.StandardScaler`.
        - Images: the identity, a :class:`~sklearn.preprocessing.FunctionTransformer`
          without a function, since pixels are already float32 in [0, 1]; it keeps
          the ``(n, H, W)`` shape for a convolutional network.
        """
        if self.kind == "image":
            return FunctionTransformer()
        categorical = [
            column
            for column in self.data.columns
            if not pd.api.types.is_numeric_dtype(self.data[column])
        ]
        if not categorical:
            return StandardScaler()
        numeric = [column for column in self.data.columns if column not in categorical]
        return ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    numeric,
                ),
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    ),
                    categorical,
                ),
            ]
        )
