"""The benchmark harness: ``sk-reweight demo | bench | speed`` and what they share.

Method registry, paired cross-validation, learning curves, reports, plots and
provenance records. The harness is a client of the library: it imports only
public names (``sk_reweight``'s and ``sk_reweight.datasets``'), never a private
``sk_reweight._...`` module; ``tests/test_layout.py`` checks it. ``bench`` and
``speed`` draw their plots with matplotlib, which comes with the ``bench``
extra (``pip install "sk-reweight[bench]"``); ``demo`` needs nothing beyond
the library.
"""

from ._cli import main

__all__ = ["main"]
