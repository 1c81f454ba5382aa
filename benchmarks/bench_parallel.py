"""Wall-clock of one ``sk-reweight bench`` run serially, with ``--n-jobs N`` and on a cluster.

Runs the same bench command three times, each as a fresh subprocess: serially,
with ``--n-jobs N`` (a LocalCluster the command starts itself), and with
``--scheduler`` pointed at an N-worker :class:`~distributed.LocalCluster`
(processes, one thread each, the worker settings of ``--n-jobs``)
that this script starts beforehand, as a user's cluster would be. It reports
each run's wall-clock and checks that every score column of ``results.csv`` is
identical to the serial run's.

    python benchmarks/bench_parallel.py --output results/parallel -- \
        --datasets adult letter pendigits phoneme spambase satimage \
        --methods erm rgd erm_sgd --cv 3 --max-rows 5000 --max-epochs 30 --no-tune

Everything after ``--`` is passed to ``sk-reweight bench``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

KEY = ["dataset", "seed", "fold", "method", "split"]
SCORES = ["accuracy", "balanced_accuracy", "log_loss", "macro_f1", "params"]


def run(arguments: list[str], output: Path) -> float:
    """Seconds that ``sk-reweight bench ARGUMENTS --output OUTPUT`` takes."""
    command = [sys.executable, "-m", "sk_reweight", "bench", *arguments, "--output", str(output)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def scores(output: Path) -> pd.DataFrame:
    results = pd.read_csv(output / "results.csv")
    return results.sort_values(KEY, ignore_index=True)[KEY + SCORES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/parallel"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- then bench's arguments")
    args = parser.parse_args()
    bench = [argument for argument in args.bench if argument != "--"]

    import dask
    from distributed import LocalCluster

    from sk_reweight.harness._parallel import worker_settings

    seconds = {"serial": run(bench, args.output / "serial")}
    n_jobs = ["--n-jobs", str(args.workers)]
    seconds[f"--n-jobs {args.workers}"] = run([*bench, *n_jobs], args.output / "n_jobs")
    with (
        dask.config.set(worker_settings()),  # as --n-jobs does
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        where = ["--scheduler", cluster.scheduler_address]
        label = f"--scheduler ({args.workers}-worker LocalCluster, started)"
        seconds[label] = run([*bench, *where], args.output / "cluster")

    serial = scores(args.output / "serial")
    print(f"bench {' '.join(bench)}\n{len(serial)} result rows\n")
    print("| run | wall-clock (s) | speed-up | scores identical to serial |")
    print("|---|---|---|---|")
    directories = ["serial", "n_jobs", "cluster"]
    for (label, elapsed), name in zip(seconds.items(), directories, strict=True):
        identical = scores(args.output / name).equals(serial)
        print(
            f"| {label} | {elapsed:.0f} | {seconds['serial'] / elapsed:.2f}x | "
            f"{'yes' if identical else 'NO'} |"
        )


if __name__ == "__main__":
    main()
