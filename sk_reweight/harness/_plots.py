"""PNG plots of benchmark results, drawn without pyplot (no display, no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PANELS_PER_ROW = 4
"""Datasets side by side in :func:`plot_scores` before it starts a new row."""

CURVE_AXES = {
    "epoch": "epochs",
    "epochs_equivalent": "epochs equivalent",
    "seconds": "wall-clock seconds (training)",
}


def plot_scores(results: pd.DataFrame, path: Path, metric: str = "accuracy") -> None:
    """Bars of ``metric`` per method (mean over folds, standard deviation as error bars).

    One panel per dataset, at most ``PANELS_PER_ROW`` to a row; one bar group
    per split (``cv``, and ``test`` when the dataset has an official test set).
    """
    datasets = list(dict.fromkeys(results["dataset"]))
    n_columns = min(len(datasets), PANELS_PER_ROW)
    n_rows = -(-len(datasets) // n_columns)
    panel_width = max(4.0, 1.2 * results["method"].nunique())
    figure = Figure(figsize=(panel_width * n_columns, 4 * n_rows))
    axes = figure.subplots(n_rows, n_columns, squeeze=False).ravel()
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    for ax, dataset in zip(axes, datasets, strict=False):
        frame = results[results["dataset"] == dataset]
        methods = list(dict.fromkeys(frame["method"]))
        splits = list(dict.fromkeys(frame["split"]))
        width = 0.8 / len(splits)
        for offset, split in enumerate(splits):
            stats = frame[frame["split"] == split].groupby("method")[metric].agg(["mean", "std"])
            stats = stats.reindex(methods)
            positions = np.arange(len(methods)) + (offset - (len(splits) - 1) / 2) * width
            ax.bar(
                positions,
                stats["mean"],
                width,
                yerr=stats["std"].fillna(0),
                capsize=3,
                label=split,
            )
        ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right")
        low = frame[metric].min()
        ax.set_ylim(max(0.0, low - 0.1 * (1 - low) - 0.02), 1.0)
        ax.set_title(dataset)
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend(title="split", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


CURVE_LABELS = {
    "train_loss": "training loss (minibatches)",
    "full_train_loss": "full training loss",
    "test_log_loss": "held-out log-loss",
    "test_accuracy": "held-out accuracy",
}
LOG_SCALED = {"train_loss", "full_train_loss", "test_log_loss"}
"""Curve columns plotted on a log scale (losses); the others (accuracies) are linear."""


def plot_learning_curves(
    curves: pd.DataFrame, path: Path, title: str, columns: Sequence[str] = ("train_loss",)
) -> None:
    """Curve columns against epochs, epochs equivalent and seconds, one line per method.

    One row of panels per column of ``columns`` (``'train_loss'``, the full
    training loss, the held-out log-loss or accuracy). Each line is the mean
    over folds (or seeds) at each epoch; the x positions of the latter two
    axes are averaged the same way.
    """
    figure = Figure(figsize=(13, 3.6 * len(columns)))
    axes = figure.subplots(len(columns), len(CURVE_AXES), squeeze=False)
    for method, frame in curves.groupby("method", sort=False):
        mean = frame.groupby("epoch")[["epochs_equivalent", "seconds", *columns]].mean()
        mean = mean.reset_index()
        for row, column in zip(axes, columns, strict=True):
            for ax, x in zip(row, CURVE_AXES, strict=True):
                ax.plot(mean[x], mean[column], label=method)
    for row, column in zip(axes, columns, strict=True):
        for ax, label in zip(row, CURVE_AXES.values(), strict=True):
            ax.set_xlabel(label)
            ax.set_ylabel(CURVE_LABELS.get(column, column.replace("_", " ")))
            if column in LOG_SCALED:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_frontier(results: pd.DataFrame, path: Path, title: str) -> None:
    """Held-out accuracy against training seconds: every run, both methods, one line per seed.

    ``results`` has one row per run (``method``, ``seed``, ``budget``,
    ``seconds``, ``test_accuracy``; ``speed``'s ``race_results``). Each
    method's runs of one seed are joined in order of their budgets (labelled,
    in epochs); uniform SGD's line is its equal-time frontier.
    """
    figure = Figure(figsize=(8, 5.5))
    ax = figure.subplots()
    markers = "os^vDP"
    for index, (method, runs) in enumerate(results.groupby("method", sort=False)):
        color = f"C{index}"
        for line, (seed, seed_runs) in enumerate(runs.groupby("seed")):
            seed_runs = seed_runs.sort_values("budget")
            ax.plot(
                seed_runs["seconds"],
                100 * seed_runs["test_accuracy"],
                marker=markers[seed % len(markers)],
                color=color,
                alpha=0.8,
                label=f"{method}, seed {seed}",
            )
            for run in seed_runs.itertuples():
                ax.annotate(
                    f"{run.budget}",
                    (run.seconds, 100 * run.test_accuracy),
                    textcoords="offset points",
                    xytext=(4, -10 if line % 2 else 4),
                    fontsize="x-small",
                    color=color,
                )
    ax.set_xlabel("wall-clock seconds (training)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", title="labels: budget in epochs", title_fontsize="small")
    ax.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
