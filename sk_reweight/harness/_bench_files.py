"""What ``bench`` keeps on disk: results appended fit by fit, resumed runs, whole reports.

Each finished fit's rows are appended to ``results.csv`` and ``curves.csv`` in
one write (:func:`append_csv`); a run into the same directory keeps the fits
found complete in both (:func:`finished_fits`); every report file is written
to a temporary file and renamed (:func:`atomic_path`).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

RESULT_FILES = ("results.csv", "curves.csv")
REPORT_FILES = ("summary.md", "accuracy.png", "curves_*.png")
KEY_COLUMNS = ("dataset", "seed", "fold", "method")


def append_csv(frame: pd.DataFrame, path: Path) -> None:
    """Append ``frame`` to a CSV file (with a header when the file is new) in one write.

    The rows are encoded first and appended with a single ``write`` to a file
    opened with ``O_APPEND``, so that a process killed at any moment leaves
    the file with all of them or none (a torn line, after a power cut, is
    dropped by :func:`read_complete_csv`).
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        header = os.fstat(descriptor).st_size == 0
        content = memoryview(frame.to_csv(header=header, index=False).encode())
        while content:
            content = content[os.write(descriptor, content) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_complete_csv(path: Path) -> pd.DataFrame:
    """The complete lines of a CSV file written by :func:`append_csv` (empty if none)."""
    if not path.exists():
        return pd.DataFrame()
    content = path.read_bytes()
    content = content[: content.rfind(b"\n") + 1]
    if not content.strip():
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(content))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix) that replaces ``path`` when the block ends.

    A process stopped while the block writes leaves the previous ``path`` (or
    none), never half a file.
    """
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def fit_keys(frame: pd.DataFrame) -> set[tuple[str, int, int, str]]:
    """The (dataset, seed, fold, method) of the fits that have rows in ``frame``."""
    if frame.empty:
        return set()
    keys = frame[list(KEY_COLUMNS)].drop_duplicates().itertuples(index=False)
    return {(str(d), int(s), int(f), str(m)) for d, s, f, m in keys}


def clear_output(output: Path) -> None:
    """Delete a run's files from ``output``: results, report and ``config.json``."""
    for pattern in (*RESULT_FILES, *REPORT_FILES, "config.json"):
        for path in output.glob(pattern):
            path.unlink()


def finished_fits(
    output: Path, configuration: dict[str, Any], overwrite: bool
) -> set[tuple[str, int, int, str]]:
    """The fits of an earlier run into ``output`` that this run keeps.

    A fit is finished when it has rows in both ``results.csv`` and
    ``curves.csv``; the rows of unfinished fits (and torn lines) are removed
    from both files. A directory with results of another configuration (or
    whose ``config.json`` is missing or unreadable) raises :class:`ValueError`,
    unless ``overwrite``, which deletes them.
    """
    if overwrite:
        clear_output(output)
        return set()
    paths = [output / name for name in RESULT_FILES]
    if not any(path.exists() and path.stat().st_size for path in paths):
        return set()
    try:
        previous = json.loads((output / "config.json").read_text())["configuration"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = None
    if previous != configuration:
        differences = (
            ["config.json is missing or unreadable"]
            if not isinstance(previous, dict)
            else [
                key
                for key in sorted(set(previous) | set(configuration))
                if previous.get(key) != configuration.get(key)
            ]
        )
        raise ValueError(
            f"{output} holds the results of another run (it differs in: "
            f"{', '.join(differences)}). Pass another --output, or --overwrite to delete them."
        )
    results, curves = (read_complete_csv(path) for path in paths)
    finished = fit_keys(results) & fit_keys(curves)
    for path, frame in zip(paths, (results, curves), strict=True):
        keep = [key in finished for key in fit_row_keys(frame)]
        torn = path.exists() and not path.read_bytes().endswith(b"\n")
        if not all(keep) or torn:
            write_text_atomically(path, frame[keep].to_csv(index=False) if any(keep) else "")
    return finished


def fit_row_keys(frame: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """The (dataset, seed, fold, method) of each row of ``frame``."""
    if frame.empty:
        return []
    rows = frame[list(KEY_COLUMNS)].itertuples(index=False)
    return [(str(d), int(s), int(f), str(m)) for d, s, f, m in rows]
