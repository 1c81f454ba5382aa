"""How often RAIS's (PT) solver struggles on unscaled data, and what telling it costs.

Two measurements behind the solver messages of issue 18:

- ``events``: ``RAISClassifier`` (defaults otherwise) on scikit-learn's wine
  data as loaded (proline in the hundreds to thousands), for ``--seeds`` seeds
  and ``--epochs`` epochs: the epochs in which a Newton solve fell back to cvxpy
  or a solve failed, and the one warning of each fit.
- ``cvxpy``: ``Problem.solve`` against the documented steps that
  ``solve_pt_cvxpy`` now takes instead (``get_problem_data``,
  ``solve_via_data``, ``invert``, ``unpack``: the same work without cvxpy's own
  warning), alternating, on instances drawn by ``tests/pt_instances.py``.

    .venv/bin/python benchmarks/bench_solver_events.py events --seeds 10 --epochs 40
    .venv/bin/python benchmarks/bench_solver_events.py cvxpy --sizes 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def events(seeds: int, epochs: int, batch_size: int) -> None:
    from sklearn.datasets import load_wine

    from sk_reweight import RAISClassifier

    X, y = load_wine(return_X_y=True)
    for seed in range(seeds):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = RAISClassifier(
                max_epochs=epochs, batch_size=batch_size, random_state=seed, device="cpu"
            ).fit(X, y)
        seconds = time.perf_counter() - start
        marked = [
            (epoch["epoch"], "failed" if epoch["solve_status"] == "failed" else "fallback")
            for epoch in model.history_
            if epoch["solve_status"] == "failed" or epoch["solver_fallbacks"]
        ]
        messages = [str(w.message)[:90] for w in caught if "(PT)" in str(w.message)]
        raw = [w for w in caught if w.category is UserWarning]
        print(f"seed {seed}: {seconds:.1f} s, events {marked}, {messages}, raw {len(raw)}")


def solve_whole(problem, solver: str = "CLARABEL"):
    """``solve_pt_cvxpy`` as it was: one ``Problem.solve``."""
    from sk_reweight._rais._cvxpy import cvxpy_pt_problem

    pt, c, d = cvxpy_pt_problem(problem)
    pt.solve(solver=solver)
    return np.clip(c.value, 0.0, None), np.clip(d.value, 0.0, None)


def cvxpy_paths(sizes: list[int], repeats: int) -> None:
    from sk_reweight._rais._cvxpy import solve_pt_cvxpy
    from sk_reweight._rais._pt_problem import prepare_pt_problem
    from tests.pt_instances import draw_pt_records

    paths = {"Problem.solve": solve_whole, "steps": lambda p: tuple(solve_pt_cvxpy(p)[:2])}
    for size in sizes:
        problem = prepare_pt_problem(*draw_pt_records(0, size))
        times: dict[str, list[float]] = {name: [] for name in paths}
        for repeat in range(repeats):
            for name in list(paths)[:: 1 if repeat % 2 == 0 else -1]:
                start = time.perf_counter()
                paths[name](problem)
                times[name].append(time.perf_counter() - start)
        whole, steps = solve_whole(problem), paths["steps"](problem)
        difference = max(np.abs(a - b).max() for a, b in zip(whole, steps, strict=True))
        ratios = np.array(times["steps"]) / np.array(times["Problem.solve"])
        for name, values in times.items():
            print(
                f"|D|={size} {name}: median {np.median(values):.3f} s "
                f"(min {min(values):.3f}, max {max(values):.3f}), {repeats} runs"
            )
        print(
            f"|D|={size} steps / Problem.solve: median {np.median(ratios):.3f} "
            f"(min {ratios.min():.3f}, max {ratios.max():.3f}); max |c, d difference| "
            f"{difference:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["events", "cvxpy"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "events":
        events(args.seeds, args.epochs, args.batch_size)
    else:
        cvxpy_paths(args.sizes, args.repeats)


if __name__ == "__main__":
    main()
