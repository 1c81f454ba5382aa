"""Command line: ``sk-reweight demo`` (also ``python -m sk_reweight demo``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sk-reweight",
        description="Reweighted and importance-sampled training of scikit-learn neural networks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="cross-validate ERM vs RGD on data bundled with scikit-learn (no download)"
    )
    demo.add_argument("--folds", type=int, default=5, help="folds per repetition (default 5)")
    demo.add_argument("--repeats", type=int, default=2, help="repetitions of the CV (default 2)")
    demo.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    args = parser.parse_args(argv)

    from ._demo import run_demo

    run_demo(n_splits=args.folds, n_repeats=args.repeats, max_epochs=args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
