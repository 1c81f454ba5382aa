"""Where the documentation lives: the "?" link of the classifiers' HTML representation.

scikit-learn's HTML representation (a notebook shows it for an estimator or a
:class:`~sklearn.pipeline.Pipeline` holding one) links each estimator to its API
page and shows each parameter's description as a tooltip, when the estimator
says where its documentation is (``_doc_link_module``, ``_doc_link_template``).
The site this repository builds (``make docs``) has one API page per
classifier, ``generated/sk_reweight.<name>.html``. It is found at, in order:

1. the URL in the environment variable ``SK_REWEIGHT_DOCS_URL`` (a hosted copy
   of the site, or any other address of its root);
2. the site built in the clone the package is imported from
   (``docs/_build/html``, as a ``file://`` URL), when ``make docs`` has built it.

Otherwise there is no link, and no tooltips, as for estimators of other
packages that do not say where their documentation is.
"""

from __future__ import annotations

import os
from pathlib import Path

DOCS_URL_VARIABLE = "SK_REWEIGHT_DOCS_URL"
"""The environment variable holding the URL of the documentation site's root."""

BUILT_SITE = Path(__file__).resolve().parents[1] / "docs" / "_build" / "html"
"""Where ``make docs`` writes the site, in a clone of the repository."""

API_PAGE = "generated/{estimator_module}.{estimator_name}.html"
"""A public name's API page, relative to the site's root (autosummary's ``generated/``)."""


def built_site_url(site: Path) -> str | None:
    """The ``file://`` URL of the site built in ``site``, or None when it has not been built."""
    return site.as_uri() + "/" if (site / "index.html").is_file() else None


def docs_root_url(site: Path | None = None) -> str | None:
    """The URL of the documentation's root, ending with ``/``, or None when there is none.

    ``SK_REWEIGHT_DOCS_URL`` when set, else the site built in ``site``
    (default :data:`BUILT_SITE`).
    """
    url = os.environ.get(DOCS_URL_VARIABLE, "").strip()
    if url:
        return url if url.endswith("/") else url + "/"
    return built_site_url(BUILT_SITE if site is None else site)


def api_page_template(site: Path | None = None) -> str:
    """scikit-learn's ``_doc_link_template`` for the API pages; empty when there is no site.

    The template keeps the placeholders ``{estimator_module}`` and
    ``{estimator_name}``, which scikit-learn fills in (``sk_reweight`` and the
    class name); braces in the root URL are escaped.
    """
    root = docs_root_url(site)
    if root is None:
        return ""
    return root.replace("{", "{{").replace("}", "}}") + API_PAGE
