"""The real artifacts: download, verify and load every dataset (``make test-network``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sk_reweight.datasets import list_datasets, load_dataset

# name: (training shape, test shape or None, training class sizes in decreasing order)
EXPECTED = {
    "adult": ((32561, 14), (16281, 14), [24720, 7841]),
    "letter": (
        (20000, 16),
        None,
        [
            *(813, 805, 803, 796, 792, 789, 787, 786, 783, 783, 775, 773, 768),
            *(766, 764, 761, 758, 755, 753, 752, 748, 747, 739, 736, 734, 734),
        ],
    ),
    "satimage": ((6435, 36), None, [1533, 1508, 1358, 707, 703, 626]),
    "pendigits": ((10992, 16), None, [1144, 1144, 1143, 1143, 1142, 1056, 1055, 1055, 1055, 1055]),
    "phoneme": ((5404, 5), None, [3818, 1586]),
    "spambase": ((4597, 57), None, [2785, 1812]),
    "shuttle": ((58000, 9), None, [45586, 8903, 3267, 171, 50, 13, 10]),
    "churn": ((5000, 19), None, [4293, 707]),
    "breast_cancer": ((569, 30), None, [357, 212]),
    "digits": ((1797, 64), None, [183, 182, 182, 181, 181, 180, 179, 178, 177, 174]),
    "digits_images": ((1797, 8, 8), None, [183, 182, 182, 181, 181, 180, 179, 178, 177, 174]),
    "fashion_mnist": ((60000, 28, 28), (10000, 28, 28), [6000] * 10),
    "fashion_mnist_lt10": (
        (24516, 28, 28),
        (10000, 28, 28),
        [6000, 4645, 3596, 2784, 2156, 1669, 1292, 1000, 774, 600],
    ),
    "fashion_mnist_lt100": (
        (14886, 28, 28),
        (10000, 28, 28),
        [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60],
    ),
}


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """One fresh cache for the module: every artifact is downloaded once, then reused."""
    return tmp_path_factory.mktemp("sk_reweight_data")


def test_expectations_cover_every_dataset():
    assert sorted(EXPECTED) == sorted(list_datasets())


@pytest.mark.network
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_dataset(name, data_home):
    if name == "shuttle":
        pytest.importorskip("pyreadr")
    dataset = load_dataset(name, data_home=data_home)
    shape, test_shape, class_sizes = EXPECTED[name]
    assert dataset.data.shape == shape
    assert len(dataset.target) == shape[0]
    if test_shape is None:
        assert dataset.data_test is None
    else:
        assert dataset.data_test.shape == test_shape
        assert len(dataset.target_test) == test_shape[0]
    assert pd.Series(np.asarray(dataset.target)).value_counts().tolist() == class_sizes
    if dataset.kind == "image":
        assert dataset.data.dtype == np.float32
        assert 0 <= dataset.data.min() < dataset.data.max() <= 1
    else:
        features = dataset.make_preprocessor().fit_transform(dataset.data)
        assert not np.isnan(features).any()
        assert features.std(axis=0).max() == pytest.approx(1)


@pytest.mark.network
def test_real_adult_details(data_home):
    adult = load_dataset("adult", data_home=data_home)
    assert set(adult.target_test) == {"<=50K", ">50K"}
    assert adult.data.isna().any().to_dict() == {
        column: column in {"workclass", "occupation", "native-country"}
        for column in adult.data.columns
    }
    assert (adult.data.dtypes == "category").sum() == 8
