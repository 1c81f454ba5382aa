"""The documentation site's sources: every public name has an API page, every example a home.

Building the site (``make docs``, in CI) checks the rest: nitpicky cross-references, warnings as
errors, every gallery example executed.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import sk_reweight
import sk_reweight.datasets
import sk_reweight.harness

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def documented_names() -> dict[str, set[str]]:
    """The names documented under each ``.. currentmodule::`` of docs/api.rst: listed in an
    autosummary (a page of their own) or by an ``.. autofunction::`` (on the page itself)."""
    names: dict[str, set[str]] = {}
    module = None
    in_autosummary = False
    for line in (DOCS / "api.rst").read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif match := re.match(r"\.\. autofunction:: (\w+)$", line):
            names.setdefault(module, set()).add(match.group(1))
        elif line.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary and re.match(r"   [A-Za-z_]\w*$", line):
            names.setdefault(module, set()).add(line.strip())
        elif line and not line.startswith(" "):
            in_autosummary = False
    return names


def test_every_public_name_has_an_api_page():
    names = documented_names()
    assert names["sk_reweight"] == set(sk_reweight.__all__) - {"__version__"}
    assert names["sk_reweight.datasets"] == set(sk_reweight.datasets.__all__)
    assert names["sk_reweight.harness"] == set(sk_reweight.harness.__all__)


def test_every_public_method_of_the_classifiers_is_documented():
    template = (DOCS / "_templates" / "autosummary" / "class.rst").read_text()
    # The classifiers' ``:members:`` line, RAISClassifier's extra inside a Jinja ``if``.
    members_line = re.search(r":members: (.*)", template).group(1)
    documented = set(re.findall(r"\b[a-z_]+\b", members_line))
    for classifier in (
        sk_reweight.ERMClassifier,
        sk_reweight.RGDClassifier,
        sk_reweight.RAISClassifier,
        sk_reweight.InfoBatchClassifier,
    ):
        own = {
            name
            for klass in classifier.__mro__
            if klass.__module__.startswith("sk_reweight")
            for name, value in vars(klass).items()
            # available_if methods (partial_fit) are descriptors: count them where available
            if (callable(value) or (hasattr(value, "fn") and hasattr(classifier(), name)))
            and not name.startswith("_")
        }
        assert own <= documented, (classifier.__name__, own - documented)


def test_every_user_guide_page_is_in_its_toctree():
    index = (DOCS / "user_guide" / "index.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", index, flags=re.MULTILINE))
    pages = {path.stem for path in (DOCS / "user_guide").glob("*.rst")} - {"index"}
    assert listed == pages


def test_gallery_reading_order_lists_every_example_once():
    spec = importlib.util.spec_from_file_location("gallery_order", DOCS / "gallery_order.py")
    gallery_order = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery_order)
    examples = sorted(path.name for path in (ROOT / "examples").glob("plot_*.py"))
    assert sorted(gallery_order.READING_ORDER) == examples
    assert len(set(gallery_order.READING_ORDER)) == len(examples)


def test_gallery_examples_are_scripts_with_a_title():
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 7
    for example in examples:
        source = example.read_text()
        # sphinx-gallery takes the title from the docstring's first underlined line.
        assert re.match(r'"""\n[^\n]+\n=+\n', source), example.name
        assert "savefig" not in source, f"{example.name}: the gallery captures figures itself"
