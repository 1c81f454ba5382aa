"""scikit-learn classifiers that train PyTorch networks while reweighting examples by difficulty.

- :class:`ERMClassifier`: plain empirical risk minimisation, the baseline.
- :class:`RGDClassifier`: Stochastic Re-weighted Gradient Descent (KL-DRO).
- :class:`RAISClassifier`: Robust Approximate Importance Sampling (RAIS-SGD).
- :func:`default_module`: the network the classifiers build when ``module`` is ``None``.
- :func:`sigint_recorded`: the Ctrl-C handling of their training, for other training loops.

The benchmark harness (``sk-reweight demo | bench | speed``) lives in :mod:`sk_reweight.harness`
and uses only these public names and :mod:`sk_reweight.datasets`.
"""

from ._engine import sigint_recorded
from ._erm import ERMClassifier
from ._modules import default_module
from ._rais import RAISClassifier, UncertaintySet
from ._rgd import RGDClassifier, rgd_weights

__version__ = "0.1.0"

__all__ = [
    "ERMClassifier",
    "RAISClassifier",
    "RGDClassifier",
    "UncertaintySet",
    "__version__",
    "default_module",
    "rgd_weights",
    "sigint_recorded",
]
