"""scikit-learn's common estimator checks, with the expected failures declared in one place."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

# Each entry: check name -> why it cannot pass for a stochastic minibatch trainer.
# Precedent: scikit-learn marks the same checks as expected failures for SGDClassifier.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "Minibatch training: an example of weight 2 is not the same as a repeated row, "
        "because the repeated row changes the composition and number of minibatches."
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
    RAISClassifier(lr=0.05, max_epochs=30, random_state=0, device="cpu"),
]


# float32 matrix products on CPU may round differently for different numbers of rows
# (BLAS picks other kernels), so predictions on a subset can differ in the 7th digit.
# ERM's and RGD's fitted networks happen to meet the check's 1e-7 tolerance; RAIS's does not.
FLOAT32_SUBSET_ROUNDING = {
    "check_methods_subset_invariance": (
        "float32 CPU matmuls round differently for different batch sizes (1e-7 relative)."
    ),
}


def expected_failed_checks(estimator):
    if isinstance(estimator, RAISClassifier):
        return {**EXPECTED_FAILED_CHECKS, **FLOAT32_SUBSET_ROUNDING}
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
