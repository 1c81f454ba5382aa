"""Weighted batch norm's forward plus backward against torch's native batch norm (CPU).

Times, on the default CNN's batch-norm shapes, one training-mode forward pass and the
backward pass to the input, the scale and the shift (``torch.autograd.grad`` of a fixed
output gradient, so nothing accumulates) of

- ``native``: :func:`torch.nn.functional.batch_norm` (what ERM runs), running statistics
  updated;
- ``pure``: :func:`sk_reweight._batchnorm.weighted_batch_norm`, the reference chain of
  elementwise operations (what RAIS ran before the fused function);
- ``fused``: :func:`sk_reweight._batchnorm.fused_weighted_batch_norm` (what
  :class:`~sk_reweight._batchnorm.WeightedBatchNorm2d` runs under RAIS),

with importance weights ``1 / (n p_i)`` of a random sampling distribution. One torch
thread; every repeat times each implementation once (``--calls`` calls), in an order
rotated from repeat to repeat, after a warm-up. Reported per shape: the median time per
call and the median of the per-repeat ratios to ``native`` with their quartiles (a
ratio within a repeat cancels the machine's drift). Times are the thread's CPU time
(``--clock thread``, the default: on a shared machine it leaves out the time the thread
waits for a core, which wall-clock time charges to whatever runs) or wall-clock time
(``--clock wall``). ``--profile`` prints torch's
profiler's top operations of each implementation on the first shape instead.

``--fit`` times whole training steps instead: the default CNN trained on ``--rows``
Fashion-MNIST images (batch 64, SGD with momentum 0.9, lr 0.02, cosine schedule, one
thread) by uniform SGD (:class:`~sk_reweight.ERMClassifier`, torch's batch norm) and by
RAIS (:class:`~sk_reweight.RAISClassifier`) with the reference formula (the layer's call
of the fused function swapped for the formula during that fit) and with the fused
function, alternating ``--repeats`` times; per step: the median over epochs 2 and later
(RAIS samples uniformly in its first epoch) of the epoch's duration over its steps.

    python benchmarks/bench_batchnorm.py
    python benchmarks/bench_batchnorm.py --batch-sizes 64 --repeats 60
    python benchmarks/bench_batchnorm.py --profile --shapes 64,32,28,28
    python benchmarks/bench_batchnorm.py --fit --rows 3000 --epochs 4 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch.nn import functional
from torch.profiler import ProfilerActivity, profile

from sk_reweight import ERMClassifier, RAISClassifier, _batchnorm
from sk_reweight._batchnorm import fused_weighted_batch_norm, weighted_batch_norm
from sk_reweight.datasets import load_dataset
from sk_reweight.harness._evaluation import markdown_table

CHANNEL_SHAPES = [(32, 28, 28), (64, 14, 14), (32, 8, 8), (64, 8, 8)]
"""(channels, height, width) of the default CNN's batch norms on 28x28 and 8x8 images."""

MOMENTUM, EPS = 0.1, 1e-5


def implementations(
    shape: tuple[int, ...], generator: torch.Generator
) -> dict[str, Callable[[], tuple[torch.Tensor, ...]]]:
    """One forward-plus-backward call of each implementation on the same data."""
    n, channels = shape[:2]
    X = torch.randn(shape, generator=generator).requires_grad_()
    grad_out = torch.randn(shape, generator=generator)
    gamma = (1 + 0.1 * torch.randn(channels, generator=generator)).requires_grad_()
    beta = (0.1 * torch.randn(channels, generator=generator)).requires_grad_()
    probabilities = torch.rand(n, generator=generator) + 0.1
    probabilities /= probabilities.sum()
    example_weight = 1 / (n * probabilities)
    running = {name: (torch.zeros(channels), torch.ones(channels)) for name in ("n", "p", "f")}

    def native():
        out = functional.batch_norm(X, *running["n"], gamma, beta, True, MOMENTUM, EPS)
        return torch.autograd.grad(out, (X, gamma, beta), grad_out)

    def pure():
        out = weighted_batch_norm(X, example_weight, *running["p"], gamma, beta, MOMENTUM, EPS)
        return torch.autograd.grad(out, (X, gamma, beta), grad_out)

    def fused():
        out = fused_weighted_batch_norm(
            X, example_weight, *running["f"], gamma, beta, MOMENTUM, EPS
        )
        return torch.autograd.grad(out, (X, gamma, beta), grad_out)

    return {"native": native, "pure": pure, "fused": fused}


CLOCKS = {"thread": time.thread_time, "wall": time.perf_counter}


def time_shape(shape: tuple[int, ...], repeats: int, calls: int, warmup: int, clock: str) -> dict:
    """Median ms per call of each implementation and the per-repeat ratios to native."""
    now = CLOCKS[clock]
    functions = implementations(shape, torch.Generator().manual_seed(0))
    names = list(functions)
    for function in functions.values():
        for _ in range(warmup):
            function()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            start = now()
            for _ in range(calls):
                functions[name]()
            seconds[name].append((now() - start) / calls)
    row: dict = {"shape": "x".join(map(str, shape))}
    native = np.array(seconds["native"])
    for name in names:
        row[f"{name} ms"] = round(1e3 * statistics.median(seconds[name]), 3)
    for name in names[1:]:
        ratios = np.array(seconds[name]) / native
        q1, median, q3 = np.percentile(ratios, [25, 50, 75])
        row[f"{name} / native"] = f"{median:.2f} ({q1:.2f}-{q3:.2f})"
    return row


def print_profiles(shape: tuple[int, ...], calls: int, rows: int) -> None:
    """torch.profiler's top operations (by self CPU time) of each implementation."""
    functions = implementations(shape, torch.Generator().manual_seed(0))
    for name, function in functions.items():
        for _ in range(5):
            function()
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(calls):
                function()
        print(f"\n## {name}, shape {shape}, {calls} calls\n")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def fit_step_ms(estimator, X, y, settings: dict) -> float:
    """Median over epochs 2 and later of the epoch's duration over its steps, in ms."""
    model = estimator(**settings).fit(X, y)
    durations = np.array(model.history_[:, "dur"]) / np.array(
        model.history_[:, "train_batch_count"]
    )
    return 1e3 * float(np.median(durations[1:]))


def time_fit_steps(rows: int, epochs: int, repeats: int) -> pd.DataFrame:
    """Per-step ms of uniform SGD, RAIS with the reference formula and RAIS fused."""
    data = load_dataset("fashion_mnist")
    X, y = data.data[:rows], data.target[:rows]
    settings = dict(
        optimizer="sgd",
        momentum=0.9,
        lr=0.02,
        lr_schedule="cosine",
        batch_size=64,
        max_epochs=epochs,
        device="cpu",
        random_state=0,
    )
    steps: dict[str, list[float]] = {"uniform SGD": [], "RAIS, formula": [], "RAIS, fused": []}
    for _ in range(repeats):
        steps["uniform SGD"].append(fit_step_ms(ERMClassifier, X, y, settings))
        _batchnorm.fused_weighted_batch_norm = weighted_batch_norm  # the layer's call
        try:
            steps["RAIS, formula"].append(fit_step_ms(RAISClassifier, X, y, settings))
        finally:
            _batchnorm.fused_weighted_batch_norm = fused_weighted_batch_norm
        steps["RAIS, fused"].append(fit_step_ms(RAISClassifier, X, y, settings))
    uniform = np.array(steps["uniform SGD"])
    return pd.DataFrame(
        [
            {
                "method": name,
                "step ms": f"{np.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})",
                "vs uniform SGD": f"{np.median(np.array(ms) / uniform):.2f}",
            }
            for name, ms in steps.items()
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=None,
        help="full shapes N,C,H,W (default: the batch sizes times the default CNN's shapes)",
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calls", type=int, default=5, help="calls per timed sample")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clock", choices=list(CLOCKS), default="thread")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rows", type=int, default=12)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fit:
        table = time_fit_steps(args.rows, args.epochs, args.repeats)
        print(
            f"default CNN, {args.rows} Fashion-MNIST images, batch 64, one torch thread; per "
            f"step: medians (min-max) of {args.repeats} alternating repeats\n"
        )
        print(markdown_table(table))
        return
    if args.shapes:
        shapes = [tuple(int(size) for size in shape.split(",")) for shape in args.shapes]
    else:
        shapes = [(n, *rest) for n in args.batch_sizes for rest in CHANNEL_SHAPES]
    if args.profile:
        print_profiles(shapes[0], 20, args.profile_rows)
        return
    table = pd.DataFrame(
        [time_shape(s, args.repeats, args.calls, args.warmup, args.clock) for s in shapes]
    )
    print(
        f"forward + backward per call ({args.clock} clock), one torch thread, torch "
        f"{torch.__version__}; medians of "
        f"{args.repeats} interleaved repeats of {args.calls} calls, ratios: median "
        "(quartiles) of the per-repeat ratios\n"
    )
    print(markdown_table(table))


if __name__ == "__main__":
    main()
