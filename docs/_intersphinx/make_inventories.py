"""Write the partial intersphinx inventories of NumPy, PyTorch, skorch, skops and cvxpy.

The documentation is built with no network beyond the package registries, so
intersphinx reads inventories shipped in this folder instead of fetching them.
Three come whole from Debian's documentation packages (see ``README.md``); the
projects below publish no inventory in any package registry, so this script
writes one per project with the objects the site refers to, each mapped to the
page and anchor of that project's own documentation. Run it after adding a
reference to one of these projects::

    python docs/_intersphinx/make_inventories.py

Every entry is ``(name, role, path relative to the project's base URL)``; the
base URLs are in ``docs/conf.py``'s ``intersphinx_mapping``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

INVENTORIES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "numpy": (
        "2.3",
        [
            ("numpy.ndarray", "class", "reference/generated/numpy.ndarray.html"),
            ("numpy.random.RandomState", "class", "reference/random/legacy.html"),
            ("numpy.random.Generator", "class", "reference/random/generator.html"),
            ("numpy.argsort", "function", "reference/generated/numpy.argsort.html"),
            ("numpy.bincount", "function", "reference/generated/numpy.bincount.html"),
        ],
    ),
    "torch": (
        "2.13",
        [
            ("torch.Tensor", "class", "tensors.html"),
            ("torch.device", "class", "tensor_attributes.html"),
            ("torch.Generator", "class", "generated/torch.Generator.html"),
            ("torch.nn.Module", "class", "generated/torch.nn.Module.html"),
            ("torch.nn.Linear", "class", "generated/torch.nn.Linear.html"),
            ("torch.nn.Sequential", "class", "generated/torch.nn.Sequential.html"),
            ("torch.nn.BatchNorm2d", "class", "generated/torch.nn.BatchNorm2d.html"),
            (
                "torch.nn.functional.batch_norm",
                "function",
                "generated/torch.nn.functional.batch_norm.html",
            ),
            ("torch.optim.Optimizer", "class", "optim.html"),
            ("torch.optim.SGD", "class", "generated/torch.optim.SGD.html"),
            ("torch.optim.Adam", "class", "generated/torch.optim.Adam.html"),
            ("torch.set_num_threads", "function", "generated/torch.set_num_threads.html"),
            (
                "torch.set_flush_denormal",
                "function",
                "generated/torch.set_flush_denormal.html",
            ),
            (
                "torch.use_deterministic_algorithms",
                "function",
                "generated/torch.use_deterministic_algorithms.html",
            ),
            ("torch.cuda.is_available", "function", "generated/torch.cuda.is_available.html"),
            ("torch.func.vmap", "function", "generated/torch.func.vmap.html"),
            ("torch.autocast", "function", "amp.html#torch.autocast"),
            ("torch.amp.GradScaler", "class", "amp.html#gradient-scaling"),
        ],
    ),
    "skorch": (
        "1.2",
        [
            ("skorch.NeuralNet", "class", "net.html#skorch.net.NeuralNet"),
            (
                "skorch.NeuralNetClassifier",
                "class",
                "classifier.html#skorch.classifier.NeuralNetClassifier",
            ),
            ("skorch.History", "class", "history.html#skorch.history.History"),
            ("skorch.dataset.Dataset", "class", "dataset.html"),
            ("skorch.callbacks.Callback", "class", "callbacks.html"),
            ("skorch.callbacks.EpochScoring", "class", "callbacks.html"),
            ("skorch.callbacks.BatchScoring", "class", "callbacks.html"),
            ("skorch.callbacks.PassthroughScoring", "class", "callbacks.html"),
            ("skorch.callbacks.Checkpoint", "class", "callbacks.html"),
            ("skorch.callbacks.EarlyStopping", "class", "callbacks.html"),
            ("skorch.callbacks.LRScheduler", "class", "callbacks.html"),
            ("skorch.callbacks.ProgressBar", "class", "callbacks.html"),
        ],
    ),
    "skops": (
        "0.13",
        [
            ("skops.io.dump", "function", "modules/classes.html#skops.io.dump"),
            ("skops.io.load", "function", "modules/classes.html#skops.io.load"),
            (
                "skops.io.get_untrusted_types",
                "function",
                "modules/classes.html#skops.io.get_untrusted_types",
            ),
        ],
    ),
    "cvxpy": (
        "1.7",
        [
            ("cvxpy.Problem", "class", "api_reference/cvxpy.problems.html"),
            ("cvxpy.Problem.solve", "method", "api_reference/cvxpy.problems.html"),
        ],
    ),
}


def inventory_bytes(project: str, version: str, entries: list[tuple[str, str, str]]) -> bytes:
    """An inventory in Sphinx's version-2 format (header, then zlib-compressed lines).

    A path without ``#`` gets the object's name as its anchor (Sphinx's ``$``).
    """
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = []
    for name, role, path in sorted(entries):
        uri = path if "#" in path else f"{path}#$"
        lines.append(f"{name} py:{role} 1 {uri} -\n")
    return header.encode() + zlib.compress("".join(lines).encode())


def main() -> None:
    for project, (version, entries) in INVENTORIES.items():
        (HERE / f"{project}.inv").write_bytes(inventory_bytes(project, version, entries))


if __name__ == "__main__":
    main()
