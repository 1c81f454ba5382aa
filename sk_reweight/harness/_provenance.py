"""What a benchmark run records next to its results so that it can be reproduced."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "torch", "skorch", "matplotlib")


def package_versions() -> dict[str, str | None]:
    """Installed versions of Python, sk_reweight and the libraries the results depend on."""
    from sk_reweight import __version__

    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions["sk_reweight"] = __version__
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git_commit() -> str | None:
    """The commit of the source tree sk_reweight is imported from (None outside a git checkout).

    A ``+dirty`` suffix marks uncommitted changes.
    """
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if status.strip() else "")


def device_description(device: str) -> dict[str, Any]:
    """The requested device, the CPU threads torch uses and, on CUDA, the GPU's name."""
    description: dict[str, Any] = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        description["cuda_device"] = torch.cuda.get_device_name()
    return description


def run_record(argv: list[str], arguments: dict[str, Any], device: str) -> dict[str, Any]:
    """The configuration record of a run: command line, arguments, versions, platform, device."""
    return {
        "command": shlex.join(["sk-reweight", *argv]),
        "arguments": arguments,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        **device_description(device),
    }


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as indented JSON (non-JSON values as their ``str``).

    Through a temporary file and a rename: a process stopped while writing
    leaves the previous file.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(temporary, path)
