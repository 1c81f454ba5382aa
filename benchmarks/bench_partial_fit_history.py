"""What one ``partial_fit`` call costs as the history grows (issue 19).

A classifier fed the same small chunk call after call: each call trains one
epoch and, to be left unchanged if the call fails, keeps what it needs to
restore the fitted net. The script times single calls at a few history
lengths, with the median of ``--repeats`` calls around each.

    OMP_NUM_THREADS=1 python benchmarks/bench_partial_fit_history.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sk_reweight import ERMClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = ERMClassifier(random_state=0, batch_size=64, hidden_layer_sizes=(32,))
    model.partial_fit(X, y, classes=[0, 1, 2])
    print("history length | median ms per call (repeats)")
    for target in args.calls:
        while model.n_iter_ < target:
            model.partial_fit(X, y)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.partial_fit(X, y)
            seconds.append(time.perf_counter() - start)
        print(f"{model.n_iter_:>14} | {1e3 * statistics.median(seconds):.1f} ({args.repeats})")


if __name__ == "__main__":
    main()
