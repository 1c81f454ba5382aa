"""The classifiers repeat the base class's parameters: order, defaults and docs stay in step."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from sk_reweight import (
    ERMClassifier,
    InfoBatchClassifier,
    RAISClassifier,
    ReweightingClassifier,
    RGDClassifier,
)
from sk_reweight._base import BaseReweightingClassifier
from sk_reweight._rais._estimator import PAPER_DEFAULTS
from sk_reweight._shared_docs import SHARED_PARAMETERS_DOC

SHARED = list(inspect.signature(BaseReweightingClassifier).parameters.values())

DEFAULT_OVERRIDES = {
    ERMClassifier: {},
    RGDClassifier: {},
    RAISClassifier: PAPER_DEFAULTS,
    InfoBatchClassifier: {},
    ReweightingClassifier: {},
}
"""The shared defaults each classifier deliberately changes."""


def documented_defaults(section: str) -> list[tuple[str, object]]:
    """``(name, default)`` of every ``name : type, default=value`` line, in order."""
    entries = re.findall(r"^    (\w+) : .*, default=(.+)$", section, flags=re.MULTILINE)
    return [(name, ast.literal_eval(default)) for name, default in entries]


def test_the_shared_documentation_lists_the_base_parameters_and_defaults():
    assert documented_defaults(SHARED_PARAMETERS_DOC) == [(p.name, p.default) for p in SHARED]


@pytest.mark.parametrize("classifier", list(DEFAULT_OVERRIDES))
def test_shared_parameters_keep_order_kind_annotation_and_default(classifier):
    parameters = list(inspect.signature(classifier).parameters.values())
    own, shared = parameters[: -len(SHARED)], parameters[-len(SHARED) :]
    overrides = DEFAULT_OVERRIDES[classifier]
    expected = [p.replace(default=overrides.get(p.name, p.default)) for p in SHARED]
    assert shared == expected
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in own)
    assert set(classifier._parameter_constraints) == {p.name for p in parameters}


@pytest.mark.parametrize("classifier", list(DEFAULT_OVERRIDES))
def test_the_docstring_holds_the_shared_documentation_and_names_changed_defaults(classifier):
    assert SHARED_PARAMETERS_DOC.rstrip() in classifier.__doc__
    for name, default in DEFAULT_OVERRIDES[classifier].items():
        assert f"``{name}={default!r}``" in classifier.__doc__
