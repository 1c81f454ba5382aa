"""Sphinx configuration of sk_reweight's documentation site.

Build with ``make docs`` (``sphinx-build -n -W --keep-going docs docs/_build/html``):
nitpicky, every warning an error, and no network. Intersphinx reads the
inventories shipped in ``docs/_intersphinx/`` and MathJax is served from
``docs/_static/mathjax/``, so the pages render formulas when opened offline.

``SK_REWEIGHT_DOCS_EXAMPLES`` (a regular expression over example paths)
restricts which gallery examples are executed; the others are rendered
without their output. CI sets it to the fast ones.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import torch
from sphinx.pycode import ModuleAnalyzer

import sk_reweight

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # gallery_order

project = "sk_reweight"
author = "the sk_reweight developers"
copyright = "the sk_reweight developers"
release = sk_reweight.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_intersphinx", "results", "auto_examples/*.ipynb", "**.md5"]
templates_path = ["_templates"]
nitpicky = True

# -- MathJax, vendored from its npm package (mathjax 3.2.2, Apache-2.0) -----
mathjax_path = "mathjax/tex-chtml.js"

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False



def _attribute_docstring(app, what, name, obj, options, lines):
    """Give a re-exported constant the docstring written under it where it is defined.

    autodoc looks for ``TRUSTED_TYPES``'s docstring in ``sk_reweight/__init__.py``, which only
    imports it, and would show ``list``'s; the docstring is in the private module.
    """
    if what != "data" or not name.startswith("sk_reweight."):
        return
    attribute = name.rsplit(".", 1)[1]
    for module_name, module in sorted(sys.modules.items()):
        if module_name.startswith("sk_reweight.") and getattr(module, attribute, None) is obj:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
            if ("", attribute) in docs:
                lines[:] = list(docs["", attribute])
                return


def setup(app):
    app.connect("autodoc-process-docstring", _attribute_docstring)


# -- MyST: docs/design.md and docs/benchmarks.md as they are ----------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- intersphinx: inventories shipped in docs/_intersphinx (no network) -----
# sklearn, python, pandas: Debian's documentation packages (python-sklearn-doc
# 1.2.1, python3.11-doc, python-pandas-doc 1.5.3); numpy, torch, skorch, skops, cvxpy:
# written by docs/_intersphinx/make_inventories.py (see its docstring).
_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "sklearn": "https://scikit-learn.org/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "numpy": "https://numpy.org/doc/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "skorch": "https://skorch.readthedocs.io/en/stable/",
    "skops": "https://skops.readthedocs.io/en/stable/",
    "cvxpy": "https://www.cvxpy.org/",
}
intersphinx_mapping = {
    name: (url, str(DOCS / "_intersphinx" / f"{name}.inv")) for name, url in _INVENTORIES.items()
}
intersphinx_timeout = 1

# -- sphinx-gallery over examples/ -----------------------------------------
_executed = os.environ.get("SK_REWEIGHT_DOCS_EXAMPLES", r"/plot_")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _executed,
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
    # The timing tables load DataTables from a CDN; each example page states its own time.
    "write_computation_times": False,
    "within_subsection_order": "gallery_order.ReadingOrder",
    "doc_module": ("sk_reweight",),
    "reference_url": {"sk_reweight": None},
    "backreferences_dir": "generated/backreferences",
    "plot_gallery": "True",
}
# The examples run in this process. Their networks are small, so one torch thread is as fast
# as two on an idle machine, and it keeps the build from slowing down many-fold (oversubscribed
# OpenMP kernels) when other processes share the cores: measured 15 min with torch's default
# threads on a shared 2-core machine, against 10-16 s of CPU per example with one.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_reweight {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "design": [], "benchmarks": []}
html_context = {"default_mode": "light"}

