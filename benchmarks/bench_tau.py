"""Test accuracy of RGDClassifier for a grid of tau, paired against ERMClassifier.

On small datasets bundled with scikit-learn (no download), every method is
scored by repeated stratified K-fold cross-validation as
``make_pipeline(StandardScaler(), classifier)``, so that scaling is fit per
fold. The methods are ERMClassifier, RGDClassifier (``weighting='exp'``, the
paper's weights) at every tau of the grid and, optionally, RGDClassifier with
``weighting='normalized_exp'`` at one tau: the same weights divided by their
batch mean, which keeps ERM's step size and so separates the effect of the
reweighting from that of a larger effective learning rate. All methods share
the network, optimizer, learning rate, batch size and number of epochs (no
early stopping), and in each fold the same ``random_state`` (1000 x repetition +
fold, the harness's seeding rule), hence the same
initialisation and minibatch order: differences to ERM are paired by fold.

For each dataset and method the script reports the mean and standard deviation
of test accuracy over the folds, the mean paired difference to ERM in
percentage points, the folds that RGD wins, ties and loses, and two p-values of
the paired difference: the plain paired t-test (``scipy.stats.ttest_rel``),
which is optimistic because the training sets of the folds overlap, and the
Nadeau-Bengio corrected resampled t-test, which accounts for that overlap. It
then ranks the methods by mean accuracy on each dataset (1 = best, ties
averaged), averages the ranks over datasets and names the best tau of the
paper's weighting twice: by mean rank and by the mean difference to ERM (the
two disagree when the differences are noise).

    python benchmarks/bench_tau.py
    python benchmarks/bench_tau.py --datasets digits wine --taus 1 3 --folds 10 --repeats 3

The default run (4 datasets, ERM + 6 taus + 1 normalised, 5 folds x 2 repeats,
100 epochs: 320 fits) takes about 3 minutes on 2 CPU cores. torch runs with
one thread by default (``--threads``): these networks are too small to gain
from more, and on a busy machine two threads per process made training 30 to
40 times slower.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.harness._evaluation import (
    PairedComparison,
    compare_methods,
    cross_validate_methods,
)

DATASETS: dict[str, Callable[..., tuple[NDArray, NDArray]]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
}
BASELINE = "ERM"


def rgd_name(tau: float, weighting: str = "exp") -> str:
    prefix = "RGD" if weighting == "exp" else "RGD-norm"
    return f"{prefix} tau={tau:g}"


def make_methods(
    taus: Sequence[float], normalized_tau: float | None, shared: dict
) -> dict[str, BaseEstimator]:
    """ERM, RGD at every tau and, unless ``normalized_tau`` is None, normalised RGD at it.

    Each behind a StandardScaler, fitted per fold.
    """
    classifiers: dict[str, BaseEstimator] = {BASELINE: ERMClassifier(**shared)}
    for tau in taus:
        classifiers[rgd_name(tau)] = RGDClassifier(tau=tau, **shared)
    if normalized_tau is not None:
        classifiers[rgd_name(normalized_tau, "normalized_exp")] = RGDClassifier(
            tau=normalized_tau, weighting="normalized_exp", **shared
        )
    return {name: make_pipeline(StandardScaler(), c) for name, c in classifiers.items()}


def mean_ranks(results: dict[str, dict[str, PairedComparison]]) -> dict[str, float]:
    """Rank of each method by mean accuracy on each dataset (1 = best), averaged over datasets."""
    methods = list(next(iter(results.values())))
    ranks = [
        stats.rankdata([-by_method[name].mean for name in methods])
        for by_method in results.values()
    ]
    return dict(zip(methods, np.mean(ranks, axis=0), strict=True))


def results_table(results: dict[str, dict[str, PairedComparison]]) -> str:
    lines = [
        "| dataset | method | accuracy (mean ± std) | Δ vs ERM (pp) | W/T/L | p (t-test) "
        "| p (corrected) |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, by_method in results.items():
        for name, c in by_method.items():
            if name == BASELINE:
                comparison = "| — | — | — | — |"
            else:
                comparison = (
                    f"| {100 * c.difference:+.2f} | {c.wins}/{c.ties}/{c.losses} "
                    f"| {c.p_ttest:.3f} | {c.p_corrected:.3f} |"
                )
            lines.append(f"| {dataset} | {name} | {c.mean:.4f} ± {c.std:.4f} {comparison}")
    return "\n".join(lines)


def mean_diff(results: dict[str, dict[str, PairedComparison]], name: str) -> float:
    """Paired difference of ``name`` to the baseline, averaged over folds, then datasets."""
    return float(np.mean([by_method[name].difference for by_method in results.values()]))


def summary_table(results: dict[str, dict[str, PairedComparison]], ranks: dict[str, float]) -> str:
    lines = [
        "| method | mean rank | mean Δ vs ERM (pp) | W/T/L (all folds) |",
        "|---|---|---|---|",
    ]
    for name, rank in ranks.items():
        comparisons = [by_method[name] for by_method in results.values()]
        diff = mean_diff(results, name)
        wins, ties, losses = (
            sum(getattr(c, outcome) for c in comparisons) for outcome in ("wins", "ties", "losses")
        )
        record = "—" if name == BASELINE else f"{wins}/{ties}/{losses}"
        lines.append(f"| {name} | {rank:.2f} | {100 * diff:+.2f} | {record} |")
    return "\n".join(lines)


def best_tau(taus: Sequence[float], loss: Callable[[str], float]) -> float:
    """The tau whose method of the paper's weighting (by name) has the smallest ``loss``."""
    return min(taus, key=lambda tau: loss(rgd_name(tau)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--taus", type=float, nargs="+", default=[0.5, 1, 2, 3, 5, 10])
    parser.add_argument(
        "--normalized-tau",
        type=float,
        default=1.0,
        help="tau of the extra weighting='normalized_exp' method; <= 0 leaves it out",
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shared = {
        "hidden_layer_sizes": tuple(args.hidden),
        "optimizer": "adam",
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_epochs": args.epochs,
        "n_iter_no_change": None,  # every epoch of the budget
        "device": args.device,
    }
    normalized_tau = args.normalized_tau if args.normalized_tau > 0 else None
    methods = make_methods(args.taus, normalized_tau, shared)
    test_over_train = 1 / (args.folds - 1)

    start = time.perf_counter()
    results: dict[str, dict[str, PairedComparison]] = {}
    for dataset in args.datasets:
        X, y = DATASETS[dataset](return_X_y=True)
        fold_results = cross_validate_methods(X, y, methods, args.folds, range(args.repeats))
        results[dataset] = compare_methods(fold_results, BASELINE, test_over_train)
    elapsed = time.perf_counter() - start

    ranks = mean_ranks(results)
    n_fits = len(args.datasets) * len(methods) * args.folds * args.repeats
    report = "\n\n".join(
        [
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"device={args.device}; "
            f"MLP {tuple(args.hidden)}, Adam lr={args.lr:g}, batch {args.batch_size}, "
            f"{args.epochs} epochs; {args.folds} folds x {args.repeats} repeats; "
            f"{n_fits} fits in {elapsed:.0f} s",
            results_table(results),
            summary_table(results, ranks),
            f"Best tau overall (weighting='exp'): "
            f"{best_tau(args.taus, ranks.__getitem__):g} by mean rank, "
            f"{best_tau(args.taus, lambda name: -mean_diff(results, name)):g} by mean Δ vs ERM",
        ]
    )
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
