"""Paired cross-validated comparison and its significance test, against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.harness._evaluation import (
    classification_scores,
    compare_methods,
    compare_to_baseline,
    corrected_ttest,
    cross_validate_methods,
    holdout,
    markdown_table,
    stratified_folds,
    training_seed,
    with_random_state,
)

differences_strategy = arrays(
    np.float64, st.integers(3, 30), elements=st.floats(-0.2, 0.2, allow_nan=False)
).filter(lambda d: d.var(ddof=1) > 1e-12)


@given(differences_strategy)
def test_uncorrected_limit_is_scipys_one_sample_t_test(differences):
    expected = stats.ttest_1samp(differences, 0.0).pvalue
    assert corrected_ttest(differences, 0.0) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(differences_strategy, st.floats(0.05, 1.0))
def test_correction_only_makes_the_test_more_conservative(differences, test_over_train):
    assert corrected_ttest(differences, test_over_train) >= corrected_ttest(differences, 0.0)


def test_corrected_statistic_by_hand():
    differences = np.array([0.01, 0.02, 0.0, 0.03, 0.01])
    variance = (1 / 5 + 0.25) * differences.var(ddof=1)
    t = differences.mean() / np.sqrt(variance)
    expected = 2 * stats.t.sf(t, df=4)
    assert corrected_ttest(differences, 0.25) == pytest.approx(expected, rel=1e-12)
    assert corrected_ttest(np.zeros(4), 0.25) == 1.0


def test_compare_to_baseline_counts_and_paired_test():
    baseline = np.array([0.90, 0.80, 0.85, 0.70])
    scores = np.array([0.92, 0.80, 0.84, 0.75])
    comparison = compare_to_baseline(scores, baseline, 1 / 3)
    assert (comparison.wins, comparison.ties, comparison.losses) == (2, 1, 1)
    assert comparison.difference == pytest.approx(0.015)
    assert comparison.p_ttest == pytest.approx(stats.ttest_rel(scores, baseline).pvalue)
    assert comparison.std == pytest.approx(np.std(scores, ddof=1))
    identical = compare_to_baseline(baseline, baseline, 1 / 3)
    assert identical.p_ttest == identical.p_corrected == 1.0


def test_cross_validation_pairs_methods_by_seed(breast_cancer):
    X, y = breast_cancer
    shared = {"max_epochs": 3, "device": "cpu"}
    methods = {
        "ERM": ERMClassifier(**shared),
        "ERM again": ERMClassifier(**shared),
        "scaled RGD": make_pipeline(StandardScaler(), RGDClassifier(**shared)),
    }
    results = cross_validate_methods(X, y, methods, 3, seeds=[0, 1])
    assert list(results.columns) == ["seed", "fold", "method", "accuracy", "fit_seconds"]
    assert len(results) == 18
    comparisons = compare_methods(results, "ERM", 0.5)
    # The same model with the same seed on each fold: every fold is a tie.
    assert comparisons["ERM again"].ties == 6
    assert set(comparisons) == {"ERM", "ERM again", "scaled RGD"}
    assert 0.85 < comparisons["scaled RGD"].mean <= 1


def test_with_random_state_reaches_the_pipelines_classifier():
    model = with_random_state(make_pipeline(StandardScaler(), ERMClassifier()), 7)
    assert model[-1].random_state == 7
    assert with_random_state(RGDClassifier(), 3).random_state == 3


def test_markdown_table():
    import pandas as pd

    table = markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]


@given(
    arrays(np.float64, st.integers(3, 20), elements=st.floats(0, 1, allow_nan=False)),
    st.data(),
)
def test_uncorrected_limit_is_scipys_paired_t_test(baseline, data):
    scores = data.draw(arrays(np.float64, len(baseline), elements=st.floats(0, 1)))
    differences = scores - baseline
    if differences.var(ddof=1) < 1e-12:
        return
    expected = stats.ttest_rel(scores, baseline).pvalue
    assert corrected_ttest(differences, 0.0) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_classification_scores_by_hand():
    y_true = np.array([0, 0, 1, 2])
    proba = np.array(
        [[0.8, 0.1, 0.1, 0], [0.3, 0.6, 0.1, 0], [0.2, 0.7, 0.1, 0], [0.1, 0.1, 0.8, 0]]
    )
    scores = classification_scores(y_true, proba, labels=[0, 1, 2, 3])
    assert scores["accuracy"] == pytest.approx(3 / 4)
    # Recalls: class 0 1/2, class 1 1/1, class 2 1/1 (class 3 absent from y_true).
    assert scores["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    expected_log_loss = -np.mean(np.log([0.8, 0.3, 0.7, 0.8]))
    assert scores["log_loss"] == pytest.approx(expected_log_loss)
    # F1: class 0 2/3 (p=1, r=1/2), class 1 2/3 (p=1/2, r=1), class 2 1, class 3 0.
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)


def test_compare_methods_pairs_repeated_folds_and_skips_unfinished_ones():
    import pandas as pd

    rows = [
        {"seed": s, "fold": f, "method": m, "accuracy": a, "log_loss": 0.0}
        for (s, f, m, a) in [
            (0, 0, "erm", 0.80),
            (0, 0, "rgd", 0.82),
            (0, 1, "erm", 0.70),
            (0, 1, "rgd", 0.70),
            (1, 0, "erm", 0.90),
            (1, 0, "rgd", 0.85),
            (1, 1, "erm", 0.60),  # rgd never finished this fold
        ]
    ]
    comparisons = compare_methods(pd.DataFrame(rows), "erm", 0.5, "accuracy", ["seed", "fold"])
    rgd = comparisons["rgd"]
    assert (rgd.wins, rgd.ties, rgd.losses) == (1, 1, 1)
    assert rgd.difference == pytest.approx((0.02 + 0.0 - 0.05) / 3)
    assert rgd.p_corrected == pytest.approx(corrected_ttest([0.02, 0.0, -0.05], 0.5))
    assert comparisons["erm"].mean == pytest.approx(0.8)


@given(
    st.lists(st.integers(0, 2), min_size=12, max_size=60).filter(
        lambda labels: min(np.bincount(labels, minlength=3)) >= 4
    ),
    st.integers(2, 4),
    st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True),
)
def test_the_folds_partition_the_rows_and_every_fold_has_its_own_seed(labels, n_splits, seeds):
    y = np.array(labels)
    folds = list(stratified_folds(y, n_splits, seeds))
    assert len(folds) == n_splits * len(seeds)
    for seed in seeds:
        tests = [fold.test for fold in folds if fold.seed == seed]
        assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(len(y)))
        for fold in (fold for fold in folds if fold.seed == seed):
            assert np.intersect1d(fold.train, fold.test).size == 0
            assert len(fold.train) + len(fold.test) == len(y)
    training_seeds = [fold.training_seed for fold in folds]
    assert len(set(training_seeds)) == len(training_seeds)


def test_a_holdout_is_the_first_of_five_folds_and_a_fold_index_is_bounded():
    y = np.repeat([0, 1], 50)
    split = holdout(y, 7)
    assert (split.seed, split.fold, split.training_seed) == (7, 0, 7000)
    assert len(split.test) == 20
    with pytest.raises(ValueError, match="fold must be in"):
        training_seed(0, 1000)
