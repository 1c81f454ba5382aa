"""The embedded demonstration: ERM against RGD, cross-validated on scikit-learn's bundled data."""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._erm import ERMClassifier
from ._evaluation import compare_methods, cross_validate_methods, markdown_table
from ._rgd import RGDClassifier

DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits}


def demo_methods(max_epochs: int = 50) -> dict[str, BaseEstimator]:
    """ERM and RGD with the same network, optimizer and budget, behind a StandardScaler."""
    shared = {"max_epochs": max_epochs, "device": "cpu"}
    return {
        "ERM": make_pipeline(StandardScaler(), ERMClassifier(**shared)),
        "RGD": make_pipeline(StandardScaler(), RGDClassifier(**shared)),
    }


def run_demo(n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50) -> pd.DataFrame:
    """Cross-validate ERM and RGD on breast_cancer and digits and print a Markdown table.

    Returns
    -------
    table : DataFrame
        One row per dataset and method: accuracy, paired difference to ERM,
        wins/ties/losses over folds, corrected p-value, median fit time.
    """
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=0)
    rows = []
    for dataset, load in DATASETS.items():
        X, y = load(return_X_y=True)
        results = cross_validate_methods(X, y, demo_methods(max_epochs), cv)
        # The median ignores the first fit of the process, which imports torch._dynamo (~1 s).
        fit_seconds = results.groupby("method")["fit_seconds"].median()
        for method, c in compare_methods(results, "ERM", 1 / (n_splits - 1)).items():
            is_baseline = method == "ERM"
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "accuracy": f"{c.mean:.4f} ± {c.std:.4f}",
                    "vs ERM": "" if is_baseline else f"{c.difference:+.4f}",
                    "W/T/L": "" if is_baseline else f"{c.wins}/{c.ties}/{c.losses}",
                    "p (corrected)": "" if is_baseline else f"{c.p_corrected:.3f}",
                    "fit s (median)": f"{fit_seconds[method]:.2f}",
                }
            )
    table = pd.DataFrame(rows)
    print(
        f"ERM vs RGD (tau={RGDClassifier().tau:g}): MLP (100,), Adam lr=1e-3, {max_epochs} "
        f"epochs; {n_repeats} x {n_splits}-fold stratified CV, both methods with the same seed "
        "on each fold; p: Nadeau-Bengio corrected paired t-test over folds.\n"
    )
    print(markdown_table(table))
    return table
