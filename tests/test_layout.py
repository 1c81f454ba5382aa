"""The package's layout: the harness is a client of the library's public names, the policies
do not depend on the engine, and importing the library loads no optional heavyweight."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sk_reweight

PACKAGE = Path(sk_reweight.__file__).parent
HARNESS = "sk_reweight.harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module and name that ``path`` imports, made absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_private_library_name(name: str) -> bool:
    parts = name.split(".")
    if parts[0] != "sk_reweight" or name == HARNESS or name.startswith(HARNESS + "."):
        return False
    return any(part.startswith("_") and part != "__version__" for part in parts[1:])


HARNESS_MODULES = sorted((PACKAGE / "harness").glob("*.py"))


def test_the_harness_exists():
    names = {path.stem for path in HARNESS_MODULES}
    assert {"_bench", "_speed", "_methods", "_demo", "_cli"} <= names


@pytest.mark.parametrize("path", HARNESS_MODULES, ids=lambda path: path.name)
def test_the_harness_imports_only_public_library_names(path):
    private = [
        f"{path.name}:{line}: {name}"
        for line, name in imports(path)
        if is_private_library_name(name)
    ]
    assert not private, "the harness imports private library names:\n" + "\n".join(private)


def test_the_import_check_sees_private_names():
    """The check above is not vacuous: relative, absolute and from-imports all count."""
    assert is_private_library_name("sk_reweight._engine.sigint_recorded")
    assert is_private_library_name("sk_reweight._rais")
    assert is_private_library_name("sk_reweight.datasets._cache")
    assert not is_private_library_name("sk_reweight.ERMClassifier")
    assert not is_private_library_name("sk_reweight.__version__")
    assert not is_private_library_name("sk_reweight.datasets.load_dataset")
    assert not is_private_library_name("sk_reweight.harness._bench")
    names = [name for _, name in imports(PACKAGE / "harness" / "_bench.py")]
    assert "sk_reweight.harness._curves.learning_curve" in names
    names = [name for _, name in imports(PACKAGE / "_rais" / "_policy.py")]
    assert "sk_reweight._data.TensorDataset" in names


def test_the_library_does_not_import_the_harness():
    library = [path for path in PACKAGE.rglob("*.py") if "harness" not in path.parts]
    offending = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for path in library
        if path.name != "__main__.py"
        for line, name in imports(path)
        if name == HARNESS or name.startswith(HARNESS + ".")
    ]
    assert not offending, "\n".join(offending)


def test_the_policies_do_not_import_the_engine():
    names = [name for _, name in imports(PACKAGE / "_policies.py")]
    assert not [name for name in names if name.startswith("sk_reweight._engine")]
    assert "sk_reweight._data.TensorDataset" in names


def loaded_heavyweights(modules: str) -> list[str]:
    """Which of cvxpy, matplotlib, dask and distributed importing ``modules`` loads."""
    code = (
        f"import sys, {modules}\n"
        "heavy = {'cvxpy', 'matplotlib', 'dask', 'distributed'}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "print(' '.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


LIBRARY_MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "harness" not in path.parts)


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Which modules of ``paths`` each imports, type-only imports included."""
    modules = {module_name(path): path for path in paths}
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for _, imported in imports(path):
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):  # the longest prefix that is a module
                target = ".".join(parts[:end])
                if target in modules:
                    if target != name:
                        graph[name].add(target)
                    break
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_library_has_no_import_cycle_not_even_for_type_hints():
    found = cycles(import_graph(LIBRARY_MODULES))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in found)


def test_the_cycle_check_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # Type-only imports count: _policies imports _data under TYPE_CHECKING.
    assert "sk_reweight._data" in import_graph(LIBRARY_MODULES)["sk_reweight._policies"]


def library_classes() -> list[type]:
    """Every class defined in the library's modules (the harness apart)."""
    import importlib
    import inspect

    found = []
    for path in LIBRARY_MODULES:
        module = importlib.import_module(module_name(path))
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and value.__module__ == module.__name__
        ]
    return found


ALLOWED_PRIVATE_OVERRIDES = {"_default_callbacks"}
"""skorch's classifiers override this property themselves: it is meant to be overridden."""


def test_no_private_skorch_method_is_overridden():
    overridden = []
    for cls in library_classes():
        for name in vars(cls):
            private = name.startswith("_") and not name.startswith("__")
            if not private or name in ALLOWED_PRIVATE_OVERRIDES:
                continue
            owners = [base for base in cls.__mro__[1:] if name in vars(base)]
            if owners and owners[0].__module__.startswith("skorch"):
                overridden.append(f"{cls.__qualname__}.{name} (from {owners[0].__module__})")
    assert not overridden, "private skorch methods overridden:\n" + "\n".join(overridden)
    assert any(cls.__name__ == "ReweightingNet" for cls in library_classes())


MODULE_LINES, CLASS_LINES = 650, 450
"""The size limits of the library's modules and classes (issue 19)."""


def test_library_modules_and_classes_stay_small():
    too_large = []
    for path in LIBRARY_MODULES:
        text = path.read_text()
        if len(text.splitlines()) > MODULE_LINES:
            too_large.append(f"{path.relative_to(PACKAGE)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LINES:
                lines = node.end_lineno - node.lineno + 1
                too_large.append(f"{path.relative_to(PACKAGE)}: class {node.name}, {lines} lines")
    assert not too_large, "\n".join(too_large)


def test_importing_the_library_loads_no_optional_heavyweight():
    """Neither cvxpy, matplotlib (the `bench` extra) nor dask / distributed (the `dist` extra);
    nor does the demo's code, which prints tables and so runs without the `bench` extra."""
    assert loaded_heavyweights("sk_reweight, sk_reweight.harness") == []
    assert loaded_heavyweights("sk_reweight.harness._demo") == []


def project_table() -> dict:
    """The ``[project]`` table of pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0] for requirement in requirements}


def test_matplotlib_is_an_extra_not_a_dependency():
    """`pip install sk-reweight` gives the estimators; the benchmark's plots come with `[bench]`
    (and with `[dev]`, which `make test` and `make demo` install, and `[docs]`, the gallery's)."""
    project = project_table()
    assert "matplotlib" not in requirement_names(project["dependencies"])
    assert {"torch", "skorch", "scikit-learn"} <= requirement_names(project["dependencies"])
    for extra in ("bench", "dev", "docs"):
        assert "matplotlib" in requirement_names(project["optional-dependencies"][extra]), extra
