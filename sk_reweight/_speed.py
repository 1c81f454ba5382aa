"""``sk-reweight speed``: time-to-target of a method against uniform SGD on one dataset.

The baseline is :class:`~sk_reweight.ERMClassifier` with SGD (momentum 0.9):
uniform minibatches, the same network, batch size, learning rate, schedule,
epochs and seeds as the method. For each seed both train on the same 80 % of
the (capped) data and are scored on the other 20 %. The comparison follows the
RAIS paper (Johnson & Guestrin, 2018): training loss against epochs, epochs
equivalent and wall-clock; the wall-clock time the method needs to reach the
baseline's *final* training loss (linearly interpolated between epochs), the
resulting speed-up, and the per-epoch overhead (median epoch duration over the
baseline's). ``history_`` training losses are the plain mean cross-entropy of
the epoch's minibatches for every method (never the reweighted objective).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from ._bench import PreparedDataset, load_dataset, prepare_dataset, take
from ._curves import learning_curve, time_to_target
from ._evaluation import markdown_table
from ._methods import Budget, make_model
from ._plots import plot_learning_curves
from ._provenance import run_record, write_json

BASELINE_NAME = "uniform SGD"
COMPRESSED_NAME = "uniform SGD, method's epochs"
"""Uniform SGD given only as many epochs as the method ran, its schedule compressed to them."""
SPEED_METHODS = ("rais", "rgd", "erm")
"""Methods ``speed`` can compare with uniform SGD: the package's own classifiers."""


SPEED_BUDGET = Budget(lr=0.05, batch_size=128, max_epochs=20)
"""Default network and schedule of ``speed``: SGD-sized learning rate, 20 epochs."""


@dataclass(frozen=True)
class SpeedSettings:
    """Everything ``sk-reweight speed`` was asked to do."""

    dataset: str
    method: str = "rais"
    optimizer: str = "sgd"
    lr_schedule: str | None = "step"
    budget: Budget = SPEED_BUDGET
    seeds: int = 1
    max_rows: int | None = None
    data_home: str | None = None

    def training_parameters(self, optimizer: str) -> dict:
        """Parameters of one run: the budget, SGD momentum 0.9, the schedule, ``optimizer``."""
        return {
            "hidden_layer_sizes": self.budget.hidden_layer_sizes,
            "optimizer": optimizer,
            "lr": self.budget.lr,
            "momentum": 0.9,
            "lr_schedule": self.lr_schedule,
            "batch_size": self.budget.batch_size,
            "max_epochs": self.budget.max_epochs,
            "device": self.budget.device,
        }


def speed_summary(baseline: pd.DataFrame, method: pd.DataFrame) -> dict[str, float]:
    """Compare one seed's two learning curves (:func:`~sk_reweight._curves.learning_curve`).

    Returns
    -------
    summary : dict
        ``target_loss`` (the baseline's final training loss), the method's
        ``final_loss``, ``seconds_to_target`` and ``epochs_to_target`` (NaN if
        never reached), ``baseline_seconds`` (total), ``speedup`` (baseline
        seconds over the method's seconds to target) and ``overhead`` (median
        epoch duration of the method over the baseline's).
    """
    target = float(baseline["train_loss"].iloc[-1])
    seconds = time_to_target(method["seconds"], method["train_loss"], target)
    baseline_seconds = float(baseline["seconds"].iloc[-1])
    return {
        "target_loss": target,
        "final_loss": float(method["train_loss"].iloc[-1]),
        "seconds_to_target": seconds,
        "epochs_to_target": time_to_target(method["epoch"], method["train_loss"], target),
        "baseline_seconds": baseline_seconds,
        "speedup": baseline_seconds / seconds,
        "overhead": float(
            np.median(np.diff(method["seconds"], prepend=0.0))
            / np.median(np.diff(baseline["seconds"], prepend=0.0))
        ),
    }


def _fit_curve(
    data: PreparedDataset,
    budget: Budget,
    seed: int,
    split: Sequence[NDArray[np.intp]],
    method: str,
    parameters: dict,
) -> tuple[pd.DataFrame, float]:
    """Fit one run on the training rows of ``split``: its learning curve and test accuracy."""
    train, test = split
    model = make_model(
        method, data.info["kind"], data.n_classes, data.preprocessor(), budget, seed, tune=False
    )
    model[-1].set_params(**parameters)
    start = time.perf_counter()
    model.fit(take(data.X, train), data.y[train])
    curve = learning_curve(model[-1], time.perf_counter() - start)
    return curve, model.score(take(data.X, test), data.y[test])


def run_speed(settings: SpeedSettings, output: Path, argv: Sequence[str] = ()) -> int:
    """Train the method and uniform SGD for every seed; write CSV, Markdown, PNG to ``output``.

    Returns
    -------
    status : int
        0.
    """
    output.mkdir(parents=True, exist_ok=True)
    budget = settings.budget
    record = run_record(list(argv), {**asdict(settings), "output": str(output)}, budget.device)
    data = prepare_dataset(load_dataset(settings.dataset, settings.data_home), settings.max_rows)
    record["dataset"] = data.info
    write_json(output / "config.json", record)

    curves, summaries = [], []
    label = f"{settings.method} ({settings.optimizer})"
    with tqdm(total=3 * settings.seeds, desc="speed", unit="fit") as progress:
        for seed in range(settings.seeds):
            split = train_test_split(
                np.arange(len(data.y)), test_size=0.2, random_state=seed, stratify=data.y
            )
            runs = {}
            for name, method, parameters in (
                (BASELINE_NAME, "erm", settings.training_parameters("sgd")),
                (label, settings.method, settings.training_parameters(settings.optimizer)),
            ):
                runs[name] = _fit_curve(data, budget, seed, split, method, parameters)
                progress.update()
            epochs_run = len(runs[label][0])
            compressed_parameters = {
                **settings.training_parameters("sgd"),
                "max_epochs": epochs_run,
            }
            runs[COMPRESSED_NAME] = _fit_curve(
                data, budget, seed, split, "erm", compressed_parameters
            )
            progress.update()
            for name, (curve, accuracy) in runs.items():
                curves.append(curve.assign(method=name, seed=seed, test_accuracy=accuracy))
            compressed_curve = runs[COMPRESSED_NAME][0]
            summaries.append(
                {
                    "seed": seed,
                    **speed_summary(runs[BASELINE_NAME][0], runs[label][0]),
                    "compressed_final_loss": float(compressed_curve["train_loss"].iloc[-1]),
                }
            )

    curves_frame = pd.concat(curves, ignore_index=True)
    curves_frame.to_csv(output / "curves.csv", index=False)
    speed = pd.DataFrame(summaries)
    speed.to_csv(output / "speed.csv", index=False)
    plot_learning_curves(
        curves_frame,
        output / "speed.png",
        f"{settings.dataset}: {label} vs {BASELINE_NAME}",
    )
    accuracy = curves_frame.groupby("method", sort=False)["test_accuracy"].mean()
    report = "\n\n".join(
        [
            f"# Speed: {label} vs {BASELINE_NAME} on {settings.dataset}",
            f"{budget.max_epochs} epochs, lr {budget.lr:g}, schedule {settings.lr_schedule}, "
            f"batch {budget.batch_size}, hidden layers {list(budget.hidden_layer_sizes)}, "
            f"{settings.seeds} seed(s), {data.info['n_rows']} rows (80 % train / 20 % test "
            f"per seed), device {budget.device}. Target: the baseline's final training loss. "
            f"`compressed_final_loss`: {COMPRESSED_NAME} (the budgeted-training baseline).",
            markdown_table(speed.round(4)),
            "Median over seeds: speed-up "
            f"{speed['speedup'].median():.3f}, per-epoch overhead "
            f"{speed['overhead'].median():.3f}. Test accuracy: "
            + ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
            + ".",
        ]
    )
    (output / "summary.md").write_text(report + "\n")
    record["status"] = "complete"
    write_json(output / "config.json", record)
    print(report)
    return 0
