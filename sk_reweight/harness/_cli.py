"""The command line: ``sk-reweight demo | bench | speed`` (also ``python -m sk_reweight``)."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._methods import Budget


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value


def _parameter(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``, VALUE read as a Python literal (number, tuple, None) or else a string."""
    name, separator, value = text.partition("=")
    if not separator or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def _default_output(command: str) -> Path:
    return Path("results") / f"{command}-{datetime.now():%Y%m%d-%H%M%S}"


def _add_threads(parser: argparse.ArgumentParser) -> None:
    # One thread by default: on a shared or busy machine, torch's default of one thread per
    # core oversubscribes the cores, and small networks then train several times slower.
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="CPU threads of torch and of OpenMP/BLAS (gradient boosting) (default 1)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``bench`` and ``speed``."""
    _add_threads(parser)
    parser.add_argument(
        "--output", type=Path, help="output directory (default results/<command>-<timestamp>)"
    )
    parser.add_argument(
        "--max-epochs",
        type=_positive_int,
        help="training epochs of every network (default: bench 50, speed 20)",
    )
    parser.add_argument(
        "--hidden", type=_positive_int, nargs="+", help="hidden layer widths (default 256 256)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, help="minibatch size (default: bench 256, speed 128)"
    )
    parser.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (bench: of the Adam networks, default 1e-3; speed: of both runs, "
        "default 0.05)",
    )
    parser.add_argument(
        "--max-rows",
        type=_positive_int,
        help="subsample every dataset (and its official test split) to about this many rows, "
        "class by class, keeping at least 10 rows of each class (default: every row)",
    )
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        help="repetitions with seeds 0 .. S-1 (default 1)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--data-home",
        help="cache directory of the downloaded datasets (default: $SK_REWEIGHT_DATA, else "
        "$XDG_CACHE_HOME/sk_reweight, else ~/.cache/sk_reweight)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sk-reweight``: one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="sk-reweight",
        description="Reweighted and importance-sampled training of scikit-learn neural networks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_demo(commands)
    _add_bench(commands)
    _add_speed(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:
    """``sk-reweight demo`` and its arguments."""
    demo = commands.add_parser(
        "demo",
        help="ERM vs RGD cross-validated on scikit-learn's bundled data, then RAIS vs uniform "
        "SGD on generated data: time to uniform SGD's final training and held-out losses, "
        "held-out accuracy at equal time (no download)",
    )
    demo.add_argument(
        "--folds", type=_positive_int, default=5, help="folds per repetition (default 5)"
    )
    demo.add_argument(
        "--repeats", type=_positive_int, default=2, help="repetitions of the CV (default 2)"
    )
    demo.add_argument(
        "--epochs", type=_positive_int, default=50, help="training epochs (default 50)"
    )
    _add_threads(demo)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    """``sk-reweight bench`` and its arguments."""
    from ._methods import METHODS

    bench = commands.add_parser(
        "bench",
        help="repeated stratified CV of ERM, RGD, RAIS and tabular alternatives on datasets",
        description="Repeated stratified cross-validation of the methods on every dataset; "
        "writes results.csv, curves.csv, summary.md, config.json and PNG plots.",
    )
    bench.add_argument(
        "--datasets",
        nargs="+",
        default=["breast_cancer", "digits"],
        help="names from sk_reweight.datasets.list_datasets() (default breast_cancer digits)",
    )
    bench.add_argument(
        "--methods",
        nargs="+",
        default=["erm", "rgd", "skorch", "mlp", "hgb"],
        help=f"methods among {' '.join(METHODS)} (default: erm rgd skorch mlp hgb)",
    )
    bench.add_argument("--cv", type=_positive_int, default=5, help="folds (default 5)")
    bench.add_argument(
        "--sgd-lr",
        type=_positive_float,
        help="learning rate of the SGD methods (rais, infobatch, erm_sgd)",
    )
    bench.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tune lr (and RGD's tau) on an inner validation split (default: on)",
    )
    _add_where_fits_run(bench)
    bench.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the results of another run found in --output (by default a run into a "
        "directory of the same configuration resumes it, keeping its finished fits, and one "
        "holding another configuration's results is refused)",
    )
    _add_common(bench)


def _add_where_fits_run(bench: argparse.ArgumentParser) -> None:
    """``--n-jobs`` or ``--scheduler``: local worker processes, or a dask cluster."""
    where = bench.add_mutually_exclusive_group()
    where.add_argument(
        "--n-jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="fits in parallel, in as many local worker processes (a dask LocalCluster); "
        "N x (--threads, plus 1 for RAIS's solver thread) is clamped to the cores "
        "(default 1: one after another, in this process)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run every fit as a task on the dask.distributed cluster of this scheduler "
        "(e.g. tcp://host:8786); the data are loaded here and sent to the workers",
    )


def _add_speed(commands: argparse._SubParsersAction) -> None:
    """``sk-reweight speed`` and its arguments."""
    from ._methods import RACED_METHODS
    from ._race import DEFAULT_BUDGETS

    speed = commands.add_parser(
        "speed",
        help="a method (default rais) against uniform SGD on one dataset, on a clock: "
        "time-to-target and held-out accuracy at equal time",
        description="Train a method (default rais) and uniform SGD (ERMClassifier, SGD with "
        "momentum 0.9) on the same 80 % of one dataset with the same network, batch size, "
        "learning rate, schedule and epochs, once per seed; score every epoch on the other "
        "20 %. Reports the time each needs to reach uniform SGD's final training loss, "
        "held-out log-loss and accuracy, and the held-out accuracy at equal time over the "
        "--budgets; writes curves.csv, speed.csv, frontier.csv, summary.md, config.json and PNG "
        "plots.",
    )
    speed.add_argument("--dataset", default="digits", help="dataset name (default digits)")
    speed.add_argument(
        "--method", default="rais", help=f"one of {', '.join(RACED_METHODS)} (default rais)"
    )
    _add_race_training(speed)
    _add_classifier_parameters(speed)
    speed.add_argument(
        "--budgets",
        type=_fraction,
        nargs="+",
        default=list(DEFAULT_BUDGETS),
        metavar="FRACTION",
        help="fractions of the epochs given to both methods for the equal-time frontier, "
        "each with its schedule compressed to them; all epochs (1) always run "
        "(default {})".format(" ".join(f"{b:g}" for b in DEFAULT_BUDGETS)),
    )
    _add_common(speed)


def _add_race_training(speed: argparse.ArgumentParser) -> None:
    """How the runs of ``speed`` train and what they compare: optimizer, schedule, loss, input."""
    speed.add_argument(
        "--optimizer",
        default="sgd",
        choices=["sgd", "adam"],
        help="the method's optimizer (default sgd; uniform SGD always uses sgd)",
    )
    speed.add_argument(
        "--lr-schedule",
        default="step",
        choices=["none", "step", "cosine"],
        help="learning-rate schedule of both runs (default step)",
    )
    speed.add_argument(
        "--full-loss",
        action="store_true",
        help="compare the mean cross-entropy over the whole training set after every epoch "
        "(measured outside the timed epochs) instead of the epoch's minibatch losses",
    )
    speed.add_argument(
        "--flatten",
        action="store_true",
        help="image datasets: train an MLP on the flattened, standardised pixels instead of "
        "the default CNN",
    )


def _add_classifier_parameters(speed: argparse.ArgumentParser) -> None:
    """``--param`` and ``--shared-param``: further parameters of the raced classifiers."""
    speed.add_argument(
        "--param",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a further parameter of the method's classifier, e.g. refresh_interval=1 or "
        "solver=cvxpy (repeatable; VALUE is read as a Python literal, else as a string)",
    )
    speed.add_argument(
        "--shared-param",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a further parameter of both the method's classifier and uniform SGD's, e.g. "
        "augmentation=crop (repeatable, read as --param; --param wins for the method)",
    )


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (``bench``, ``speed``, ...), whose usage goes with its errors."""
    (commands,) = (
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    return commands.choices[command]


def _check_names(parser: argparse.ArgumentParser, kind: str, names, known) -> None:
    """A name the parser could not check: its usage and one line, exit 2, as argparse does."""
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {kind} {', '.join(unknown)}; choose from {', '.join(known)}")


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    """A value the machine or the library refuses: one line, exit 2, without the usage."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


PLOTTING_HINT = 'install it with: pip install "sk-reweight[bench]"'
"""What to install for the plots of ``bench`` and ``speed`` (the ``bench`` extra)."""


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check every argument before anything is written (``demo``: its number of folds).

    ``parser`` is the command's own. Unknown names (datasets, methods,
    parameters) print its usage and the error; a value that cannot be used
    (a device this machine lacks, a parameter value the classifier refuses,
    an output path that is a file) or a missing optional dependency prints
    one line. Both exit with status 2.
    """
    if args.command == "demo":
        if args.folds < 2:
            parser.error("--folds must be at least 2")
        return
    _check_plotting(parser, args.command)
    _check_device(parser, args)
    for option, path in (("--output", args.output), ("--data-home", args.data_home)):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            _fail(parser, f"{option} {path} is a file, not a directory")
    if args.command == "bench":
        _validate_bench(parser, args)
    else:
        _validate_speed(parser, args)


def _check_plotting(parser: argparse.ArgumentParser, command: str) -> None:
    """``bench`` and ``speed`` draw PNG plots: without matplotlib, say what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail(parser, f"the plots of {command} need matplotlib; {PLOTTING_HINT}")


def _validate_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Datasets and methods known, at least two folds, dask present for a cluster."""
    from ._methods import METHODS
    from ._parallel import DIST_HINT, dask_available
    from ._prepared_data import list_datasets

    _check_names(parser, "dataset(s)", args.datasets, list_datasets())
    _check_names(parser, "method(s)", args.methods, list(METHODS))
    if args.cv < 2:
        parser.error("--cv must be at least 2")
    if (args.n_jobs > 1 or args.scheduler) and not dask_available():
        _fail(parser, f"--n-jobs and --scheduler need dask.distributed; {DIST_HINT}")


def _validate_speed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Dataset and method known; every parameter known to, and accepted by, its classifiers."""
    from ._methods import METHODS, RACED_METHODS
    from ._prepared_data import list_datasets

    _check_names(parser, "dataset", [args.dataset], list_datasets())
    _check_names(parser, "method", [args.method], list(RACED_METHODS))
    method, uniform_sgd = METHODS[args.method].classifier, METHODS["erm"].classifier
    known_parameters = sorted(method().get_params())
    _check_names(
        parser,
        f"{args.method} parameter(s)",
        [name for name, _ in args.param],
        known_parameters,
    )
    shared = sorted(set(known_parameters) & set(uniform_sgd().get_params()))
    _check_names(
        parser,
        f"shared parameter(s) of {args.method} and uniform SGD (erm)",
        [name for name, _ in args.shared_param],
        shared,
    )
    _check_values(parser, "--param", method, args.param)
    for classifier in dict.fromkeys((method, uniform_sgd)):
        _check_values(parser, "--shared-param", classifier, args.shared_param)


def _check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check ``--device`` on this machine; with ``--scheduler``, only its name.

    Here ``args.device`` becomes the device it resolves to (``auto``: ``cuda``
    or ``cpu``), which every method understands. The workers of a cluster
    have devices of their own, which this machine may lack: there the name is
    left as it is, for the workers to resolve.
    """
    import torch

    from sk_reweight import resolve_device

    try:
        if getattr(args, "scheduler", None) is None:
            args.device = str(resolve_device(args.device))
        elif args.device != "auto":
            torch.device(args.device)
    except (ValueError, RuntimeError) as exc:
        _fail(parser, f"--device: {exc}")


def _check_values(
    parser: argparse.ArgumentParser, option: str, classifier: type, parameters: list
) -> None:
    """Refuse, in one line, a parameter value that ``classifier`` would refuse in ``fit``."""
    for name, value in parameters:
        try:
            classifier(**{name: value})._validate_params()
        except (ValueError, TypeError) as exc:
            _fail(parser, f"{option} {name}={value!r}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sk-reweight`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._parallel import torch_threads

    _validate(_command_parser(parser, args.command), args)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with torch_threads(args.threads):
            return COMMANDS[args.command](args, argv)
    except OSError as exc:  # e.g. a dataset that cannot be downloaded
        print(f"sk-reweight: error: {exc}", file=sys.stderr)
        return 1


def _run_demo(args: argparse.Namespace, argv: list[str]) -> int:
    from ._demo import run_demo

    run_demo(n_splits=args.folds, n_repeats=args.repeats, max_epochs=args.epochs)
    return 0


def _run_bench(args: argparse.Namespace, argv: list[str]) -> int:
    from ._bench import BenchSettings, run_bench
    from ._methods import Budget

    settings = BenchSettings(
        datasets=args.datasets,
        methods=args.methods,
        cv=args.cv,
        seeds=args.seeds,
        tune=args.tune,
        budget=_budget(args, Budget()),
        max_rows=args.max_rows,
        data_home=args.data_home,
        threads=args.threads,
        n_jobs=args.n_jobs,
        scheduler=args.scheduler,
    )
    output = args.output or _default_output("bench")
    return run_bench(settings, output, argv, overwrite=args.overwrite)


def _run_speed(args: argparse.Namespace, argv: list[str]) -> int:
    from ._race import SPEED_BUDGET, SpeedSettings
    from ._speed import run_speed

    settings = SpeedSettings(
        dataset=args.dataset,
        method=args.method,
        optimizer=args.optimizer,
        lr_schedule=None if args.lr_schedule == "none" else args.lr_schedule,
        budget=_budget(args, SPEED_BUDGET),
        seeds=args.seeds,
        max_rows=args.max_rows,
        data_home=args.data_home,
        full_loss=args.full_loss,
        flatten=args.flatten,
        budgets=tuple(args.budgets),
        method_parameters=dict(args.param),
        shared_parameters=dict(args.shared_param),
    )
    return run_speed(settings, args.output or _default_output("speed"), argv)


COMMANDS = {"demo": _run_demo, "bench": _run_bench, "speed": _run_speed}
"""What each command runs, with its validated arguments and the command line."""


def _budget(args: argparse.Namespace, default: Budget) -> Budget:
    """The command's default budget with the network options given on the command line."""
    overrides = {
        "hidden_layer_sizes": tuple(args.hidden) if args.hidden else None,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "sgd_lr": getattr(args, "sgd_lr", None),
    }
    return replace(
        default,
        device=args.device,
        **{key: value for key, value in overrides.items() if value is not None},
    )
