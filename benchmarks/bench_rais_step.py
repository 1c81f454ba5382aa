"""RAIS's cost per training step, by component, against a uniform SGD step in the same process.

Trains the benchmark MLP (hidden layers ``--hidden``, batch 128, SGD momentum 0.9, cosine
schedule, one torch thread) on ``--rows`` generated rows with ``--features`` features and
``--classes`` classes, first as uniform SGD (:class:`~sk_reweight.ERMClassifier`), then as
RAIS-SGD (:class:`~sk_reweight.RAISClassifier`, the paper's algorithm: ``uniform_fallback=None``,
so that every epoch after the second importance-samples) for each ``--refresh-interval``,
alternating ``--repeats`` times so that the machine's drift hits every variant alike.
Reported per step (medians over repeats; epochs 3 and later, i.e. once RAIS samples from its
uncertainty set):

- ``step ms``: the epoch's duration over its minibatches, and its ratio to uniform SGD's;
- the RAIS policy's own time on the training thread, by component: ``draw`` (sampling table
  draws), ``loss weights`` (per-example norms, outlier caps, the minibatch gradient for the gain
  ratio), ``block refresh`` (histories, features, scores, (PT) records, gain estimate and its
  read, amortised over the block) and ``solve clock`` ((PT) submissions and installations; the
  solves themselves run in a background thread);
- ``bookkeeping ms``: their sum, the issue's budget of 0.25 ms per step;
- ``rest of the difference``: what RAIS's step costs beyond uniform SGD's and the bookkeeping
  (the engine's importance weights and reported loss, the probe's forward hook, the background
  solver's share of the interpreter).

    python benchmarks/bench_rais_step.py
    python benchmarks/bench_rais_step.py --features 784 --classes 10 --rows 45000
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import make_classification

from sk_reweight import ERMClassifier, RAISClassifier
from sk_reweight._rais._policy import RAISPolicy
from sk_reweight.harness._evaluation import markdown_table

COMPONENTS = {
    "draw": "_draw",
    "loss weights": "loss_weights",
    "block refresh": "_end_block",
    "solve clock": "_update_uncertainty_set",
}
"""Timed methods of the policy, by the name of their component."""


class ComponentTimer:
    """Accumulate the wall-clock time spent in the policy's methods of :data:`COMPONENTS`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._originals = {name: getattr(RAISPolicy, name) for name in COMPONENTS.values()}

    def __enter__(self) -> ComponentTimer:
        for component, name in COMPONENTS.items():
            setattr(RAISPolicy, name, self._timed(component, self._originals[name]))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(RAISPolicy, name, original)

    def _timed(self, component: str, method):
        # _end_block may call _refresh, and _update_uncertainty_set may call _end_block: time
        # only the outermost call of each component.
        depth = {"calls": 0}

        @functools.wraps(method)
        def timed(*args, **kwargs):
            depth["calls"] += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                depth["calls"] -= 1
                if depth["calls"] == 0:
                    self.seconds[component] += time.perf_counter() - start

        return timed


def per_step_ms(model, first_epoch: int = 3) -> float:
    """Median epoch duration over its minibatches, from ``first_epoch`` on, in ms."""
    history = model.history_
    durations = np.array(history[:, "dur"]) / np.array(history[:, "train_batch_count"])
    durations = durations[first_epoch - 1 :]
    return 1e3 * float(np.median(durations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=15_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--classes", type=int, default=26)
    parser.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refresh-interval", nargs="+", type=int, default=[16, 1])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    X, y = make_classification(
        args.rows,
        args.features,
        n_informative=min(args.features, 12),
        n_classes=args.classes,
        n_clusters_per_class=1,
        flip_y=0.05,
        random_state=0,
    )
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    shared = dict(
        optimizer="sgd",
        momentum=0.9,
        lr=0.05,
        lr_schedule="cosine",
        batch_size=128,
        hidden_layer_sizes=tuple(args.hidden),
        max_epochs=args.epochs,
        device="cpu",
        random_state=0,
    )
    rows = defaultdict(list)
    for _ in range(args.repeats):
        uniform = per_step_ms(ERMClassifier(**shared).fit(X, y))
        rows["uniform SGD"].append({"step ms": uniform})
        for interval in args.refresh_interval:
            with ComponentTimer() as timer:
                model = RAISClassifier(
                    refresh_interval=interval, uniform_fallback=None, **shared
                ).fit(X, y)
            steps = sum(model.history_[:, "train_batch_count"])
            components = {name: 1e3 * s / steps for name, s in timer.seconds.items()}
            step = per_step_ms(model)
            bookkeeping = sum(components.values())
            rows[f"RAIS, refresh_interval={interval}"].append(
                {
                    "step ms": step,
                    "vs uniform": step / uniform,
                    **components,
                    "bookkeeping ms": bookkeeping,
                    "rest of the difference": step - uniform - bookkeeping,
                }
            )
    table = pd.DataFrame(
        [
            {"method": method, **pd.DataFrame(runs).median().to_dict()}
            for method, runs in rows.items()
        ]
    )
    print(
        f"{args.rows} rows x {args.features} features, {args.classes} classes; MLP "
        f"{tuple(args.hidden)}, batch 128, one torch thread; medians of {args.repeats} repeats; "
        "all times per step, in ms (components: the whole fit's time over its steps)\n"
    )
    print(markdown_table(table.round(3).astype(object).fillna("")))


if __name__ == "__main__":
    main()
