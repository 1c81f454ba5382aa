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
    Arguments, seeds, versions, platform, device, git commit, status, and the
    ``configuration`` that a re-run into the same directory must match.
``results.csv``
    One row per dataset, split, seed, fold and method; each fit's rows are
    appended in one write after it finishes, so an interrupted run keeps them.
``curves.csv``
    Per-epoch training loss, epochs equivalent and cumulative seconds of the
    networks.
``summary.md``
    Datasets, mean ± std of every metric, paired significance tests against
    ERM (and against ERM with SGD, the like-for-like baseline of RAIS, when the
    run includes ``erm_sgd``), tuned parameters.
``accuracy.png``, ``curves_<dataset>.png``
    Accuracy with error bars per dataset; learning curves.

Faults
------
Running the same command again into the same output directory resumes the
run: the finished fits (those with rows in both CSV files) are kept and only
the missing ones run; a directory holding another configuration's results is
refused (:data:`REFUSED`) unless ``overwrite``. SIGTERM is handled as a Ctrl-C
(exit :data:`TERMINATED`); once the run stops, further signals wait until the
report is written, and every report file is written to a temporary file and
renamed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
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
from ._parallel import MAX_RETRIES, make_runner, torch_threads
from ._plots import plot_learning_curves, plot_scores
from ._provenance import run_record, write_json
from ._report import imbalance_ratio, summary_markdown

INTERRUPTED = 130
"""Exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""
TERMINATED = 143
"""Exit status of a run stopped by SIGTERM (128 + SIGTERM), as a shell reports it."""
FAILED = 1
"""Exit status of a run stopped because a dataset could not be downloaded or read."""
REFUSED = 2
"""Exit status of a run refused because its output directory holds another run's results."""

RESULT_FILES = ("results.csv", "curves.csv")
REPORT_FILES = ("summary.md", "accuracy.png", "curves_*.png")
KEY_COLUMNS = ("dataset", "seed", "fold", "method")
UNCOMPARED_SETTINGS = ("n_jobs", "scheduler", "data_home")
"""Settings that do not change a run's results: a re-run may change them."""


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
    """Append ``frame`` to a CSV file (with a header when the file is new) in one write.

    The rows are encoded first and appended with a single ``write`` to a file
    opened with ``O_APPEND``, so that a process killed at any moment leaves
    the file with all of them or none (a torn line, after a power cut, is
    dropped by :func:`read_complete_csv`).
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        header = os.fstat(descriptor).st_size == 0
        content = memoryview(frame.to_csv(header=header, index=False).encode())
        while content:
            content = content[os.write(descriptor, content) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_complete_csv(path: Path) -> pd.DataFrame:
    """The complete lines of a CSV file written by :func:`append_csv` (empty if none)."""
    if not path.exists():
        return pd.DataFrame()
    content = path.read_bytes()
    content = content[: content.rfind(b"\n") + 1]
    if not content.strip():
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(content))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix) that replaces ``path`` when the block ends.

    A process stopped while the block writes leaves the previous ``path`` (or
    none), never half a file.
    """
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def fit_keys(frame: pd.DataFrame) -> set[tuple[str, int, int, str]]:
    """The (dataset, seed, fold, method) of the fits that have rows in ``frame``."""
    if frame.empty:
        return set()
    keys = frame[list(KEY_COLUMNS)].drop_duplicates().itertuples(index=False)
    return {(str(d), int(s), int(f), str(m)) for d, s, f, m in keys}


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
            f"1000·s + f. Networks (ERM, RGD, RAIS, InfoBatch, skorch, sklearn MLP): hidden "
            f"layers {list(budget.hidden_layer_sizes)} (for images the package's default CNN "
            f"with that head; MLP and gradient boosting see flattened pixels), Adam at lr "
            f"{budget.lr:g} (RAIS, InfoBatch and ERM-SGD: SGD with momentum 0.9 at lr "
            f"{budget.sgd_lr:g}), "
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


def run_configuration(settings: BenchSettings) -> dict[str, Any]:
    """The settings that fix a run's results, as plain JSON values (``config.json``)."""
    settings_dict = {
        key: value for key, value in asdict(settings).items() if key not in UNCOMPARED_SETTINGS
    }
    return json.loads(json.dumps(settings_dict, default=str))


def clear_output(output: Path) -> None:
    """Delete a run's files from ``output``: results, report and ``config.json``."""
    for pattern in (*RESULT_FILES, *REPORT_FILES, "config.json"):
        for path in output.glob(pattern):
            path.unlink()


def finished_fits(
    output: Path, configuration: dict[str, Any], overwrite: bool
) -> set[tuple[str, int, int, str]]:
    """The fits of an earlier run into ``output`` that this run keeps.

    A fit is finished when it has rows in both ``results.csv`` and
    ``curves.csv``; the rows of unfinished fits (and torn lines) are removed
    from both files. A directory with results of another configuration (or
    whose ``config.json`` is missing or unreadable) raises :class:`ValueError`,
    unless ``overwrite``, which deletes them.
    """
    if overwrite:
        clear_output(output)
        return set()
    paths = [output / name for name in RESULT_FILES]
    if not any(path.exists() and path.stat().st_size for path in paths):
        return set()
    try:
        previous = json.loads((output / "config.json").read_text())["configuration"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = None
    if previous != configuration:
        differences = (
            ["config.json is missing or unreadable"]
            if not isinstance(previous, dict)
            else [
                key
                for key in sorted(set(previous) | set(configuration))
                if previous.get(key) != configuration.get(key)
            ]
        )
        raise ValueError(
            f"{output} holds the results of another run (it differs in: "
            f"{', '.join(differences)}). Pass another --output, or --overwrite to delete them."
        )
    results, curves = (read_complete_csv(path) for path in paths)
    finished = fit_keys(results) & fit_keys(curves)
    for path, frame in zip(paths, (results, curves), strict=True):
        keep = [key in finished for key in fit_row_keys(frame)]
        torn = path.exists() and not path.read_bytes().endswith(b"\n")
        if not all(keep) or torn:
            write_text_atomically(path, frame[keep].to_csv(index=False) if any(keep) else "")
    return finished


def fit_row_keys(frame: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """The (dataset, seed, fold, method) of each row of ``frame``."""
    if frame.empty:
        return []
    rows = frame[list(KEY_COLUMNS)].itertuples(index=False)
    return [(str(d), int(s), int(f), str(m)) for d, s, f, m in rows]


@contextmanager
def sigterm_as_sigint() -> Iterator[list[int]]:
    """SIGTERM handled in the block as a Ctrl-C: by the SIGINT handler in effect when it comes.

    Batch schedulers and Kubernetes stop a job with SIGTERM; handled like
    Ctrl-C, it ends the fit under way at a step boundary, keeps the finished
    fits and writes the report. The yielded list records the signals
    received (the caller exits with :data:`TERMINATED`). When SIGINT is
    ignored (a background job), Python's Ctrl-C handler is installed for the
    block, so that SIGTERM still stops the run gracefully. Main thread only.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    sigint_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if sigint_ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sigint_ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM recorded, not acted on, in the block: the report is written whole.

    A second Ctrl-C (or a SIGTERM) while the stopped run writes its report
    would leave it half-written; in the block such signals are only counted,
    and a message says that the report is being finished. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def wait(signum: int, frame: Any) -> None:
        print("\nWriting the report; it takes a few seconds.", file=sys.stderr, flush=True)

    previous = {number: signal.signal(number, wait) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _write_report(
    output: Path, settings: BenchSettings, datasets: list[dict], status: str
) -> None:
    """Write ``summary.md`` and the PNG plots from the CSV files written so far.

    Every file goes through a temporary file and a rename.
    """
    results = read_complete_csv(output / "results.csv")
    curves = read_complete_csv(output / "curves.csv")
    write_text_atomically(
        output / "summary.md",
        summary_markdown(results, datasets, settings.protocol(), BASELINES, status),
    )
    if not results.empty:
        with atomic_path(output / "accuracy.png") as path:
            plot_scores(results, path)
    if not curves.empty:
        for dataset, frame in curves.groupby("dataset", sort=False):
            with atomic_path(output / f"curves_{dataset}.png") as path:
                plot_learning_curves(frame, path, f"{dataset}: learning curves")


def _finish(output: Path, settings: BenchSettings, record: dict, status: str) -> None:
    """Record ``status`` in ``config.json``; write the report of the folds finished so far."""
    record["status"] = status
    write_json(output / "config.json", record)
    _write_report(output, settings, record["datasets"], status)


def run_bench(
    settings: BenchSettings, output: Path, argv: Sequence[str] = (), overwrite: bool = False
) -> int:
    """Run the benchmark, writing results into ``output``; return the exit status.

    Every fit is a :class:`FitTask` run by :func:`run_fit`: in this process,
    one after another (the default), or as tasks of a Dask cluster
    (``settings.n_jobs`` local worker processes, or the cluster at
    ``settings.scheduler``), to which each dataset is sent once. Results are
    appended to the CSV files as the fits finish (in order when serial).

    A run into a directory that holds an earlier run of the same
    configuration (:func:`run_configuration`: every setting but ``n_jobs``,
    ``scheduler`` and ``data_home``) keeps its finished fits and runs the
    others (:func:`finished_fits`); another configuration's results are
    refused, or deleted with ``overwrite``.

    Returns
    -------
    status : int
        0 when every fit finished, :data:`INTERRUPTED` after Ctrl-C and
        :data:`TERMINATED` after SIGTERM (which stop the fit under way, or
        cancel the cluster's pending tasks), :data:`FAILED` when a dataset
        could not be downloaded or read (an :class:`OSError`; the fits already
        submitted finish first), :data:`REFUSED` when ``output`` holds another
        run's results. In the first three cases the finished fits' results are
        kept and summarised.
    """
    output.mkdir(parents=True, exist_ok=True)
    configuration = run_configuration(settings)
    try:
        kept = finished_fits(output, configuration, overwrite)
    except ValueError as exc:
        print(f"sk-reweight: error: {exc}", file=sys.stderr)
        return REFUSED
    record = run_record(
        list(argv),
        {**asdict(settings), "output": str(output)},
        settings.budget.device,
    )
    record["configuration"] = configuration
    record["kept_fits"] = len(kept)
    record["seeds"] = list(range(settings.seeds))
    record["training_seed"] = "1000 * seed + fold (harness._evaluation.training_seed)"
    record["datasets"] = []
    write_json(output / "config.json", record)
    if kept:
        print(f"Resuming the run in {output}: keeping {len(kept)} finished fit(s).")

    n_fits = len(settings.datasets) * settings.seeds * settings.cv * len(settings.methods)
    runner = make_runner(settings.n_jobs, settings.scheduler, settings.threads, settings.methods)
    record["runner"] = runner.describe()
    progress = tqdm(total=n_fits, initial=len(kept), desc="bench", unit="fit")
    pending: dict[Future, tuple[Any, FitTask]] = {}
    retries: dict[tuple, int] = {}
    finished = len(kept)

    def submit(shipped: Any, task: FitTask) -> None:
        pending[runner.submit(run_fit, shipped, task, settings)] = (shipped, task)

    def result(future: Future) -> tuple[list[dict[str, Any]], pd.DataFrame] | None:
        """The fit's result, or None when it was lost with a worker and is submitted again."""
        shipped, task = pending.pop(future)
        try:
            return future.result()
        except BaseException as exc:
            key = tuple(task.key.values())
            if not runner.lost(exc):
                raise
            if retries.get(key, 0) >= MAX_RETRIES:
                raise ConnectionError(
                    f"the fit of {task.key} was lost with its worker {MAX_RETRIES + 1} times "
                    f"({type(exc).__name__}); check the cluster's workers"
                ) from exc
            retries[key] = retries.get(key, 0) + 1
            record["retried_fits"] = sum(retries.values())
            progress.write(
                f"A worker was lost with the fit of {task.key} ({type(exc).__name__}): "
                f"running it again ({retries[key]} of {MAX_RETRIES}).",
                file=sys.stderr,
            )
            submit(runner.recover(shipped), task)
            return None

    def write_finished(block: bool) -> None:
        """Append the results of the fits that have finished (all of them when ``block``)."""
        nonlocal finished
        while pending:
            done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for future in done:
                outcome = result(future)
                if outcome is None:
                    continue
                rows, curve = outcome
                with sigint_recorded() as sigint:  # a Ctrl-C waits until both files have the fit
                    append_csv(pd.DataFrame(rows), output / "results.csv")
                    append_csv(curve, output / "curves.csv")
                finished += 1
                progress.update()
                if sigint.received:
                    raise KeyboardInterrupt

    status, code, message = "complete", 0, None
    with sigterm_as_sigint() as terminated:
        try:
            try:
                for name in settings.datasets:
                    data = prepare_dataset(
                        load_dataset(name, settings.data_home), settings.max_rows
                    )
                    record["datasets"].append(data.info)
                    write_json(output / "config.json", record)
                    # Workers get the arrays only: the loaded source stays here.
                    shipped = None
                    for task in fit_tasks(name, data, settings):
                        key = (task.dataset, task.seed, task.fold, task.method)
                        if key in kept:
                            continue
                        if shipped is None:
                            shipped = runner.ship(replace(data, source=None))
                        progress.set_postfix_str(
                            f"{name} seed {task.seed} fold {task.fold} {task.method}"
                        )
                        submit(shipped, task)
                        write_finished(block=False)
            except OSError:  # a dataset that cannot be loaded: the submitted fits still count
                write_finished(block=True)
                raise
            write_finished(block=True)
        except KeyboardInterrupt:
            with signals_deferred():
                code = TERMINATED if terminated else INTERRUPTED
                how = "terminated (SIGTERM)" if terminated else "interrupted"
                status = f"{how} after {finished} of {n_fits} fits"
                message = (
                    f"\n{how[0].upper()}{how[1:]}: kept {finished} finished fit(s) in {output}"
                )
        except OSError as exc:
            code, status = FAILED, f"stopped after {finished} of {n_fits} fits: {exc}"
            message = f"sk-reweight: error: {exc}\nKept {finished} finished fit(s) in {output}"
        with signals_deferred():
            for future in pending:
                future.cancel()
            runner.close()
            progress.close()
            _finish(output, settings, record, status)
            if code == 0:
                print((output / "summary.md").read_text())
                print(f"Results written to {output}")
            else:
                print(message, file=sys.stderr if code == FAILED else sys.stdout)
    return code
