"""Robust Approximate Importance Sampling (RAIS).

Johnson & Guestrin, "Training Deep Models Faster with Robust, Approximate
Importance Sampling", NeurIPS 2018. One concept per module: ``_history``
(gradient-norm histories and features), ``_uncertainty`` (Proposition 4.1 and
problem PT), ``_gain`` (gain ratio), ``_norms`` (per-example gradients),
``_sampling_state`` (what RAIS samples from), ``_block`` (its bookkeeping
blocks), ``_policy`` (the sampling policy) and ``_estimator`` (the
classifier); ``docs/design.md`` lists them all.
"""

from ._estimator import RAISClassifier
from ._uncertainty import UncertaintySet

__all__ = ["RAISClassifier", "UncertaintySet"]
