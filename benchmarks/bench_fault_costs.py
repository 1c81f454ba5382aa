"""What the fault tolerance of issue 17 costs: a checkpoint's fingerprint, FitDropout.

1. Fingerprint: seconds to digest training data (SHA-256 of X, y, sample
   weights), at 10 and 100 MB of float32 inputs.
2. Dropout: one training step (forward, backward, SGD) of the default MLP
   (64 -> 100 -> 10, dropout 0.3, batch 200) with :class:`torch.nn.Dropout`
   against :class:`sk_reweight._dropout.FitDropout` drawing from a fit's
   generator, interleaved in this process after a warm-up; the ratio per
   repetition, and its spread.

    python benchmarks/bench_fault_costs.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from sk_reweight._checkpoint import _digest
from sk_reweight._dropout import FitDropout
from sk_reweight._fit_context import RunningFit, fitting

torch.set_num_threads(1)


def fingerprint_seconds(megabytes: int, repeats: int = 3) -> list[float]:
    X = np.random.default_rng(0).random((megabytes * 2**20 // 256, 64), dtype=np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _digest(X)
        times.append(time.perf_counter() - start)
    return times


def step_seconds(dropout: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), dropout, nn.Linear(100, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    for megabytes in (10, 100):
        times = fingerprint_seconds(megabytes)
        print(
            f"fingerprint of {megabytes} MB: {min(times):.3f} s (max {max(times):.3f}), "
            f"{megabytes / min(times):.0f} MB/s"
        )
    X, y = torch.randn(200, 64), torch.randint(0, 10, (200,))
    empty = np.zeros((1, 1), np.float32)
    fit = RunningFit(None, empty, empty, empty, warm=False, seed=0)
    with fitting(fit):
        for _ in range(2):  # warm-up
            step_seconds(nn.Dropout(0.3), X, y, 200)
            step_seconds(FitDropout(0.3), X, y, 200)
        ratios, plain, ours = [], [], []
        for _ in range(7):
            plain.append(step_seconds(nn.Dropout(0.3), X, y, 500))
            ours.append(step_seconds(FitDropout(0.3), X, y, 500))
            ratios.append(ours[-1] / plain[-1])
    print(
        f"training step, nn.Dropout {statistics.median(plain) * 1e6:.0f} us, FitDropout "
        f"{statistics.median(ours) * 1e6:.0f} us; ratio median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}, 7 repetitions)"
    )


if __name__ == "__main__":
    main()
