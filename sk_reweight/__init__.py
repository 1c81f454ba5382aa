"""scikit-learn classifiers that train PyTorch networks while reweighting examples by difficulty.

- :class:`ERMClassifier`: plain empirical risk minimisation, the baseline.
- :class:`RGDClassifier`: Stochastic Re-weighted Gradient Descent (KL-DRO).
- :class:`RAISClassifier`: Robust Approximate Importance Sampling (RAIS-SGD).
- :class:`InfoBatchClassifier`: InfoBatch, unbiased dynamic pruning of well-learned examples.
- :class:`ReweightingClassifier`: the same engine under a :class:`MinibatchPolicy` of your own.
- :class:`MinibatchPolicy`, :class:`TrainingStep`: how a training method draws minibatches and
  weights their losses, the extension point for new methods.
- :func:`default_module`: the network the classifiers build when ``module`` is ``None``.
- :func:`resolve_device`: the torch device a ``device`` parameter names, checked on this machine.
- :func:`sigint_recorded`: the Ctrl-C handling of their training, for other training loops.
- :class:`TrainingCheckpoint`: a callback that makes a long fit resumable after a crash.
- :data:`TRUSTED_TYPES`: the package's types to trust in ``skops.io.load`` of a saved classifier.

The benchmark harness (``sk-reweight demo | bench | speed``) lives in :mod:`sk_reweight.harness`
and uses only these public names and :mod:`sk_reweight.datasets`.
"""

from ._checkpoint import TrainingCheckpoint
from ._devices import resolve_device
from ._engine import sigint_recorded
from ._erm import ERMClassifier
from ._infobatch import InfoBatchClassifier
from ._modules import default_module
from ._persistence import TRUSTED_TYPES
from ._policies import MinibatchPolicy, TrainingStep
from ._rais import RAISClassifier, UncertaintySet
from ._reweighting import ReweightingClassifier
from ._rgd import RGDClassifier, rgd_weights

__version__ = "0.1.0"

__all__ = [
    "TRUSTED_TYPES",
    "ERMClassifier",
    "InfoBatchClassifier",
    "MinibatchPolicy",
    "RAISClassifier",
    "RGDClassifier",
    "ReweightingClassifier",
    "TrainingCheckpoint",
    "TrainingStep",
    "UncertaintySet",
    "__version__",
    "default_module",
    "resolve_device",
    "rgd_weights",
    "sigint_recorded",
]
