"""The benchmark's Markdown report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sk_reweight.harness._evaluation import corrected_ttest
from sk_reweight.harness._report import (
    choice_counts,
    score_table,
    significance_table,
    summary_markdown,
)

ERM = [0.80, 0.70, 0.90, 0.60]
RGD = [0.82, 0.70, 0.85, 0.64]


def _results() -> pd.DataFrame:
    rows = []
    for i, (erm, rgd) in enumerate(zip(ERM, RGD, strict=True)):
        for method, accuracy in (("erm", erm), ("rgd", rgd)):
            rows.append(
                {
                    "dataset": "toy",
                    "split": "cv",
                    "seed": i // 2,
                    "fold": i % 2,
                    "method": method,
                    "accuracy": accuracy,
                    "balanced_accuracy": accuracy,
                    "log_loss": 1 - accuracy,
                    "macro_f1": accuracy,
                    "fit_seconds": 1.0,
                    "n_train": 300,
                    "n_test": 100,
                    "params": '{"lr": 0.001}' if method == "rgd" else "{}",
                }
            )
    return pd.DataFrame(rows)


def test_score_table_gives_mean_and_std_over_folds():
    table = score_table(_results())
    rgd = table[table["method"] == "rgd"].iloc[0]
    assert rgd["folds"] == 4
    assert rgd["accuracy"] == f"{np.mean(RGD):.4f} ± {np.std(RGD, ddof=1):.4f}"


def test_significance_uses_the_test_over_train_ratio_of_the_folds():
    table = significance_table(_results(), ["erm", "erm_sgd"])
    assert set(table["metric"]) == {"accuracy", "balanced_accuracy"}
    row = table[table["metric"] == "accuracy"].iloc[0]
    differences = np.subtract(RGD, ERM)
    assert row["method"] == "rgd"
    assert row["W/T/L"] == "2/1/1"
    assert row["Δ (pp)"] == f"{100 * differences.mean():+.2f}"
    assert float(row["p (corrected)"]) == pytest.approx(
        corrected_ttest(differences, 100 / 300), rel=1e-2
    )
    assert (table["baseline"] == "erm").all()
    assert significance_table(_results().query("method == 'rgd'"), ["erm"]).empty


def test_each_pair_of_methods_is_tested_once_against_both_baselines():
    erm = _results().query("method == 'erm'")
    both = pd.concat([_results(), erm.assign(method="erm_sgd"), erm.assign(method="rais")])
    table = significance_table(both, ["erm", "erm_sgd"]).query("metric == 'accuracy'")
    pairs = list(zip(table["baseline"], table["method"], strict=True))
    assert pairs == [("erm", "rgd"), ("erm", "erm_sgd"), ("erm", "rais"),
                     ("erm_sgd", "rgd"), ("erm_sgd", "rais")]  # fmt: skip
    rais = table[(table["baseline"] == "erm_sgd") & (table["method"] == "rais")].iloc[0]
    assert rais["W/T/L"] == "0/4/0"
    assert rais["p (corrected)"] == "1"


def test_summary_mentions_induced_long_tails_and_tuned_parameters():
    info = {
        "name": "toy_lt10",
        "kind": "image",
        "n_rows": 400,
        "n_test_rows": 100,
        "n_classes": 2,
        "imbalance_ratio": 10.0,
        "long_tail_induced": True,
        "note": "long tail induced",
    }
    text = summary_markdown(_results(), [info], "Protocol: toy.", ["erm"], "complete")
    assert "*induced*" in text
    assert "| toy_lt10 | image | 400 | 100 | 2 | 10.0 | long tail induced |" in text
    assert '| toy | rgd | {"lr": 0.001} | 4 |' in text
    assert "| toy | cv | accuracy | erm | rgd | 4 |" in text
    empty = summary_markdown(_results().iloc[:0], [], "Protocol: toy.", ["erm"], "interrupted")
    assert "No fold finished." in empty


def test_choice_counts_group_by_dataset_and_method_in_run_order():
    results = pd.DataFrame(
        {
            "dataset": ["b", "b", "b", "a", "b"],
            "method": ["rgd", "erm", "rgd", "erm", "rgd"],
            "params": ["x", "y", "z", "y", "z"],
        }
    )
    counts = choice_counts(results)
    assert counts.values.tolist() == [
        ["b", "rgd", "z", 2],
        ["b", "rgd", "x", 1],
        ["b", "erm", "y", 1],
        ["a", "erm", "y", 1],
    ]


def test_score_table_lists_each_split_in_run_order():
    results = pd.concat([_results(), _results().assign(split="test")])
    results = results.sort_values(["fold", "method"])  # interleave splits
    table = score_table(results)
    assert table[["split", "method"]].values.tolist() == [
        ["cv", "erm"],
        ["cv", "rgd"],
        ["test", "erm"],
        ["test", "rgd"],
    ]
