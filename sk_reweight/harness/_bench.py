"""``sk-reweight bench``: repeated stratified cross-validation of methods on benchmark datasets.

Protocol
--------
For every dataset and seed ``s`` in ``0 .. seeds - 1``, the training data are
split into ``cv`` stratified folds (shuffled with ``random_state=s``). On fold
``f`` every method trains on the other folds with ``random_state = 1000 s + f``
(the harness's one rule, :func:`~sk_reweight.harness._evaluation.training_seed`;
plain skorch: torch's global generator seeded with it), so methods sharing a
network start from the same weights and their scores are paired. Each fold's
model is scored on the held-out fold (split ``cv``) and, when the dataset has
an official test split, on it as well (split ``test``): cross-validation runs
on the official *training* data only, which keeps the induced long tail of the
``*_lt*`` datasets in training and their balanced test set for evaluation.

Output (in the output directory)
--------------------------------
``config.json``
    Arguments, seeds, versions, platform, device, git commit, status.
``results.csv``
    One row per dataset, split, seed, fold and method; appended (and flushed)
    after every finished fold, so an interrupted run keeps them.
``curves.csv``
    Per-epoch training loss, epochs equivalent and cumulative seconds of the
    networks.
``summary.md``
    Datasets, mean ± std of every metric, paired significance tests against
    ERM (and against ERM with SGD, the like-for-like baseline of RAIS, when the
    run includes ``erm_sgd``), tuned parameters.
``accuracy.png``, ``curves_<dataset>.png``
    Accuracy with error bars per dataset; learning curves.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.preprocessing import LabelEncoder
from tqdm.auto import tqdm

from sk_reweight import sigint_recorded

from ._curves import learning_curve
from ._evaluation import classification_scores, stratified_folds, training_seed
from ._methods import (
    BASELINES,
    Budget,
    chosen_parameters,
    fitted_classifier,
    make_model,
    quiet_fit,
    refit_seconds,
)
from ._parallel import make_runner, torch_threads
from ._plots import plot_learning_curves, plot_scores
from ._provenance import run_record, write_json
from ._report import imbalance_ratio, summary_markdown

INTERRUPTED = 130
"""Exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""
FAILED = 1
"""Exit status of a run stopped because a dataset could not be downloaded or read."""


def load_dataset(name: str, data_home: str | None = None) -> Any:
    """:func:`sk_reweight.datasets.load_dataset`, imported lazily."""
    from sk_reweight.datasets import load_dataset as load

    return load(name, data_home=data_home)


def list_datasets() -> list[str]:
    """Names of the benchmark datasets (imported lazily from :mod:`sk_reweight.datasets`)."""
    from sk_reweight.datasets import list_datasets as names

    return list(names())


def take(data: Any, indices: NDArray[np.intp]) -> Any:
    """Rows ``indices`` of a DataFrame, Series or array."""
    return data.iloc[indices] if hasattr(data, "iloc") else data[indices]


MIN_ROWS_PER_CLASS = 10
"""Rows of each class that :func:`stratified_subsample` keeps (all of a smaller class)."""


def stratified_subsample(y: NDArray, max_rows: int | None, seed: int) -> NDArray[np.intp]:
    """Sorted indices of about ``max_rows`` examples drawn class by class (all if it is None).

    Each class keeps its share of ``max_rows``, rounded, but at least
    :data:`MIN_ROWS_PER_CLASS` rows (or all of its rows), so that rare classes
    survive for stratified cross-validation and the inner tuning split; the
    total may therefore exceed ``max_rows`` by a few rows.
    """
    if max_rows is None or max_rows >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    shares = np.round(counts * max_rows / len(y)).astype(int)
    quotas = np.minimum(counts, np.maximum(shares, MIN_ROWS_PER_CLASS))
    kept = [
        rng.choice(np.flatnonzero(y == label), size=quota, replace=False)
        for label, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(kept))


@dataclass
class PreparedDataset:
    """A dataset ready for the benchmark: labels encoded, rows capped, facts recorded."""

    source: Any
    X: Any
    y: NDArray[np.int64]
    X_test: Any | None
    y_test: NDArray[np.int64] | None
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    def preprocessor(self) -> BaseEstimator | None:
        """A fresh, unfitted preprocessor for tabular data; None for images (used as they are)."""
        return self.source.make_preprocessor() if self.info["kind"] == "tabular" else None


def prepare_dataset(dataset: Any, max_rows: int | None) -> PreparedDataset:
    """Encode a dataset's labels as ``0 .. n_classes - 1`` and cap its rows at ``max_rows``.

    The training data and the official test split are each subsampled with
    :func:`stratified_subsample` (seed 0) to about ``max_rows`` rows.
    """
    has_test = dataset.data_test is not None
    targets = [np.asarray(dataset.target)]
    if has_test:
        targets.append(np.asarray(dataset.target_test))
    encoder = LabelEncoder().fit(np.concatenate(targets))
    y = encoder.transform(targets[0]).astype(np.int64)
    rows = stratified_subsample(y, max_rows, seed=0)
    X, y = take(dataset.data, rows), y[rows]
    X_test = y_test = None
    if has_test:
        y_test = encoder.transform(targets[1]).astype(np.int64)
        test_rows = stratified_subsample(y_test, max_rows, seed=0)
        X_test, y_test = take(dataset.data_test, test_rows), y_test[test_rows]
    info = {
        "name": dataset.name,
        "kind": dataset.kind,
        "n_rows": len(y),
        "n_rows_available": len(targets[0]),
        "n_test_rows": None if y_test is None else len(y_test),
        "n_classes": len(encoder.classes_),
        "imbalance_ratio": imbalance_ratio(y),
        "long_tail_induced": "_lt" in dataset.name,
        "note": "long tail induced" if "_lt" in dataset.name else "",
        "description": getattr(dataset, "description", ""),
    }
    subsampled = [
        f"{part} subsampled from {len(target)} rows"
        for part, target, kept in zip(("training", "test"), targets, (y, y_test), strict=False)
        if len(kept) < len(target)
    ]
    info["note"] = "; ".join(filter(None, [info["note"], *subsampled]))
    return PreparedDataset(dataset, X, y, X_test, y_test, len(encoder.classes_), info)


def class_probabilities(model: BaseEstimator, X: Any, n_classes: int) -> NDArray[np.float64]:
    """``predict_proba`` with one column per class of the dataset, in label order.

    A model fitted on data lacking a class gives it probability 0. Rows are
    renormalised in float64: a float32 softmax (plain skorch) sums to 1 only up
    to rounding, which scikit-learn's log-loss warns about.
    """
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.shape[1] != n_classes:
        full = np.zeros((len(proba), n_classes))
        full[:, np.asarray(model.classes_, dtype=np.intp)] = proba
        proba = full
    return proba / proba.sum(axis=1, keepdims=True)


def fit_and_score(
    model: BaseEstimator,
    data: PreparedDataset,
    train: NDArray[np.intp],
    evaluation: dict[str, tuple[Any, NDArray[np.int64]]],
    seed: int,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Fit one model on rows ``train`` and score it on every evaluation split.

    torch's global generator is seeded with ``seed`` during the fit (and
    restored afterwards), which makes plain skorch reproducible.

    Returns
    -------
    rows : list of dict
        One per evaluation split: the scores, fit times and tuned parameters.
    curve : DataFrame
        The learning curve of :func:`~sk_reweight.harness._curves.learning_curve`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = time.perf_counter()
        quiet_fit(model, take(data.X, train), data.y[train])
        total_seconds = time.perf_counter() - start
    fit_seconds = refit_seconds(model, total_seconds)
    params = json.dumps(chosen_parameters(model), sort_keys=True)
    rows = []
    for split, (X_eval, y_eval) in evaluation.items():
        proba = class_probabilities(model, X_eval, data.n_classes)
        rows.append(
            {
                "split": split,
                **classification_scores(y_eval, proba, np.arange(data.n_classes)),
                "fit_seconds": fit_seconds,
                "total_seconds": total_seconds,
                "n_train": len(train),
                "n_test": len(y_eval),
                "params": params,
            }
        )
    return rows, learning_curve(fitted_classifier(model), fit_seconds)


def append_csv(frame: pd.DataFrame, path: Path) -> None:
    """Append ``frame`` to a CSV file (with a header when the file is new) and flush it."""
    with path.open("a", newline="") as stream:
        frame.to_csv(stream, header=stream.tell() == 0, index=False)
        stream.flush()


@dataclass(frozen=True)
class BenchSettings:
    """Everything ``sk-reweight bench`` was asked to do."""

    datasets: Sequence[str]
    methods: Sequence[str]
    cv: int = 5
    seeds: int = 1
    tune: bool = True
    budget: Budget = field(default_factory=Budget)
    max_rows: int | None = None
    data_home: str | None = None
    threads: int = 1
    n_jobs: int = 1
    scheduler: str | None = None

    def protocol(self) -> str:
        """A paragraph describing the run for ``summary.md``."""
        budget = self.budget
        tuning = (
            f"tuned on one stratified 80/20 split of each training set by GridSearchCV "
            f"(accuracy): lr in {list(budget.lr_grid)} for Adam, in "
            f"{list(budget.sgd_lr_grid)} for SGD, and tau in {list(budget.tau_grid)} for "
            "RGD; the best configuration is refit on the whole training set"
            if self.tune
            else "not tuned (RGD's tau at its default)"
        )
        rows = (
            f"about {self.max_rows} rows per dataset and split" if self.max_rows else ("all rows")
        )
        return (
            f"Protocol: {self.cv}-fold stratified cross-validation repeated with "
            f"{self.seeds} seed(s); fold f of seed s trains every method with random_state "
            f"1000·s + f. Networks (ERM, RGD, RAIS, skorch, sklearn MLP): hidden layers "
            f"{list(budget.hidden_layer_sizes)} (for images the package's default CNN with "
            f"that head; MLP and gradient boosting see flattened pixels), Adam at lr "
            f"{budget.lr:g} (RAIS and ERM-SGD: SGD with momentum 0.9 at lr {budget.sgd_lr:g}), "
            f"batch {budget.batch_size}, "
            f"{budget.max_epochs} epochs, no early stopping, device {budget.device}. "
            f"Hyperparameters {tuning}. HistGradientBoosting keeps its defaults. Data: "
            f"{rows}; tabular columns go through the dataset's preprocessor, fitted per fold."
        )


@dataclass(frozen=True)
class FitTask:
    """One fit of the benchmark: a method trained on a fold of a dataset and scored.

    Tasks are small (indices and an unfitted preprocessor); the data travel
    separately, once per dataset (a runner's ``ship``).
    """

    dataset: str
    kind: str
    n_classes: int
    seed: int
    fold: int
    method: str
    train: NDArray[np.intp]
    test: NDArray[np.intp]
    preprocessor: BaseEstimator | None

    @property
    def key(self) -> dict[str, Any]:
        """The columns that identify the fit's rows in ``results.csv`` and ``curves.csv``."""
        return {
            "dataset": self.dataset,
            "seed": self.seed,
            "fold": self.fold,
            "method": self.method,
        }


def fit_tasks(name: str, data: PreparedDataset, settings: BenchSettings) -> Iterator[FitTask]:
    """Every fit of one dataset, fold by fold and, in each fold, method by method."""
    for split in stratified_folds(data.y, settings.cv, range(settings.seeds)):
        for method in settings.methods:
            yield FitTask(
                name,
                data.info["kind"],
                data.n_classes,
                split.seed,
                split.fold,
                method,
                split.train,
                split.test,
                data.preprocessor(),
            )


def run_fit(
    data: PreparedDataset, task: FitTask, settings: BenchSettings
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Build, fit and score the model of ``task``: the function every runner runs.

    It runs with ``settings.threads`` torch (and OpenMP/BLAS) threads, in this
    process or on a worker, so that a fit scores the same wherever it runs.

    Returns
    -------
    rows : list of dict
        :func:`fit_and_score`'s rows, with the task's key columns first.
    curve : DataFrame
        The learning curve, with the key columns.
    """
    seed = training_seed(task.seed, task.fold)
    evaluation = {"cv": (take(data.X, task.test), data.y[task.test])}
    if data.X_test is not None:
        evaluation["test"] = (data.X_test, data.y_test)
    with torch_threads(settings.threads):
        model = make_model(
            task.method,
            task.kind,
            task.n_classes,
            task.preprocessor,
            settings.budget,
            seed=seed,
            tune=settings.tune,
        )
        rows, curve = fit_and_score(model, data, task.train, evaluation, seed)
    return [{**task.key, **row} for row in rows], curve.assign(**task.key)


def _write_report(
    output: Path, settings: BenchSettings, datasets: list[dict], status: str
) -> None:
    """Write ``summary.md`` and the PNG plots from the CSV files written so far."""
    results_path, curves_path = output / "results.csv", output / "curves.csv"
    results = pd.read_csv(results_path) if results_path.exists() else pd.DataFrame()
    (output / "summary.md").write_text(
        summary_markdown(results, datasets, settings.protocol(), BASELINES, status)
    )
    if not results.empty:
        plot_scores(results, output / "accuracy.png")
    if curves_path.exists():
        curves = pd.read_csv(curves_path)
        for dataset, frame in curves.groupby("dataset", sort=False):
            plot_learning_curves(
                frame, output / f"curves_{dataset}.png", f"{dataset}: learning curves"
            )


def _finish(output: Path, settings: BenchSettings, record: dict, status: str) -> None:
    """Record ``status`` in ``config.json``; write the report of the folds finished so far."""
    record["status"] = status
    write_json(output / "config.json", record)
    _write_report(output, settings, record["datasets"], status)


def run_bench(settings: BenchSettings, output: Path, argv: Sequence[str] = ()) -> int:
    """Run the benchmark, writing results into ``output``; return the exit status.

    Every fit is a :class:`FitTask` run by :func:`run_fit`: in this process,
    one after another (the default), or as tasks of a Dask cluster
    (``settings.n_jobs`` local worker processes, or the cluster at
    ``settings.scheduler``), to which each dataset is sent once. Results are
    appended to the CSV files as the fits finish (in order when serial).

    Returns
    -------
    status : int
        0 when every fit finished, :data:`INTERRUPTED` after Ctrl-C (which
        stops the fit under way, or cancels the cluster's pending tasks),
        :data:`FAILED` when a dataset could not be downloaded or read (an
        :class:`OSError`; the fits already submitted finish first). In both
        cases the finished fits' results are kept and summarised.
    """
    output.mkdir(parents=True, exist_ok=True)
    for stale in ("results.csv", "curves.csv"):
        (output / stale).unlink(missing_ok=True)
    record = run_record(
        list(argv),
        {**asdict(settings), "output": str(output)},
        settings.budget.device,
    )
    record["seeds"] = list(range(settings.seeds))
    record["training_seed"] = "1000 * seed + fold (harness._evaluation.training_seed)"
    record["datasets"] = []
    write_json(output / "config.json", record)

    n_fits = len(settings.datasets) * settings.seeds * settings.cv * len(settings.methods)
    runner = make_runner(settings.n_jobs, settings.scheduler, settings.threads, settings.methods)
    record["runner"] = runner.describe()
    progress = tqdm(total=n_fits, desc="bench", unit="fit")
    pending: set[Future] = set()
    finished = 0

    def write_finished(block: bool) -> None:
        """Append the results of the fits that have finished (all of them when ``block``)."""
        nonlocal finished
        while pending:
            done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for future in done:
                pending.remove(future)
                rows, curve = future.result()
                with sigint_recorded() as sigint:  # a Ctrl-C waits until both files have the fit
                    append_csv(pd.DataFrame(rows), output / "results.csv")
                    append_csv(curve, output / "curves.csv")
                finished += 1
                progress.update()
                if sigint.received:
                    raise KeyboardInterrupt

    try:
        try:
            for name in settings.datasets:
                data = prepare_dataset(load_dataset(name, settings.data_home), settings.max_rows)
                record["datasets"].append(data.info)
                write_json(output / "config.json", record)
                # Workers get the arrays only: the loaded source stays here.
                shipped = runner.ship(replace(data, source=None))
                for task in fit_tasks(name, data, settings):
                    progress.set_postfix_str(
                        f"{name} seed {task.seed} fold {task.fold} {task.method}"
                    )
                    pending.add(runner.submit(run_fit, shipped, task, settings))
                    write_finished(block=False)
        except OSError:  # a dataset that cannot be loaded: the submitted fits still count
            write_finished(block=True)
            raise
        write_finished(block=True)
    except KeyboardInterrupt:
        for future in pending:
            future.cancel()
        progress.close()
        _finish(output, settings, record, f"interrupted after {finished} of {n_fits} fits")
        print(f"\nInterrupted: kept {finished} finished fit(s) in {output}")
        return INTERRUPTED
    except OSError as exc:
        progress.close()
        _finish(output, settings, record, f"stopped after {finished} of {n_fits} fits: {exc}")
        print(
            f"sk-reweight: error: {exc}\nKept {finished} finished fit(s) in {output}",
            file=sys.stderr,
        )
        return FAILED
    finally:
        runner.close()
    progress.close()
    _finish(output, settings, record, "complete")
    print((output / "summary.md").read_text())
    print(f"Results written to {output}")
    return 0
