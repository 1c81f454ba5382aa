"""Time the solvers of (PT): projected Newton, cold and warm-started, against cvxpy + Clarabel.

Instances are drawn by ``tests/pt_instances.py`` the way RAIS training
produces them (moving-average features with a bias column, heavy-tailed
norms, importance weights ``1 / (n p)`` spanning two orders of magnitude).
For each :math:`|D|` two record sets are drawn from one population, as two
consecutive solves in training: the first is solved once, and the second is
solved

- ``newton cold``: by the Newton solver from its default start;
- ``newton warm``: by the Newton solver started from the first set's solution;
- ``cvxpy``: by cvxpy with Clarabel (above ``--cvxpy-up-to`` records only with
  ``--cvxpy-all``: about 15 s at 50,000).

The instances recorded from real training runs in ``tests/data`` are timed
too (warm: from the preceding recorded solve of the same run). Everything runs
on one thread (BLAS and torch). The table gives the median time over
``--repeats`` solves (cvxpy: ``--cvxpy-repeats``), the iterations, the cost per
record (one solve per :math:`|D|/M` steps, so solve time / :math:`|D|` is the
amortised cost per training example per epoch), the relative difference of
(PT)'s objective :math:`\\langle m, d\\rangle` to cvxpy's, and the total
variation distance between the two sampling distributions (Proposition 4.1)
over the records' features.

    .venv/bin/python benchmarks/bench_pt.py
    .venv/bin/python benchmarks/bench_pt.py --sizes 2000 20000 50000 --cvxpy-all
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.pt_instances, the generator shared with the tests

from sk_reweight._rais._uncertainty import (  # noqa: E402
    SolverError,
    UncertaintySet,
    robust_scores,
    sampling_distribution,
    solve_uncertainty_set,
)
from sk_reweight.harness._evaluation import markdown_table  # noqa: E402
from tests.pt_instances import PTRecords, draw_pt_records  # noqa: E402

COLUMNS = (
    "instance",
    "|D|",
    "solver",
    "median ms",
    "iterations",
    "µs / record",
    "objective rel. diff. to cvxpy",
    "TV to cvxpy",
)
CONSECUTIVE_RECORDED = {"pt_digits_28.npz": "pt_digits_27.npz"} | {
    "pt_classification_30.npz": "pt_classification_29.npz"
}


def timed_solves(records: PTRecords, repeats: int, **options) -> tuple[UncertaintySet, float]:
    """The solution and the median wall-clock seconds of ``repeats`` solves."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = solve_uncertainty_set(*records, **options)
        seconds.append(time.perf_counter() - start)
    return found, statistics.median(seconds)


def sampling(features: np.ndarray, found: UncertaintySet) -> torch.Tensor:
    scores = robust_scores(*(torch.as_tensor(features @ v) for v in (found.c, found.d)))
    return sampling_distribution(scores)


def row(
    instance: str,
    records: PTRecords,
    solver: str,
    found: UncertaintySet,
    seconds: float,
    reference: UncertaintySet | None,
) -> dict:
    n_records = len(records.norms)
    if reference is None:
        difference = distance = "—"
    else:
        objective = records.mean_features @ found.d
        reference_objective = records.mean_features @ reference.d
        difference = f"{abs(objective - reference_objective) / reference_objective:.1e}"
        gap = sampling(records.features, found) - sampling(records.features, reference)
        distance = f"{0.5 * gap.abs().sum().item():.1e}"
    values = (
        instance,
        f"{n_records:,}",
        solver + ("" if found.fallback_reason is None else " (fell back to cvxpy)"),
        f"{seconds * 1e3:.1f}",
        found.iterations,
        f"{seconds * 1e6 / n_records:.2f}",
        difference,
        distance,
    )
    return dict(zip(COLUMNS, values, strict=True))


def compare(
    instance: str, records: PTRecords, initial: UncertaintySet | None, args, with_cvxpy: bool
) -> list[dict]:
    """Rows for Newton cold, Newton warm (if ``initial``) and cvxpy on one instance."""
    reference = failure = None
    if with_cvxpy:
        try:
            reference, cvxpy_seconds = timed_solves(records, args.cvxpy_repeats, solver="cvxpy")
        except SolverError as exc:
            failure = dict.fromkeys(COLUMNS, "—") | {
                "instance": instance,
                "|D|": f"{len(records.norms):,}",
                "solver": f"cvxpy: {exc}",
            }
    cold, cold_seconds = timed_solves(records, args.repeats)
    rows = [row(instance, records, "newton cold", cold, cold_seconds, reference)]
    if initial is not None:
        warm, warm_seconds = timed_solves(records, args.repeats, initial=initial)
        rows.append(row(instance, records, "newton warm", warm, warm_seconds, reference))
    if reference is not None:
        rows.append(row(instance, records, "cvxpy", reference, cvxpy_seconds, None))
    if failure is not None:
        rows.append(failure)
    return rows


def load_recorded(path: Path) -> PTRecords:
    with np.load(path) as stored:
        return PTRecords(*(stored[key].astype(np.float64) for key in PTRecords._fields))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 50000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cvxpy-repeats", type=int, default=3)
    parser.add_argument("--cvxpy-up-to", type=int, default=20000)
    parser.add_argument("--cvxpy-all", action="store_true", help="cvxpy at every size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(1):
        for size in args.sizes:
            previous = draw_pt_records(args.seed, size, population_seed=args.seed)
            current = draw_pt_records(args.seed + 1, size, population_seed=args.seed)
            initial = solve_uncertainty_set(*previous)
            with_cvxpy = args.cvxpy_all or size <= args.cvxpy_up_to
            rows += compare("drawn", current, initial, args, with_cvxpy)
        for path in sorted((ROOT / "tests" / "data").glob("pt_*.npz")):
            records = load_recorded(path)
            preceding = CONSECUTIVE_RECORDED.get(path.name)
            initial = None
            if preceding is not None:
                initial = solve_uncertainty_set(*load_recorded(path.parent / preceding))
            rows += compare(path.stem, records, initial, args, with_cvxpy=True)
    print(markdown_table(pd.DataFrame(rows, columns=COLUMNS)))


if __name__ == "__main__":
    main()
