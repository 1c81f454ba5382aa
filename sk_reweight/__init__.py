"""scikit-learn classifiers that train PyTorch networks while reweighting examples by difficulty.

- :class:`ERMClassifier`: plain empirical risk minimisation, the baseline.
- :class:`RGDClassifier`: Stochastic Re-weighted Gradient Descent (KL-DRO).
- :class:`RAISClassifier`: Robust Approximate Importance Sampling (RAIS-SGD).
"""

from ._erm import ERMClassifier
from ._rais import RAISClassifier, UncertaintySet
from ._rgd import RGDClassifier, rgd_weights

__version__ = "0.1.0"

__all__ = [
    "ERMClassifier",
    "RAISClassifier",
    "RGDClassifier",
    "UncertaintySet",
    "__version__",
    "rgd_weights",
]
