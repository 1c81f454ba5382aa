"""PNG plots of benchmark results, drawn without pyplot (no display, no global state)."""

from __future__ import annotations

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


def plot_learning_curves(
    curves: pd.DataFrame, path: Path, title: str, loss: str = "train_loss"
) -> None:
    """Training loss against epochs, epochs equivalent and seconds, one line per method.

    Each line is the mean over folds (or seeds) at each epoch; the x positions
    of the latter two axes are averaged the same way. ``loss`` is the curves'
    column plotted (``'train_loss'`` or the full training loss).
    """
    figure = Figure(figsize=(13, 4))
    axes = figure.subplots(1, len(CURVE_AXES))
    for method, frame in curves.groupby("method", sort=False):
        mean = frame.groupby("epoch")[["epochs_equivalent", "seconds", loss]].mean()
        mean = mean.reset_index()
        for ax, column in zip(axes, CURVE_AXES, strict=True):
            ax.plot(mean[column], mean[loss], label=method)
    for ax, label in zip(axes, CURVE_AXES.values(), strict=True):
        ax.set_xlabel(label)
        ax.set_ylabel("training loss" if loss == "train_loss" else loss.replace("_", " "))
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
