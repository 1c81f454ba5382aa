"""The embedded demonstration (``sk-reweight demo``), on bundled or generated data only.

Two parts:

- ERM against RGD, cross-validated on scikit-learn's bundled breast_cancer and digits;
- RAIS against uniform SGD on a generated classification problem with label noise: the race
  of ``sk-reweight speed`` (:class:`~sk_reweight.harness._race.Race`), timed with one torch
  thread after a warm-up, compared on the *full* training loss, the held-out log-loss and the
  held-out accuracy at equal time (uniform SGD's equal-time frontier of three budgets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_reweight import RGDClassifier

from ._evaluation import compare_methods, cross_validate_methods, markdown_table
from ._methods import METHODS
from ._parallel import torch_threads
from ._prepared_data import TrainTestSplit
from ._race import (
    BASELINE_NAME,
    FULL_LOSS,
    SPEED_BUDGET,
    Race,
    SpeedSettings,
    fit_curve,
    flushed_denormals,
)
from ._race_analysis import equal_time, race_results

DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits}


DEMO_METHODS = ("erm", "rgd")
"""The registry's methods of the demo's first part; the first is the baseline."""


def demo_methods(max_epochs: int = 50) -> dict[str, BaseEstimator]:
    """ERM and RGD behind a StandardScaler, by their labels: the registry's classifiers.

    Both keep their defaults (network, optimizer, batch size) but the budget:
    ``max_epochs`` epochs, no early stopping, on the CPU.
    """
    shared = {"max_epochs": max_epochs, "n_iter_no_change": None, "device": "cpu"}
    return {
        METHODS[name].label: make_pipeline(StandardScaler(), METHODS[name].classifier(**shared))
        for name in DEMO_METHODS
    }


def run_rgd_demo(n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50) -> pd.DataFrame:
    """Cross-validate ERM and RGD on breast_cancer and digits and print a Markdown table.

    Returns
    -------
    table : DataFrame
        One row per dataset and method: accuracy, paired difference to ERM,
        wins/ties/losses over folds, corrected p-value, median fit time.
    """
    baseline = METHODS[DEMO_METHODS[0]].label
    rows = []
    for dataset, load in DATASETS.items():
        X, y = load(return_X_y=True)
        results = cross_validate_methods(
            X, y, demo_methods(max_epochs), n_splits, range(n_repeats)
        )
        # The median ignores the first fit of the process, which imports torch._dynamo (~1 s).
        fit_seconds = results.groupby("method")["fit_seconds"].median()
        for method, c in compare_methods(results, baseline, 1 / (n_splits - 1)).items():
            is_baseline = method == baseline
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "accuracy": f"{c.mean:.4f} ± {c.std:.4f}",
                    f"vs {baseline}": "" if is_baseline else f"{c.difference:+.4f}",
                    "W/T/L": "" if is_baseline else f"{c.wins}/{c.ties}/{c.losses}",
                    "p (corrected)": "" if is_baseline else f"{c.p_corrected:.3f}",
                    "fit s (median)": f"{fit_seconds[method]:.2f}",
                }
            )
    table = pd.DataFrame(rows)
    print(
        f"ERM vs RGD (tau={RGDClassifier().tau:g}): MLP (100,), Adam lr=1e-3, {max_epochs} "
        f"epochs; {n_repeats} x {n_splits}-fold stratified CV, both methods with the same seed "
        "on each fold (1000 x repetition + fold);\np: Nadeau-Bengio corrected paired t-test "
        "over folds.\n"
    )
    print(markdown_table(table))
    return table


# ------------------------------------------------------------------ RAIS vs uniform SGD

RAIS_LABEL = "RAIS"


@dataclass(frozen=True)
class RaisDemo:
    """The data and training budget of the demo's RAIS race.

    The data come from :func:`sklearn.datasets.make_classification` (a
    fraction ``label_noise`` of the labels assigned at random), split 80 / 20
    (stratified); every run trains a ``hidden_layer_sizes`` MLP by SGD
    (momentum 0.9, lr 0.05, cosine schedule, minibatches of 128) with
    ``seed``, for ``max_epochs`` epochs (RAIS: epochs equivalent), and with
    the fractions ``budgets`` of them for the equal-time frontier.
    """

    n_samples: int = 16_000
    n_features: int = 30
    n_informative: int = 10
    n_classes: int = 4
    label_noise: float = 0.05
    hidden_layer_sizes: tuple[int, ...] = (256, 256)
    max_epochs: int = 30
    budgets: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)
    seed: int = 0

    def speed_settings(self) -> SpeedSettings:
        """The race as ``sk-reweight speed`` would run it: RAIS, SGD, cosine schedule."""
        budget = replace(
            SPEED_BUDGET, hidden_layer_sizes=self.hidden_layer_sizes, max_epochs=self.max_epochs
        )
        return SpeedSettings(
            dataset="make_classification",
            method="rais",
            lr_schedule="cosine",
            budget=budget,
            full_loss=True,
            budgets=self.budgets,
        )

    def race(self) -> Race:
        """:meth:`speed_settings`'s race, RAIS labelled :data:`RAIS_LABEL`."""
        return replace(self.speed_settings().race(), label=RAIS_LABEL)

    def split(self) -> TrainTestSplit:
        """The generated data, split 80 / 20 by ``seed``, standardised inside every run."""
        X, y = make_classification(
            n_samples=self.n_samples,
            n_features=self.n_features,
            n_informative=self.n_informative,
            n_redundant=min(5, self.n_features - self.n_informative),
            n_classes=self.n_classes,
            flip_y=self.label_noise,
            random_state=self.seed,
        )
        return TrainTestSplit.holdout(X, y, self.seed, "tabular", self.n_classes, StandardScaler)


RAIS_DEMO = RaisDemo()
"""The settings ``sk-reweight demo`` runs (about 48 s of CPU time on one core)."""


@contextmanager
def single_thread_timing() -> Iterator[None]:
    """One thread and denormals flushed to zero, as in ``docs/benchmarks.md``; both restored.

    :func:`~sk_reweight.harness._parallel.torch_threads` (torch, OpenMP and BLAS)
    and :func:`~sk_reweight.harness._race.flushed_denormals` together.
    """
    with torch_threads(1), flushed_denormals():
        yield


def _relative(value: float, reference: float, digits: int) -> str:
    """``value`` and its ratio to ``reference``, or 'not reached' for NaN."""
    if math.isnan(value):
        return "not reached"
    return f"{value:.{digits}f} ({value / reference:.2f}x)"


def race_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per full-budget run: budget, training time, losses, accuracy, time to targets.

    ``results`` is :func:`~sk_reweight.harness._race_analysis.race_results` on the
    full training loss. The targets are uniform SGD's final full training
    loss and final held-out log-loss; the ratios in the "to target" columns
    are against uniform SGD's own epochs and seconds to them.
    """
    results = results[results["budget"] == results["budget"].max()]
    reference = results.set_index("method").loc[BASELINE_NAME]
    return pd.DataFrame(
        {
            "method": results["method"],
            "epochs run": results["epochs_run"],
            "epochs equivalent": results["epochs_equivalent"].map("{:.2f}".format),
            "train s": results["seconds"].map("{:.2f}".format),
            "full train loss": results["final_loss"].map("{:.4f}".format),
            "test accuracy": results["test_accuracy"].map("{:.4f}".format),
            "test log-loss": results["test_log_loss"].map("{:.4f}".format),
            "epochs to target": [
                _relative(value, reference["epochs_to_target"], 1)
                for value in results["epochs_to_target"]
            ],
            "s to target": [
                _relative(value, reference["seconds_to_target"], 2)
                for value in results["seconds_to_target"]
            ],
            "s to test log-loss target": [
                _relative(value, reference["seconds_to_test_log_loss"], 2)
                for value in results["seconds_to_test_log_loss"]
            ],
        }
    ).reset_index(drop=True)


def frontier_table(results: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """One row per budget: both runs' seconds and held-out accuracy, and RAIS's at equal time.

    ``points`` is :func:`~sk_reweight.harness._race_analysis.equal_time` of
    ``results`` (one seed). "uniform acc at RAIS's s" is uniform SGD's
    frontier read at RAIS's seconds (its nearest end outside its time range,
    marked ``*``).
    """
    uniform = results[results["method"] == BASELINE_NAME].set_index("budget")
    points = points.set_index("budget")
    return pd.DataFrame(
        {
            "budget (epochs)": points.index,
            "uniform s": uniform.loc[points.index, "seconds"].map("{:.2f}".format).to_numpy(),
            "uniform acc": uniform.loc[points.index, "test_accuracy"]
            .map("{:.4f}".format)
            .to_numpy(),
            "RAIS s": points["seconds"].map("{:.2f}".format).to_numpy(),
            "RAIS acc": points["test_accuracy"].map("{:.4f}".format).to_numpy(),
            "uniform acc at RAIS's s": [
                f"{accuracy:.4f}" + ("" if position == "inside" else "*")
                for accuracy, position in zip(
                    points["uniform_accuracy"], points["position"], strict=True
                )
            ],
            "RAIS - uniform (pp)": points["accuracy_difference_pp"]
            .map("{:+.2f}".format)
            .to_numpy(),
        }
    )


@dataclass(frozen=True)
class RaceMeasure:
    """One measure on which RAIS is compared with a uniform-SGD run.

    Attributes
    ----------
    measure : str
        What is compared, as the verdict names it.
    rais, other : float
        RAIS's value and the other run's (NaN: never reached).
    lower_is_better : bool
        Direction of the measure.
    tolerance : float
        Differences at most this large are ties.
    digits : int
        Decimals in the verdict.
    """

    measure: str
    rais: float
    other: float
    lower_is_better: bool
    tolerance: float = 0.0
    digits: int = 2

    def outcome(self) -> str:
        """``'wins'``, ``'ties'`` or ``'loses'``, from RAIS's side (not reached: loses).

        Values equal at the printed precision tie, whatever the tolerance.
        """
        if math.isnan(self.rais):
            return "loses"
        gain = self.other - self.rais if self.lower_is_better else self.rais - self.other
        if abs(gain) <= self.tolerance or self._printed(self.rais) == self._printed(self.other):
            return "ties"
        return "wins" if gain > 0 else "loses"

    def _printed(self, value: float) -> str:
        return "not reached" if math.isnan(value) else f"{value:.{self.digits}f}"

    def describe(self) -> str:
        """The measure with both values, e.g. ``'test accuracy (0.8770 vs 0.8870)'``."""
        return f"{self.measure} ({self._printed(self.rais)} vs {self._printed(self.other)})"


TIME_TOLERANCE = 0.10
"""Relative difference of two training times that counts as a tie in the demo's verdict.

One seed on a machine that may be running other work: repeated runs of the same
fit differ by several percent (by more on a loaded machine), so smaller
differences are not claimed.
"""


def race_measures(results: pd.DataFrame, points: pd.DataFrame, n_test: int) -> list[RaceMeasure]:
    """RAIS against uniform SGD: to its final full training loss and held-out log-loss, and at
    equal time on the held-out accuracy of every budget.

    ``results`` is :func:`~sk_reweight.harness._race_analysis.race_results` on the
    full training loss and ``points`` its
    :func:`~sk_reweight.harness._race_analysis.equal_time`. Test accuracies within two
    binomial standard errors (of uniform SGD's full-budget accuracy on
    ``n_test`` rows) tie, and so do times within :data:`TIME_TOLERANCE` of
    each other.
    """
    full = results[results["budget"] == results["budget"].max()].set_index("method")
    reference, rais = full.loc[BASELINE_NAME], full.loc[RAIS_LABEL]
    accuracy = reference["test_accuracy"]
    noise = 2 * math.sqrt(accuracy * (1 - accuracy) / n_test)
    measures = [
        RaceMeasure(
            "epochs to the target",
            rais["epochs_to_target"],
            reference["epochs_to_target"],
            lower_is_better=True,
            digits=1,
        ),
        RaceMeasure(
            "seconds to the target",
            rais["seconds_to_target"],
            reference["seconds_to_target"],
            lower_is_better=True,
            tolerance=TIME_TOLERANCE * reference["seconds_to_target"],
        ),
        RaceMeasure(
            "seconds to the test log-loss target",
            rais["seconds_to_test_log_loss"],
            reference["seconds_to_test_log_loss"],
            lower_is_better=True,
            tolerance=TIME_TOLERANCE * reference["seconds_to_test_log_loss"],
        ),
    ]
    for point in points.itertuples():
        measures.append(
            RaceMeasure(
                f"test accuracy at equal time, {point.budget}-epoch budget",
                point.test_accuracy,
                point.uniform_accuracy,
                lower_is_better=False,
                tolerance=noise,
                digits=4,
            )
        )
    return measures


def verdict(measures: list[RaceMeasure]) -> str:
    """One sentence: where RAIS wins, ties and does not win, with the numbers."""
    groups = {
        outcome: ", ".join(m.describe() for m in measures if m.outcome() == outcome)
        for outcome in ("wins", "ties", "loses")
    }
    parts = [f"RAIS wins on {groups['wins'] or 'none of these measures'}"]
    if groups["ties"]:
        parts.append(f"it ties (within noise) on {groups['ties']}")
    if groups["loses"]:
        parts.append(f"it does not win on {groups['loses']}")
    return "; ".join(parts) + "."


def run_rais_demo(settings: RaisDemo = RAIS_DEMO) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Race RAIS against uniform SGD on generated data; print two Markdown tables and a verdict.

    After an untimed warm-up, uniform SGD and RAIS (its defaults otherwise)
    train with one torch thread at every budget of ``settings``; after
    training, the weights kept at the end of every epoch are evaluated on the
    whole training set and on the held-out rows.

    Returns
    -------
    race_table : DataFrame
        :func:`race_table`: one row per full-budget run.
    frontier_table : DataFrame
        :func:`frontier_table`: one row per budget.
    """
    split = settings.split()
    speed = settings.speed_settings()
    race = settings.race()
    fit = partial(fit_curve, budget=speed.budget, full_loss=True)
    with single_thread_timing():
        race.warm_up(fit, split)
        curves = race.run(fit, split, settings.seed)
    results = race_results(curves, FULL_LOSS)
    points = equal_time(results, RAIS_LABEL)
    table, frontier = race_table(results), frontier_table(results, points)
    budget = speed.budget
    print(
        f"\nRAIS vs uniform SGD: make_classification, {settings.n_samples} rows x "
        f"{settings.n_features} features, {settings.n_classes} classes, "
        f"{100 * settings.label_noise:g} % random labels (80 % train / 20 % test);\n"
        f"MLP {budget.hidden_layer_sizes}, SGD momentum 0.9, lr {budget.lr:g}, cosine schedule "
        f"over {budget.max_epochs} epochs (RAIS: epochs equivalent), batch {budget.batch_size}, "
        f"seed {settings.seed}, one torch thread, after an untimed warm-up.\n"
        "train s: sum of the epochs' durations. full train loss: mean cross-entropy over the "
        "whole training set,\nmeasured after training on the weights of every epoch (test: on "
        "the held-out rows). targets: uniform SGD's\nfinal full training loss and test log-loss "
        "(in parentheses: ratio to uniform SGD's epochs and seconds to them).\n"
    )
    print(markdown_table(table))
    print(
        f"\nEqual time: both methods also trained with budgets of {list(race.budgets)} epochs "
        "(schedules compressed to them);\nuniform SGD's test accuracy against its seconds, "
        "interpolated at RAIS's seconds (* outside uniform SGD's time range: its nearest end).\n"
    )
    print(markdown_table(frontier))
    print("\n" + verdict(race_measures(results, points, len(split.y_test))))
    return table, frontier


def run_demo(
    n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50
) -> tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]]:
    """Run both parts: :func:`run_rgd_demo` (with these arguments), then :func:`run_rais_demo`.

    The RAIS part runs :data:`RAIS_DEMO`, looked up at call time.

    Returns
    -------
    rgd_table : DataFrame
    rais_tables : tuple of DataFrame
        :func:`run_rais_demo`'s race and frontier tables.
    """
    return run_rgd_demo(n_splits, n_repeats, max_epochs), run_rais_demo(RAIS_DEMO)
