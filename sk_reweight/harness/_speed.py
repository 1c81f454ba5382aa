"""``sk-reweight speed``: a method against uniform SGD on one dataset, on a clock.

:func:`run_speed` runs the race of :class:`~sk_reweight.harness._race.SpeedSettings`
(:mod:`~sk_reweight.harness._race`) for every seed, after an untimed warm-up,
and writes what it comes to (:mod:`~sk_reweight.harness._race_analysis`):
``curves.csv`` (every run's learning curve), ``speed.csv`` (every run against
uniform SGD: time-to-target, overhead), ``frontier.csv`` (the method's points
against uniform SGD's equal-time frontier), ``summary.md`` (tables and
verdicts), ``config.json`` (provenance) and the plots ``speed.png`` and
``frontier.png``. A Ctrl-C keeps and summarises the finished seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ._evaluation import markdown_table
from ._plots import plot_frontier, plot_learning_curves
from ._prepared_data import PreparedDataset, TrainTestSplit, load_dataset, prepare_dataset
from ._provenance import run_record, write_json
from ._race import (
    BASELINE_NAME,
    TEST_ACCURACY,
    TEST_LOG_LOSS,
    Race,
    SpeedSettings,
    fit_curve,
    flushed_denormals,
)
from ._race_analysis import (
    MIN_TIMED_SECONDS,
    assessments,
    equal_time,
    method_table,
    race_results,
)
from ._signals import INTERRUPTED

OUTPUT_FILES = ("curves.csv", "speed.csv", "frontier.csv", "speed.png", "frontier.png")
"""The files of a run's results, deleted from the output directory before a run starts."""


def run_speed(settings: SpeedSettings, output: Path, argv: Sequence[str] = ()) -> int:
    """Race the method against uniform SGD for every seed; write CSV, Markdown, PNG to ``output``.

    A warm-up (:meth:`Race.warm_up`) runs first, on seed 0's split.

    Returns
    -------
    status : int
        0, or :data:`~sk_reweight.harness._signals.INTERRUPTED` after Ctrl-C, when the
        finished seeds are kept and summarised.
    """
    # The data first: a data set that cannot be loaded leaves no output directory behind.
    data = prepare_dataset(load_dataset(settings.dataset, settings.data_home), settings.max_rows)
    race = settings.race()
    record = _start_record(output, settings, argv, data, race)
    curves: list[pd.DataFrame] = []
    progress = tqdm(total=len(race.runs(0)) * settings.seeds, desc="speed", unit="fit")

    def fit_and_count(split: TrainTestSplit, method: str, parameters: dict) -> pd.DataFrame:
        curve = fit(split, method, parameters)
        progress.update()
        return curve

    fit = partial(fit_curve, budget=settings.budget, full_loss=settings.full_loss)
    try:
        with flushed_denormals():
            race.warm_up(fit, TrainTestSplit.of_dataset(data, 0, settings.flatten))
            for seed in range(settings.seeds):
                split = TrainTestSplit.of_dataset(data, seed, settings.flatten)
                curves.append(race.run(fit_and_count, split, seed))
    except KeyboardInterrupt:
        progress.close()
        status = f"interrupted after {len(curves)} of {settings.seeds} seeds"
        _finish_speed(output, settings, data, record, race, curves, status)
        print(f"\nInterrupted: kept {len(curves)} finished seed(s) in {output}")
        return INTERRUPTED
    progress.close()
    print(_finish_speed(output, settings, data, record, race, curves, "complete"))
    return 0


def _start_record(
    output: Path, settings: SpeedSettings, argv: Sequence[str], data: PreparedDataset, race: Race
) -> dict:
    """Clear an earlier run's results from ``output``; write and return ``config.json``."""
    output.mkdir(parents=True, exist_ok=True)
    for stale in OUTPUT_FILES:
        (output / stale).unlink(missing_ok=True)
    arguments = {**asdict(settings), "output": str(output)}
    record = run_record(list(argv), arguments, settings.budget.device)
    record["dataset"] = data.info
    record["training_seed"] = "1000 * seed (harness._evaluation.training_seed, fold 0)"
    record["budget_epochs"] = list(race.budgets)
    write_json(output / "config.json", record)
    return record


def _finish_speed(
    output: Path,
    settings: SpeedSettings,
    data: PreparedDataset,
    record: dict,
    race: Race,
    curves: list[pd.DataFrame],
    status: str,
) -> str:
    """Write the CSV files, plots and ``summary.md`` of the finished seeds; return the summary."""
    parts = [
        f"# Speed: {race.label} vs {BASELINE_NAME} on {settings.dataset}",
        _protocol(settings, data, race),
        f"Status: {status}.",
    ]
    if curves:
        speed, points = _write_results(
            output, settings, race, pd.concat(curves, ignore_index=True)
        )
        parts += [
            f"## Full budget ({race.budgets[-1]} epochs)",
            markdown_table(method_table(speed)),
            *_verdict(speed, points, race.label),
            *_frontier_section(points),
        ]
    report = "\n\n".join(parts)
    (output / "summary.md").write_text(report + "\n")
    record["status"] = status
    write_json(output / "config.json", record)
    return report


def _protocol(settings: SpeedSettings, data: PreparedDataset, race: Race) -> str:
    """The summary's paragraph on what ran: network, schedule, data, budgets, targets."""
    budget = settings.budget
    network = (
        f"MLP {list(budget.hidden_layer_sizes)} on flattened, standardised pixels"
        if settings.flatten and data.info["kind"] == "image"
        else f"hidden layers {list(budget.hidden_layer_sizes)}"
    )
    loss = (
        "full training loss (whole training set, after every epoch)"
        if settings.full_loss
        else "training loss (mean over the epoch's minibatches)"
    )
    parameters = "".join(
        f", {what} parameters {values}"
        for what, values in (
            ("shared", settings.shared_parameters),
            ("method", settings.method_parameters),
        )
        if values
    )
    return (
        f"{budget.max_epochs} epochs, lr {budget.lr:g}, schedule {settings.lr_schedule}, "
        f"batch {budget.batch_size}, {network}, {settings.seeds} seed(s), "
        f"{data.info['n_rows']} rows (80 % train / 20 % held out per seed), device "
        f"{budget.device}, {torch.get_num_threads()} torch thread(s){parameters}. "
        f"Budgets of the equal-time frontier: {list(race.budgets)} epochs, each with its "
        "schedule compressed to it, for both methods; the order of the runs alternates "
        "across seeds, after an untimed warm-up. Held-out accuracy and log-loss after every "
        "epoch are measured on weight snapshots, outside the timed epochs. "
        f"Time-to-target: target {BASELINE_NAME}'s final value of the {loss}, of the held-out "
        f"log-loss and of the held-out accuracy (full budget); medians over seeds, over "
        f"{BASELINE_NAME}'s total epochs and seconds."
    )


def _write_results(
    output: Path, settings: SpeedSettings, race: Race, curves: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the CSV files and the plots; return the race's results and equal-time points."""
    curves.to_csv(output / "curves.csv", index=False)
    speed = race_results(curves, settings.loss)
    speed.to_csv(output / "speed.csv", index=False)
    points = equal_time(speed, race.label)
    points.to_csv(output / "frontier.csv", index=False)
    full = curves[curves["budget"] == race.budgets[-1]]
    title = f"{settings.dataset}: {race.label} vs {BASELINE_NAME}"
    plot_learning_curves(
        full, output / "speed.png", title, [settings.loss, TEST_LOG_LOSS, TEST_ACCURACY]
    )
    plot_frontier(speed, output / "frontier.png", f"{title}, equal-time frontier")
    return speed, points


def _verdict(speed: pd.DataFrame, points: pd.DataFrame, label: str) -> list[str]:
    """The summary's verdict section: each measure of :func:`assessments` in words."""
    return [
        "## Verdict",
        "Medians over seeds (equal time: over budgets and seeds); in parentheses the "
        "range, the points on the method's side, and the seeds' spread (standard "
        "deviation of the per-seed medians). **within noise**: the median differs from "
        "no difference (1x, 0 pp) by at most the seeds' spread; **within noise (too short "
        f"to time)**: a full-budget run took under {MIN_TIMED_SECONDS:g} s.",
        "\n".join(
            f"- {measure}: {text}" for measure, text in assessments(speed, points, label).items()
        ),
    ]


def _frontier_section(points: pd.DataFrame) -> list[str]:
    """The summary's equal-time section: how to read it, and the method's points."""
    outside = points[points["position"] != "inside"]
    unreached = int((~points["uniform_reaches"]).sum())
    rounded = {
        column: points[column].round(2)
        for column in (
            "seconds",
            "accuracy_difference_pp",
            "uniform_seconds_to_accuracy",
            "uniform_time_ratio",
        )
    }
    percent = {
        column: (100 * points[column]).round(2) for column in ("test_accuracy", "uniform_accuracy")
    }
    return [
        "## Equal-time frontier",
        f"{BASELINE_NAME}'s held-out accuracy against its training seconds, one point per "
        "budget, interpolated linearly at each of the method's runs (`frontier.png`). "
        f"{len(outside)} of {len(points)} method points lie outside the frontier's time "
        "range and are compared with its nearest end (below: with its shortest run, which "
        "had more time, a comparison that favours uniform SGD; above: with its longest run, "
        "which had less time, a comparison that favours the method); for "
        f"{unreached} point(s) no budget of {BASELINE_NAME} reached the method's accuracy "
        "(its time is that of its longest run, a lower bound).",
        markdown_table(points.assign(**rounded, **percent)),
    ]
