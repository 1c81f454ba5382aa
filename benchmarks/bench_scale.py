"""A million rows: peak memory, seconds per epoch and RAIS's per-example state.

Every method trains in a fresh child process (so that its peak resident memory
is its own) on the same generated data: ``--rows`` x ``--features`` standard
normal inputs (float32, or float64 with ``--dtype``), two classes from a noisy
non-linear rule. The child reports its resident memory before and after
generating the data, its peak (``ru_maxrss``) and each epoch's duration; for
RAIS also the bytes of its per-example state (norm histories, features,
scores, sampling table, outlier bounds: every tensor of the policy with one
entry per training example), measured at the end of every epoch, while training runs.

    python benchmarks/bench_scale.py                       # 1,000,000 x 50, ERM, RGD, RAIS
    python benchmarks/bench_scale.py --rows 100000 --epochs 2
    python benchmarks/bench_scale.py --dtype float64 --methods erm --epochs 1
    python benchmarks/bench_scale.py --rows 200000 --epochs 2 --precision bf16

Results are printed as a Markdown table; ``docs/scaling.md`` records them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from skorch.callbacks import Callback

MiB = 2**20


def resident_bytes() -> int:
    """This process's current resident memory (Linux)."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize()


def generated_data(rows: int, features: int, seed: int = 0, dtype: str = "float32"):
    """Standard normal inputs; labels from a noisy non-linear rule (about balanced)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32).astype(dtype, copy=False)
    w = rng.standard_normal(features).astype(np.float32) / np.sqrt(features)
    score = X @ w + 0.5 * np.sin(3 * X[:, 0]) * X[:, 1] + 0.3 * rng.standard_normal(rows)
    return X, (score > 0).astype(np.int64)


def per_example_bytes(policy, n: int) -> int:
    """Bytes of the distinct tensors held by ``policy`` (and its attributes' objects) that have
    an axis of length ``n``: the state RAIS keeps per training example. The training data
    (``policy.dataset``), the network and the gradient probe are not counted."""
    seen: dict[int, int] = {}

    def visit(value, depth):
        if isinstance(value, torch.Tensor):
            if n in value.shape:
                seen[value.data_ptr()] = value.nbytes
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item, depth)
        elif depth < 2 and hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module):
            for key, item in vars(value).items():
                if key not in {"dataset", "module", "probe", "generator", "sampler"}:
                    visit(item, depth + 1)

    visit(policy, 0)
    return sum(seen.values())


class StateProbe(Callback):
    """Records the policy's per-example bytes at the end of every epoch (the largest seen)."""

    def __init__(self):
        self.largest = 0

    def __deepcopy__(self, memo):
        return self

    def on_epoch_end(self, net, **kwargs):
        policy = net.policy
        self.largest = max(self.largest, per_example_bytes(policy, policy.n_samples))


def child(args: argparse.Namespace) -> dict:
    """Train one method and return its measurements."""
    from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier

    torch.set_num_threads(args.threads)
    start_rss = resident_bytes()
    X, y = generated_data(args.rows, args.features, dtype=args.dtype)
    data_rss = resident_bytes()
    probe = StateProbe()
    classifier = {"erm": ERMClassifier, "rgd": RGDClassifier, "rais": RAISClassifier}[args.child]
    model = classifier(
        hidden_layer_sizes=tuple(args.hidden),
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        n_iter_no_change=None,  # every epoch of the budget
        device="cpu",
        precision=args.precision,
        random_state=0,
        callbacks=[probe],
    )
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    history = model.history_
    return {
        "method": args.child,
        "rows": args.rows,
        "features": args.features,
        "data_mib": X.nbytes / MiB,
        "rss_before_data_mib": start_rss / MiB,
        "rss_with_data_mib": data_rss / MiB,
        "peak_rss_mib": peak / MiB,
        "training_overhead_mib": (peak - data_rss) / MiB,
        "epoch_seconds": [round(record["dur"], 2) for record in history],
        "epochs_equivalent": float(history[-1].get("epochs_equivalent", len(history))),
        "fit_seconds": seconds,
        "state_bytes_per_example": probe.largest / args.rows,
        "accuracy_on_first_100k": float(model.score(X[:100_000], y[:100_000])),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"], help="of the inputs"
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--methods", nargs="+", default=["erm", "rgd", "rais"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    results = []
    for method in args.methods:
        command = [sys.executable, __file__, *sys.argv[1:], "--child", method]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(
        f"{args.rows:,} x {args.features} {args.dtype} ({results[0]['data_mib']:.0f} MiB), MLP "
        f"{args.hidden}, batch {args.batch_size}, {args.epochs} epochs, {args.threads} thread(s), "
        f"precision {args.precision}\n"
    )
    print(
        "| method | peak RSS (MiB) | over the data in memory (MiB) | seconds per epoch | "
        "epochs equivalent | per-example state (bytes) |"
    )
    print("|---|---|---|---|---|---|")
    for row in results:
        epochs = ", ".join(f"{value:.1f}" for value in row["epoch_seconds"])
        print(
            f"| {row['method']} | {row['peak_rss_mib']:.0f} | {row['training_overhead_mib']:.0f} "
            f"| {epochs} | {row['epochs_equivalent']:.2f} | "
            f"{row['state_bytes_per_example']:.0f} |"
        )


if __name__ == "__main__":
    main()
