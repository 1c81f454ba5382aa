"""The Markdown report of a benchmark: scores per dataset and method, and paired significance.

The input is the benchmark's results table, one row per (dataset, split,
seed, fold, method) with the scores of :data:`~sk_reweight.harness._evaluation.METRICS`
and the fit time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._evaluation import METRICS, compare_methods, markdown_table

FOLD_COLUMNS = ["seed", "fold"]
REPORTED = [*METRICS, "fit_seconds"]
TESTED_METRICS = ("accuracy", "balanced_accuracy")
"""Metrics whose paired differences to the baseline are tested."""


def _mean_std(values: pd.Series) -> str:
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.4f} ± {std:.4f}"


def score_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ± standard deviation over folds of every metric, per dataset, split and method."""
    groups = results.groupby(["dataset", "split", "method"], sort=False)
    table = groups[REPORTED].agg(_mean_std)
    table.insert(0, "folds", groups.size())
    return in_run_order(table.reset_index(), ["dataset", "split", "method"], results)


def significance_table(results: pd.DataFrame, baselines: Sequence[str]) -> pd.DataFrame:
    """Paired tests of the methods against each baseline, per dataset, split and metric.

    Every method is tested against every baseline of the run except the
    baselines listed before it (each pair once). The Nadeau-Bengio correction
    uses the ratio of the mean test-set size to the mean training-set size of
    the baseline's folds (``1 / (K - 1)`` for K-fold cross-validation). Only
    folds that every method finished count.

    Returns
    -------
    table : DataFrame
        Columns ``dataset``, ``split``, ``metric``, ``baseline``, ``method``,
        ``folds``, ``Δ (pp)`` (mean paired difference in percentage points),
        ``W/T/L``, ``p (t-test)`` and ``p (corrected)``. Empty without a
        baseline.
    """
    rows = []
    for (dataset, split), frame in results.groupby(["dataset", "split"], sort=False):
        for position, baseline in enumerate(baselines):
            if baseline not in set(frame["method"]):
                continue
            reference = frame[frame["method"] == baseline]
            test_over_train = reference["n_test"].mean() / reference["n_train"].mean()
            for metric in TESTED_METRICS:
                comparisons = compare_methods(
                    frame, baseline, test_over_train, metric, FOLD_COLUMNS
                )
                for method, c in comparisons.items():
                    if method in baselines[: position + 1]:
                        continue
                    rows.append(
                        {
                            "dataset": dataset,
                            "split": split,
                            "metric": metric,
                            "baseline": baseline,
                            "method": method,
                            "folds": c.wins + c.ties + c.losses,
                            "Δ (pp)": f"{100 * c.difference:+.2f}",
                            "W/T/L": f"{c.wins}/{c.ties}/{c.losses}",
                            "p (t-test)": f"{c.p_ttest:.3g}",
                            "p (corrected)": f"{c.p_corrected:.3g}",
                        }
                    )
    return pd.DataFrame(rows)


def dataset_table(datasets: list[dict]) -> pd.DataFrame:
    """One row per dataset: kind, sizes, classes and the imbalance of its training data."""
    return pd.DataFrame(
        [
            {
                "dataset": info["name"],
                "kind": info["kind"],
                "rows (CV)": info["n_rows"],
                "rows (official test)": info["n_test_rows"] or "—",
                "classes": info["n_classes"],
                "largest / smallest class": f"{info['imbalance_ratio']:.1f}",
                "note": info["note"],
            }
            for info in datasets
        ]
    )


def summary_markdown(
    results: pd.DataFrame,
    datasets: list[dict],
    protocol: str,
    baselines: Sequence[str],
    status: str,
) -> str:
    """The whole ``summary.md``: protocol, datasets, scores, significance tests.

    Parameters
    ----------
    results : DataFrame
        The benchmark's results table.
    datasets : list of dict
        Per-dataset information (see :func:`dataset_table`).
    protocol : str
        A paragraph describing the run.
    baselines : sequence of str
        The methods the others are tested against (see :func:`significance_table`).
    status : str
        ``'complete'`` or a note on what is missing (an interrupted run).
    """
    parts = ["# Benchmark results", protocol, f"Status: {status}."]
    if datasets:
        parts += ["## Datasets", markdown_table(dataset_table(datasets))]
        if any(info["long_tail_induced"] for info in datasets):
            parts.append(
                "Long-tailed datasets: the class imbalance of their training data was "
                "*induced* by subsampling a balanced training set exponentially "
                "(n_c = n_max · IR^(-c/(C-1))); their official test set stays balanced."
            )
    if results.empty:
        parts.append("No fold finished.")
        return "\n\n".join(parts) + "\n"
    parts += [
        "## Scores (mean ± standard deviation over folds)",
        "`cv`: the held-out fold of the cross-validation; `test`: the dataset's official test "
        "set, scored by each fold's model. Fit seconds: training of the final model (after "
        "tuning).",
        markdown_table(score_table(results)),
        "## Paired significance",
    ]
    significance = significance_table(results, baselines)
    if significance.empty:
        parts.append(
            f"Not computed: the run included none of the baselines {', '.join(baselines)}."
        )
    else:
        parts += [
            "Δ: mean paired difference over folds (every method trains on the same folds with "
            "the same seed); W/T/L: folds won, tied, lost; p (t-test): paired t-test "
            "(`scipy.stats.ttest_rel`), optimistic because the folds' training sets overlap; "
            "p (corrected): Nadeau-Bengio corrected resampled t-test. With a single fold no "
            "p-value exists (nan).",
            markdown_table(significance),
        ]
    chosen = results.loc[results["split"] == results["split"].iloc[0]]
    tuned = chosen[chosen["params"] != "{}"]
    if not tuned.empty:
        parts += [
            "## Tuned parameters (folds choosing each)",
            markdown_table(choice_counts(tuned)),
        ]
    return "\n\n".join(parts) + "\n"


def in_run_order(frame: pd.DataFrame, columns: list[str], run: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by ``columns``, each in the order its values first appear in ``run``."""
    keys = {
        column: {value: i for i, value in enumerate(dict.fromkeys(run[column]))}
        for column in columns
    }
    return frame.sort_values(
        columns, key=lambda values: values.map(keys[values.name]), kind="stable"
    ).reset_index(drop=True)


def choice_counts(results: pd.DataFrame) -> pd.DataFrame:
    """How many folds chose each tuned configuration, per dataset and method.

    Datasets and methods keep the order of the run; within each, the most
    frequent choice comes first.
    """
    counts = results.groupby(["dataset", "method", "params"], sort=False).size()
    counts = counts.rename("folds").reset_index().sort_values("folds", ascending=False)
    return in_run_order(counts, ["dataset", "method"], results)


def imbalance_ratio(y: np.ndarray) -> float:
    """Size of the largest class over the smallest."""
    counts = np.unique(y, return_counts=True)[1]
    return float(counts.max() / counts.min())
