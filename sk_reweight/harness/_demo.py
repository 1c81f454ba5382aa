"""The embedded demonstration (``sk-reweight demo``), on bundled or generated data only.

Two parts:

- ERM against RGD, cross-validated on scikit-learn's bundled breast_cancer and digits;
- RAIS against uniform SGD on a generated classification problem with label noise: the race
  of ``sk-reweight speed`` (:func:`~sk_reweight.harness._speed.race_against_uniform_sgd`),
  timed with one torch thread, compared on the *full* training loss.
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

from sk_reweight import ERMClassifier, RGDClassifier

from ._evaluation import compare_methods, cross_validate_methods, markdown_table
from ._parallel import torch_threads
from ._speed import (
    BASELINE_NAME,
    COMPRESSED_NAME,
    FULL_LOSS,
    SPEED_BUDGET,
    SpeedSettings,
    TrainTestSplit,
    fit_curve,
    flushed_denormals,
    race_against_uniform_sgd,
    race_results,
)

DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits}


def demo_methods(max_epochs: int = 50) -> dict[str, BaseEstimator]:
    """ERM and RGD with the same network, optimizer and budget, behind a StandardScaler."""
    shared = {"max_epochs": max_epochs, "device": "cpu"}
    return {
        "ERM": make_pipeline(StandardScaler(), ERMClassifier(**shared)),
        "RGD": make_pipeline(StandardScaler(), RGDClassifier(**shared)),
    }


def run_rgd_demo(n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50) -> pd.DataFrame:
    """Cross-validate ERM and RGD on breast_cancer and digits and print a Markdown table.

    Returns
    -------
    table : DataFrame
        One row per dataset and method: accuracy, paired difference to ERM,
        wins/ties/losses over folds, corrected p-value, median fit time.
    """
    rows = []
    for dataset, load in DATASETS.items():
        X, y = load(return_X_y=True)
        results = cross_validate_methods(
            X, y, demo_methods(max_epochs), n_splits, range(n_repeats)
        )
        # The median ignores the first fit of the process, which imports torch._dynamo (~1 s).
        fit_seconds = results.groupby("method")["fit_seconds"].median()
        for method, c in compare_methods(results, "ERM", 1 / (n_splits - 1)).items():
            is_baseline = method == "ERM"
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "accuracy": f"{c.mean:.4f} ± {c.std:.4f}",
                    "vs ERM": "" if is_baseline else f"{c.difference:+.4f}",
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
    ``seed``, for ``max_epochs`` epochs (RAIS: epochs equivalent).
    """

    n_samples: int = 30_000
    n_features: int = 30
    n_informative: int = 10
    n_classes: int = 4
    label_noise: float = 0.05
    hidden_layer_sizes: tuple[int, ...] = (256, 256)
    max_epochs: int = 30
    seed: int = 0

    def speed_settings(self) -> SpeedSettings:
        """The race as ``sk-reweight speed`` would run it: RAIS, SGD, cosine schedule."""
        budget = replace(
            SPEED_BUDGET, hidden_layer_sizes=self.hidden_layer_sizes, max_epochs=self.max_epochs
        )
        return SpeedSettings(
            dataset="make_classification", method="rais", lr_schedule="cosine", budget=budget
        )

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
"""The settings ``sk-reweight demo`` runs (about 30 s on one CPU core)."""


@contextmanager
def single_thread_timing() -> Iterator[None]:
    """One thread and denormals flushed to zero, as in ``docs/benchmarks.md``; both restored.

    :func:`~sk_reweight.harness._parallel.torch_threads` (torch, OpenMP and BLAS)
    and :func:`~sk_reweight.harness._speed.flushed_denormals` together.
    """
    with torch_threads(1), flushed_denormals():
        yield


def _relative(value: float, reference: float, digits: int) -> str:
    """``value`` and its ratio to ``reference``, or 'not reached' for NaN."""
    if math.isnan(value):
        return "not reached"
    return f"{value:.{digits}f} ({value / reference:.2f}x)"


def race_table(results: pd.DataFrame, compressed_label: str) -> pd.DataFrame:
    """One row per run of the race: budget, training time, full training loss, time to target.

    ``results`` is :func:`~sk_reweight.harness._speed.race_results` on the
    full training loss. The target is uniform SGD's final full training loss;
    the ratios in the "to target" columns are against uniform SGD's own epochs
    and seconds to it.
    """
    reference = results.set_index("method").loc[BASELINE_NAME]
    return pd.DataFrame(
        {
            "method": results["method"].replace(COMPRESSED_NAME, compressed_label),
            "epochs run": results["epochs_run"],
            "epochs equivalent": results["epochs_equivalent"].map("{:.2f}".format),
            "train s": results["seconds"].map("{:.2f}".format),
            "full train loss": results["final_loss"].map("{:.4f}".format),
            "test accuracy": results["test_accuracy"].map("{:.4f}".format),
            "epochs to target": [
                _relative(value, reference["epochs_to_target"], 1)
                for value in results["epochs_to_target"]
            ],
            "s to target": [
                _relative(value, reference["seconds_to_target"], 2)
                for value in results["seconds_to_target"]
            ],
        }
    )


@dataclass(frozen=True)
class Comparison:
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


def race_comparisons(results: pd.DataFrame, n_test: int) -> list[Comparison]:
    """RAIS against uniform SGD (to its final full training loss) and the compressed baseline.

    ``results`` is :func:`~sk_reweight.harness._speed.race_results` on the
    full training loss. Test accuracies within two binomial standard errors of
    uniform SGD's accuracy on ``n_test`` rows are ties.
    """
    by_method = results.set_index("method")
    reference, rais = by_method.loc[BASELINE_NAME], by_method.loc[RAIS_LABEL]
    compressed = by_method.loc[COMPRESSED_NAME]
    accuracy = reference["test_accuracy"]
    noise = 2 * math.sqrt(accuracy * (1 - accuracy) / n_test)
    epochs = int(compressed["epochs_run"])
    return [
        Comparison(
            "epochs to the target",
            rais["epochs_to_target"],
            reference["epochs_to_target"],
            lower_is_better=True,
            digits=1,
        ),
        Comparison(
            "seconds to the target",
            rais["seconds_to_target"],
            reference["seconds_to_target"],
            lower_is_better=True,
        ),
        Comparison(
            f"full training loss after {epochs} epochs against uniform SGD compressed to them",
            rais["final_loss"],
            compressed["final_loss"],
            lower_is_better=True,
            digits=4,
        ),
        Comparison(
            "test accuracy against uniform SGD",
            rais["test_accuracy"],
            accuracy,
            lower_is_better=False,
            tolerance=noise,
            digits=4,
        ),
        Comparison(
            f"test accuracy against uniform SGD at {epochs} epochs",
            rais["test_accuracy"],
            compressed["test_accuracy"],
            lower_is_better=False,
            tolerance=noise,
            digits=4,
        ),
    ]


def verdict(comparisons: list[Comparison]) -> str:
    """One sentence: where RAIS wins, ties and does not win, with the numbers."""
    groups = {
        outcome: ", ".join(c.describe() for c in comparisons if c.outcome() == outcome)
        for outcome in ("wins", "ties", "loses")
    }
    parts = [f"RAIS wins on {groups['wins'] or 'none of these measures'}"]
    if groups["ties"]:
        parts.append(f"it ties (within noise) on {groups['ties']}")
    if groups["loses"]:
        parts.append(f"it does not win on {groups['loses']}")
    return "; ".join(parts) + "."


def run_rais_demo(settings: RaisDemo = RAIS_DEMO) -> pd.DataFrame:
    """Race RAIS against uniform SGD on generated data; print a Markdown table and a verdict.

    Uniform SGD, RAIS (its defaults otherwise) and uniform SGD compressed to
    RAIS's epochs train with one torch thread; after training, the weights
    kept at the end of every epoch are evaluated on the whole training set.

    Returns
    -------
    table : DataFrame
        One row per run: epochs run, epochs equivalent, training seconds (sum
        of the epochs' durations), final full training loss, test accuracy,
        and epochs and seconds to reach uniform SGD's final full training
        loss, with their ratios to uniform SGD's.
    """
    split = settings.split()
    speed = settings.speed_settings()
    parameters = speed.training_parameters("sgd")
    fit = partial(fit_curve, split, speed.budget, full_loss=True)
    with single_thread_timing():
        runs = race_against_uniform_sgd(fit, "rais", RAIS_LABEL, parameters, parameters)
    results = race_results(runs, FULL_LOSS)
    epochs = len(runs[RAIS_LABEL][0])
    table = race_table(results, f"uniform SGD, RAIS's {epochs} epochs")
    budget = speed.budget
    print(
        f"\nRAIS vs uniform SGD: make_classification, {settings.n_samples} rows x "
        f"{settings.n_features} features, {settings.n_classes} classes, "
        f"{100 * settings.label_noise:g} % random labels (80 % train / 20 % test);\n"
        f"MLP {budget.hidden_layer_sizes}, SGD momentum 0.9, lr {budget.lr:g}, cosine schedule "
        f"over {budget.max_epochs} epochs (RAIS: epochs equivalent), batch {budget.batch_size}, "
        f"seed {settings.seed}, one torch thread.\n"
        "train s: sum of the epochs' durations. full train loss: mean cross-entropy over the "
        "whole training set,\nmeasured after training on the weights of every epoch. target: "
        "uniform SGD's final full training loss\n(in parentheses: ratio to uniform SGD's epochs "
        "and seconds to it).\n"
    )
    print(markdown_table(table))
    print("\n" + verdict(race_comparisons(results, len(split.y_test))))
    return table


def run_demo(
    n_splits: int = 5, n_repeats: int = 2, max_epochs: int = 50
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run both parts: :func:`run_rgd_demo` (with these arguments), then :func:`run_rais_demo`.

    The RAIS part runs :data:`RAIS_DEMO`, looked up at call time.

    Returns
    -------
    rgd_table, rais_table : DataFrame
    """
    return run_rgd_demo(n_splits, n_repeats, max_epochs), run_rais_demo(RAIS_DEMO)
