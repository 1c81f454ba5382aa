"""The embedded demonstration: ERM against RGD, cross-validated on scikit-learn's bundled data."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import ClassifierMixin, clone
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._erm import ERMClassifier
from ._rgd import RGDClassifier

DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "digits": lambda: load_digits(return_X_y=True),
}


def demo_methods(max_epochs: int = 50) -> dict[str, ClassifierMixin]:
    """ERM and RGD with the same network, optimizer and budget, behind a StandardScaler."""
    shared = {"max_epochs": max_epochs, "device": "cpu"}
    return {
        "ERM": make_pipeline(StandardScaler(), ERMClassifier(**shared)),
        "RGD": make_pipeline(StandardScaler(), RGDClassifier(**shared)),
    }


def cross_validate_methods(
    X: np.ndarray,
    y: np.ndarray,
    methods: dict[str, ClassifierMixin],
    n_splits: int = 5,
    n_repeats: int = 2,
    random_state: int = 0,
) -> pd.DataFrame:
    """Test accuracy and fit time of every method on the same folds, with the same seed per fold.

    Returns one row per (fold, method), so that methods can be compared fold by fold.
    """
    folds = RepeatedStratifiedKFold(
        n_splits=n_splits, n_repeats=n_repeats, random_state=random_state
    ).split(X, y)
    rows = []
    for fold, (train, test) in enumerate(folds):
        for name, method in methods.items():
            model = clone(method).set_params(**{f"{method.steps[-1][0]}__random_state": fold})
            start = time.perf_counter()
            model.fit(X[train], y[train])
            fit_seconds = time.perf_counter() - start
            rows.append(
                {
                    "fold": fold,
                    "method": name,
                    "accuracy": model.score(X[test], y[test]),
                    "fit_seconds": fit_seconds,
                }
            )
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, baseline: str = "ERM") -> pd.DataFrame:
    """Mean and standard deviation per method, and the paired difference to ``baseline``.

    The p-value is the two-sided paired t-test over folds (folds of repeated
    cross-validation overlap, so it is optimistic; read it as a guide).
    """
    accuracy = results.pivot(index="fold", columns="method", values="accuracy")
    rows = []
    for method in accuracy.columns:
        difference = accuracy[method] - accuracy[baseline]
        paired = method != baseline and difference.abs().sum() > 0
        rows.append(
            {
                "method": method,
                "accuracy": f"{accuracy[method].mean():.4f} ± {accuracy[method].std():.4f}",
                f"vs {baseline}": f"{difference.mean():+.4f}" if method != baseline else "",
                "p-value": f"{stats.ttest_rel(accuracy[method], accuracy[baseline]).pvalue:.3f}"
                if paired
                else "",
                "fit s": f"{results.loc[results['method'] == method, 'fit_seconds'].mean():.2f}",
            }
        )
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """Render a DataFrame (index included) as a GitHub-flavoured Markdown table."""
    frame = frame.reset_index()
    lines = [
        "| " + " | ".join(map(str, frame.columns)) + " |",
        "|" + "|".join("---" for _ in frame.columns) + "|",
        *("| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)),
    ]
    return "\n".join(lines)


def run_demo(n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50) -> pd.DataFrame:
    """Cross-validate ERM and RGD on breast_cancer and digits and print a Markdown table."""
    tables = []
    for dataset, load in DATASETS.items():
        X, y = load()
        results = cross_validate_methods(X, y, demo_methods(max_epochs), n_splits, n_repeats)
        tables.append(summarise(results).assign(dataset=dataset))
    table = pd.concat(tables).set_index(["dataset", "method"])
    print(
        f"ERM vs RGD (tau={RGDClassifier().tau}), MLP (100,), Adam lr=1e-3, {max_epochs} epochs, "
        f"{n_repeats}x{n_splits}-fold stratified CV, same seed per fold for both methods\n"
    )
    print(markdown_table(table))
    return table
