"""RAIS's training time per epoch in two checkouts of sk_reweight, interleaved in one process.

A refactoring of RAIS must not slow its step. The candidate is the
``sk_reweight`` this script imports (run it from the candidate's root, with
``PYTHONPATH=.`` where another checkout is installed); the
baseline's package is imported beside it under another name (the package's
imports are all relative), so that both train in the same process, one after
the other, in an order that alternates between repetitions (A B, B A, ...):
the slow drifts of a shared machine fall on both. Each fit trains RAIS on the
CPU with every step importance-sampled and booked (``uniform_fallback=None``,
a small ``|D|`` so that (PT) is solved from the second epoch) and reports its
time per step: the median over its epochs after the second of ``dur`` over
``train_batch_count`` (the last epoch ends early when epochs equivalent
complete the schedule). The script prints, per repetition, the candidate's
time over the baseline's, then their median and range (after one warm-up fit
of each).

``--policy-only`` times the policy alone, the part a refactoring of RAIS
touches: both packages' ``RAISPolicy`` are driven side by side on the same
synthetic minibatches (a linear layer's logits, ``grad_norm='logits'``, no
backward pass), epoch by epoch in alternation, and each epoch's time (draws,
``loss_weights``, block refreshes, (PT) clock) is compared with the other
package's same epoch. Their (PT) solves return a fixed set at once (the
solver is the same code in both, and would dominate the time).

    git archive BASE_COMMIT sk_reweight | tar -x -C /tmp/baseline
    PYTHONPATH=. python benchmarks/bench_rais_checkouts.py /tmp/baseline --repeats 12
    PYTHONPATH=. python benchmarks/bench_rais_checkouts.py /tmp/baseline --refresh-interval 1
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from sklearn.datasets import make_classification

import sk_reweight


def baseline_package(directory: Path) -> ModuleType:
    """The ``sk_reweight`` package under ``directory``, imported as ``sk_reweight_baseline``."""
    root = directory / "sk_reweight"
    spec = importlib.util.spec_from_file_location(
        "sk_reweight_baseline", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    return package


def fit_seconds(package: ModuleType, X, y, args: argparse.Namespace) -> float:
    model = package.RAISClassifier(
        hidden_layer_sizes=(64,), batch_size=128, max_epochs=args.epochs, history_size=2000,
        uniform_fallback=None, n_iter_no_change=None, refresh_interval=args.refresh_interval,
        random_state=0, device="cpu",
    )  # fmt: skip
    model.fit(X, y)
    history = model.history_[2:]
    return statistics.median(e["dur"] / e["train_batch_count"] for e in history)


def policy_epoch_seconds(packages: dict[str, ModuleType], X, y, args) -> dict[str, list]:
    """Per package, the time of each epoch after the second of a RAISPolicy alone."""
    module = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    sample_weight = torch.ones(len(X))
    drivers, seconds = {}, {name: [] for name in packages}
    for name, package in packages.items():
        fixed = package.UncertaintySet(np.full(12, 0.1), np.full(12, 0.01), "optimal", 0.0, "-", 0)
        package._rais._policy.solve_uncertainty_set = lambda *args, fixed=fixed, **kwargs: fixed
        policy = package._rais._policy.RAISPolicy(
            grad_norm="logits", history_size=2000, uniform_fallback=None,
            refresh_interval=args.refresh_interval,
        )  # fmt: skip
        policy.reset(len(X), torch.Generator().manual_seed(0), torch.device("cpu"))
        policy.begin_training(module, package._data.TensorDataset(X, y, sample_weight))
        drivers[name] = (package, policy)
    for epoch in range(args.epochs):
        order = list(drivers) if epoch % 2 == 0 else list(drivers)[::-1]
        for name in order:
            package, policy = drivers[name]
            start = time.perf_counter()
            for indices in policy.epoch_batches(128):
                logits = module(X[indices])
                losses = torch.nn.functional.cross_entropy(logits, y[indices], reduction="none")
                step = package._policies.TrainingStep(
                    X[indices], y[indices], indices, sample_weight[indices], logits,
                    losses.detach(),
                )  # fmt: skip
                policy.loss_weights(step)
            if epoch >= 2:
                seconds[name].append(time.perf_counter() - start)
    for _, policy in drivers.values():
        policy.end_training()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="a directory holding the baseline's package")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--refresh-interval", type=int, default=16)
    parser.add_argument("--policy-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = make_classification(
        n_samples=args.rows, n_features=32, n_informative=16, n_classes=10, random_state=0
    )
    X = X.astype(np.float32)
    packages = {"baseline": baseline_package(args.baseline), "candidate": sk_reweight}
    print({name: package.__file__ for name, package in packages.items()})
    if args.policy_only:
        report_policy_epochs(packages, torch.as_tensor(X), torch.as_tensor(y), args)
        return
    for package in packages.values():
        fit_seconds(package, X, y, args)  # warm-up
    ratios = []
    for repeat in range(args.repeats):
        order = list(packages) if repeat % 2 == 0 else list(packages)[::-1]
        seconds = {name: fit_seconds(packages[name], X, y, args) for name in order}
        ratios.append(seconds["candidate"] / seconds["baseline"])
        print(
            f"repetition {repeat}: per step baseline {seconds['baseline'] * 1e3:.3f} ms, "
            f"candidate {seconds['candidate'] * 1e3:.3f} ms, ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print(
        f"candidate / baseline: median {statistics.median(ratios):.3f}, range "
        f"{min(ratios):.3f} - {max(ratios):.3f} over {len(ratios)} repetitions"
    )


def report_policy_epochs(packages: dict[str, ModuleType], X, y, args) -> None:
    ratios = []
    for repeat in range(args.repeats):
        seconds = policy_epoch_seconds(packages, X, y, args)
        ratios += [c / b for b, c in zip(seconds["baseline"], seconds["candidate"], strict=True)]
        print(
            f"repetition {repeat}: median epoch baseline "
            f"{statistics.median(seconds['baseline']):.3f} s, candidate "
            f"{statistics.median(seconds['candidate']):.3f} s",
            flush=True,
        )
    quartiles = statistics.quantiles(ratios, n=4)
    print(
        f"candidate / baseline per epoch: median {statistics.median(ratios):.3f}, quartiles "
        f"{quartiles[0]:.3f} - {quartiles[2]:.3f}, range {min(ratios):.3f} - {max(ratios):.3f} "
        f"over {len(ratios)} epochs"
    )


if __name__ == "__main__":
    main()
