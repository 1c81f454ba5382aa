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
from tqdm.auto import tqdm

from sk_reweight import sigint_recorded

from ._bench_files import (
    append_csv,
    atomic_path,
    finished_fits,
    read_complete_csv,
    write_text_atomically,
)
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
from ._prepared_data import PreparedDataset, load_dataset, prepare_dataset, take
from ._provenance import run_record, write_json
from ._report import summary_markdown
from ._signals import INTERRUPTED, TERMINATED, signals_deferred, sigterm_as_sigint

FAILED = 1
"""Exit status of a run stopped because a dataset could not be downloaded or read."""
REFUSED = 2
"""Exit status of a run refused because its output directory holds another run's results."""

RESULT_FILES = ("results.csv", "curves.csv")
REPORT_FILES = ("summary.md", "accuracy.png", "curves_*.png")
KEY_COLUMNS = ("dataset", "seed", "fold", "method")
UNCOMPARED_SETTINGS = ("n_jobs", "scheduler", "data_home")
"""Settings that do not change a run's results: a re-run may change them."""


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

    @property
    def n_fits(self) -> int:
        """Fits of the whole run: datasets x seeds x folds x methods."""
        return len(self.datasets) * self.seeds * self.cv * len(self.methods)

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


class FitsInFlight:
    """The fits submitted to a runner whose results are not written yet.

    :meth:`write_finished` appends each finished fit's rows to ``results.csv``
    and ``curves.csv``; a fit lost with its worker (a cluster's) is submitted
    again, at most :data:`~sk_reweight.harness._parallel.MAX_RETRIES` times.
    ``finished`` counts the fits written, those kept from an earlier run included.
    """

    def __init__(
        self, runner: Any, settings: BenchSettings, output: Path, record: dict, finished: int
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.output = output
        self.record = record
        self.finished = finished
        self.progress = tqdm(total=settings.n_fits, initial=finished, desc="bench", unit="fit")
        self.pending: dict[Future, tuple[Any, FitTask]] = {}
        self.retries: dict[tuple, int] = {}

    def submit(self, shipped: Any, task: FitTask) -> None:
        """Run ``task`` on the runner, with its dataset as the runner shipped it."""
        future = self.runner.submit(run_fit, shipped, task, self.settings)
        self.pending[future] = (shipped, task)

    def write_finished(self, block: bool) -> None:
        """Append the results of the fits that have finished (all of them when ``block``)."""
        while self.pending:
            timeout = None if block else 0
            done, _ = wait(self.pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not done:
                return
            for future in done:
                outcome = self._result(future)
                if outcome is not None:
                    self._append(*outcome)

    def close(self) -> None:
        """Cancel the fits not started, close the runner and the progress bar."""
        for future in self.pending:
            future.cancel()
        self.runner.close()
        self.progress.close()

    def _result(self, future: Future) -> tuple[list[dict[str, Any]], pd.DataFrame] | None:
        """The fit's result, or None when it was lost with a worker and is submitted again."""
        shipped, task = self.pending.pop(future)
        try:
            return future.result()
        except BaseException as exc:
            if not self.runner.lost(exc):
                raise
            self._retry(shipped, task, exc)
            return None

    def _retry(self, shipped: Any, task: FitTask, error: BaseException) -> None:
        key = tuple(task.key.values())
        if self.retries.get(key, 0) >= MAX_RETRIES:
            raise ConnectionError(
                f"the fit of {task.key} was lost with its worker {MAX_RETRIES + 1} times "
                f"({type(error).__name__}); check the cluster's workers"
            ) from error
        self.retries[key] = self.retries.get(key, 0) + 1
        self.record["retried_fits"] = sum(self.retries.values())
        self.progress.write(
            f"A worker was lost with the fit of {task.key} ({type(error).__name__}): "
            f"running it again ({self.retries[key]} of {MAX_RETRIES}).",
            file=sys.stderr,
        )
        self.submit(self.runner.recover(shipped), task)

    def _append(self, rows: list[dict[str, Any]], curve: pd.DataFrame) -> None:
        with sigint_recorded() as sigint:  # a Ctrl-C waits until both files have the fit
            append_csv(pd.DataFrame(rows), self.output / "results.csv")
            append_csv(curve, self.output / "curves.csv")
        self.finished += 1
        self.progress.update()
        if sigint.received:
            raise KeyboardInterrupt


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
    others (:func:`~sk_reweight.harness._bench_files.finished_fits`); another
    configuration's results are refused, or deleted with ``overwrite``.

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
    record = _start_record(settings, output, argv, configuration, len(kept))
    if kept:
        print(f"Resuming the run in {output}: keeping {len(kept)} finished fit(s).")
    runner = make_runner(settings.n_jobs, settings.scheduler, settings.threads, settings.methods)
    record["runner"] = runner.describe()
    fits = FitsInFlight(runner, settings, output, record, finished=len(kept))
    with sigterm_as_sigint() as terminated:
        code, status, message = _run_fits(fits, kept, terminated)
        with signals_deferred():
            fits.close()
            _finish(output, settings, record, status)
            if code == 0:
                message = f"{(output / 'summary.md').read_text()}\nResults written to {output}"
            print(message, file=sys.stderr if code == FAILED else sys.stdout)
    return code


def _start_record(
    settings: BenchSettings,
    output: Path,
    argv: Sequence[str],
    configuration: dict[str, Any],
    kept: int,
) -> dict[str, Any]:
    """Write the ``config.json`` of a starting run: arguments, provenance, fits kept."""
    record = run_record(
        list(argv), {**asdict(settings), "output": str(output)}, settings.budget.device
    )
    record["configuration"] = configuration
    record["kept_fits"] = kept
    record["seeds"] = list(range(settings.seeds))
    record["training_seed"] = "1000 * seed + fold (harness._evaluation.training_seed)"
    record["datasets"] = []
    write_json(output / "config.json", record)
    return record


def _run_fits(
    fits: FitsInFlight, kept: set[tuple[str, int, int, str]], terminated: list[int]
) -> tuple[int, str, str | None]:
    """Run every fit not ``kept``; the exit status, the run's status and a closing message.

    ``terminated`` lists the SIGTERMs received (:func:`~._signals.sigterm_as_sigint`).
    """
    n_fits, output = fits.settings.n_fits, fits.output
    try:
        try:
            _submit_datasets(fits, kept)
        except OSError:  # a dataset that cannot be loaded: the submitted fits still count
            fits.write_finished(block=True)
            raise
        fits.write_finished(block=True)
    except KeyboardInterrupt:
        with signals_deferred():
            code = TERMINATED if terminated else INTERRUPTED
            how = "terminated (SIGTERM)" if terminated else "interrupted"
            kept_fits = f"kept {fits.finished} finished fit(s) in {output}"
            message = f"\n{how[0].upper()}{how[1:]}: {kept_fits}"
            return code, f"{how} after {fits.finished} of {n_fits} fits", message
    except OSError as exc:
        message = f"sk-reweight: error: {exc}\nKept {fits.finished} finished fit(s) in {output}"
        return FAILED, f"stopped after {fits.finished} of {n_fits} fits: {exc}", message
    return 0, "complete", None


def _submit_datasets(fits: FitsInFlight, kept: set[tuple[str, int, int, str]]) -> None:
    """Load each dataset in turn and submit its fits not ``kept``, writing those finished."""
    settings = fits.settings
    for name in settings.datasets:
        data = prepare_dataset(load_dataset(name, settings.data_home), settings.max_rows)
        fits.record["datasets"].append(data.info)
        write_json(fits.output / "config.json", fits.record)
        shipped = None  # the workers get the arrays only: the loaded source stays here
        for task in fit_tasks(name, data, settings):
            if tuple(task.key.values()) in kept:
                continue
            if shipped is None:
                shipped = fits.runner.ship(replace(data, source=None))
            fits.progress.set_postfix_str(
                f"{name} seed {task.seed} fold {task.fold} {task.method}"
            )
            fits.submit(shipped, task)
            fits.write_finished(block=False)
