"""scikit-learn's common estimator checks, with the expected failures declared in one place."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_reweight import (
    ERMClassifier,
    InfoBatchClassifier,
    RAISClassifier,
    ReweightingClassifier,
    RGDClassifier,
)

from .custom_policies import FocalPolicy

# Each entry: check name -> why it cannot pass for a stochastic minibatch trainer.
# Precedent: scikit-learn marks the same checks as expected failures for SGDClassifier.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "Minibatch training: an example of weight 2 is not the same as a repeated row, "
        "because the repeated row changes the composition and number of minibatches."
    ),
    # Declared non-strictly: whether it passes depends on the fitted weights and the machine.
    "check_methods_subset_invariance": (
        "float32 CPU matrix products may round differently for different numbers of rows "
        "(BLAS picks other kernels), so predictions on a subset can differ by 1e-7 relative."
    ),
}

ESTIMATORS = [
    ERMClassifier(max_epochs=30, random_state=0, device="cpu"),
    RGDClassifier(max_epochs=30, random_state=0, device="cpu"),
    RGDClassifier(
        weighting="normalized_exp",
        early_stopping=True,
        max_epochs=30,
        random_state=0,
        device="cpu",
    ),
    RAISClassifier(max_epochs=30, random_state=0, device="cpu"),
    InfoBatchClassifier(max_epochs=30, random_state=0, device="cpu"),
    ReweightingClassifier(FocalPolicy(gamma=1.0), max_epochs=30, random_state=0, device="cpu"),
]


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


# The checks fit 30 epochs on small data, whose training loss is still improving: the stopping
# rule's warning that max_epochs came first is expected here (and only this one is ignored).
@pytest.mark.filterwarnings(
    "ignore:.* reached max_epochs=30 while:sklearn.exceptions.ConvergenceWarning"
)
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
