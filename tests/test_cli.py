"""The command line: argument errors and small end-to-end runs on bundled data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

import sk_reweight
from sk_reweight.harness import _demo, main

from . import fake_datasets
from .test_demo import RACE_COLUMNS, TINY_RAIS_DEMO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width, _ = imread(path).shape
    assert height > 100
    assert width > 100


def test_demo_prints_erm_vs_rgd_for_both_datasets_then_rais(capsys, monkeypatch):
    monkeypatch.setattr(_demo, "RAIS_DEMO", TINY_RAIS_DEMO)
    assert main(["demo", "--folds", "2", "--repeats", "1", "--epochs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [
        line for line in lines if line.startswith("| breast_cancer") or line.startswith("| digits")
    ]
    assert len(rows) == 4
    assert any("| RGD |" in row for row in rows)
    assert lines.index(RACE_COLUMNS) > lines.index(rows[-1])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: command"),
        (["train"], "invalid choice: 'train'"),
        (["demo", "--folds", "many"], "invalid _positive_int value: 'many'"),
        (["demo", "--threads", "0"], "must be a positive integer, got 0"),
        (["demo", "--folds", "1"], "--folds must be at least 2"),
        (["demo", "--epochs", "0"], "must be a positive integer, got 0"),
        (["bench", "--datasets", "covertype"], "unknown dataset(s) covertype; choose from"),
        (["bench", "--methods", "erm", "xgboost"], "unknown method(s) xgboost; choose from"),
        (["bench", "--cv", "1"], "--cv must be at least 2"),
        (["bench", "--seeds", "0"], "must be a positive integer, got 0"),
        (["bench", "--lr", "-1"], "must be a positive number, got -1"),
        (["bench", "--no-tune", "--tune", "--threads", "x"], "invalid _positive_int value"),
        (["speed", "--dataset", "adult_typo"], "unknown dataset adult_typo"),
        (
            ["speed", "--method", "hgb"],
            "unknown method hgb; choose from erm, rgd, rais, infobatch",
        ),
        (["speed", "--param", "refresh=2"], "unknown rais parameter(s) refresh; choose from"),
        (["speed", "--param", "refresh_interval"], "expected NAME=VALUE, got 'refresh_interval'"),
        (["speed", "--budgets", "0.5", "0"], "must be a fraction in (0, 1], got 0"),
        (["speed", "--budgets", "2"], "must be a fraction in (0, 1], got 2"),
        (
            ["speed", "--shared-param", "refresh_interval=2"],
            "unknown shared parameter(s) of rais and uniform SGD (erm) refresh_interval",
        ),
        (["speed", "--shared-param", "lr"], "expected NAME=VALUE, got 'lr'"),
        (["bench", "--n-jobs", "0"], "must be a positive integer, got 0"),
        (
            ["bench", "--n-jobs", "2", "--scheduler", "tcp://localhost:8786"],
            "argument --scheduler: not allowed with argument --n-jobs",
        ),
        (["speed", "--n-jobs", "2"], "unrecognized arguments: --n-jobs 2"),
    ],
)
def test_bad_arguments_exit_with_status_2_and_a_message(argv, message, capsys, monkeypatch):
    fake_datasets.install(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sk-reweight" in err
    assert message in err
    # The command's usage, not the top one (argparse itself reports unrecognized arguments).
    if argv and argv[0] in ("demo", "bench", "speed") and "unrecognized" not in message:
        assert err.startswith(f"usage: sk-reweight {argv[0]} ")
        assert err.splitlines()[-1].startswith(f"sk-reweight {argv[0]}: error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["speed", "--param", "lr=-1"], "--param lr=-1: The 'lr' parameter of RAISClassifier"),
        (
            ["speed", "--method", "rgd", "--shared-param", "batch_size=0"],
            "--shared-param batch_size=0: The 'batch_size' parameter of RGDClassifier",
        ),
        (["speed", "--param", "solver='foo'"], "--param solver='foo': The 'solver' parameter"),
        (["bench", "--output", __file__], f"--output {__file__} is a file, not a directory"),
        (["bench", "--device", "gpu"], "--device: device='gpu' is not a torch device; did you"),
        pytest.param(
            ["speed", "--device", "mps"],
            "--device: device='mps' cannot be used: the mps backend is not available on this "
            "machine or in this torch; use device='auto'",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this has MPS"),
        ),
    ],
)
def test_unusable_values_are_one_line_and_exit_2(argv, message, capsys, monkeypatch, tmp_path):
    fake_datasets.install(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"sk-reweight {argv[0]}: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_the_device_of_a_cluster_is_checked_by_name_only(monkeypatch):
    """The workers of --scheduler have their own GPUs, which this machine may lack."""
    from sk_reweight.harness import _cli, _parallel

    monkeypatch.setattr(_parallel, "dask_available", lambda: True)
    parser = _cli.build_parser()
    args = parser.parse_args(["bench", "--device", "cuda:3", "--scheduler", "tcp://gpu-host:8786"])
    _cli._validate(_cli._command_parser(parser, "bench"), args)
    assert args.device == "cuda:3"
    local = parser.parse_args(["bench", "--device", "auto"])
    _cli._validate(_cli._command_parser(parser, "bench"), local)
    assert local.device == ("cuda" if torch.cuda.is_available() else "cpu")


REPOSITORY = Path(sk_reweight.__file__).resolve().parents[1]


def run_cli(
    directory: Path, *arguments: str, shadowing: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m sk_reweight ARGUMENTS`` in a real process started in ``directory``.

    ``shadowing``: a directory searched for modules before the installed packages.
    """
    path = [str(shadowing)] if shadowing else []
    return subprocess.run(
        [sys.executable, "-m", "sk_reweight", *arguments],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPOSITORY)])},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_on_cuda_without_cuda_is_one_line_exit_2_and_leaves_no_folder(tmp_path):
    """A real process, in a fresh directory: its default output folder would appear there."""
    finished = run_cli(tmp_path, "bench", "--device", "cuda")
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1, finished.stderr
    assert finished.stderr.startswith("sk-reweight bench: error: --device: device='cuda' cannot")
    assert finished.stderr.endswith("use device='auto' (a CUDA GPU when there is one, else the "
                                    "CPU) or device='cpu'.\n")  # fmt: skip
    assert finished.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["bench", "speed"])
def test_without_matplotlib_the_plotting_commands_say_what_to_install(command, tmp_path):
    """A real process in which ``import matplotlib`` fails, as without the ``bench`` extra:
    one line, exit 2, before any work (no output folder)."""
    missing = tmp_path / "without_matplotlib" / "matplotlib"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    work = tmp_path / "work"
    work.mkdir()
    finished = run_cli(work, command, "--max-epochs", "1", shadowing=missing.parent)
    assert finished.returncode == 2
    assert finished.stderr == (
        f"sk-reweight {command}: error: the plots of {command} need matplotlib; "
        'install it with: pip install "sk-reweight[bench]"\n'
    )
    assert finished.stdout == ""
    assert list(work.iterdir()) == []


@pytest.mark.slow  # a real process, about 6 s of CPU; test_bad_arguments_... checks it in-process
def test_a_mistyped_dataset_prints_the_commands_usage_in_a_real_process(tmp_path):
    finished = run_cli(tmp_path, "bench", "--datasets", "digitz")
    assert finished.returncode == 2
    assert finished.stderr.startswith("usage: sk-reweight bench [-h] [--datasets DATASETS")
    assert finished.stderr.splitlines()[-1].startswith(
        "sk-reweight bench: error: unknown dataset(s) digitz; choose from "
    )
    assert "Traceback" not in finished.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [["--n-jobs", "2"], ["--scheduler", "tcp://localhost:8786"]])
def test_parallel_bench_without_dask_says_how_to_install_it(option, capsys, monkeypatch):
    from sk_reweight.harness import _parallel

    monkeypatch.setattr(_parallel, "dask_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *option])
    assert exit_info.value.code == 2
    assert 'pip install "sk-reweight[dist]"' in capsys.readouterr().err


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One small tuned run on a mixed-type table and on images with an official test split."""
    output = tmp_path_factory.mktemp("bench")
    argv = [
        "bench",
        "--datasets", "iris_mixed", "digits_images",
        "--methods", "erm", "rgd", "hgb",
        "--cv", "2",
        "--max-epochs", "2",
        "--hidden", "16",
        "--max-rows", "400",
        "--output", str(output),
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_datasets.install(monkeypatch)
        status = main(argv)
    return status, output


def test_bench_writes_one_row_per_fold_method_and_split(bench_run):
    status, output = bench_run
    assert status == 0
    results = pd.read_csv(output / "results.csv")
    assert list(results.columns) == [
        "dataset", "seed", "fold", "method", "split", "accuracy", "balanced_accuracy",
        "log_loss", "macro_f1", "fit_seconds", "total_seconds", "n_train", "n_test", "params",
    ]  # fmt: skip
    counts = results.groupby(["dataset", "split"]).size().to_dict()
    # 2 folds x 3 methods; the images also have their official test split scored.
    assert counts == {("iris_mixed", "cv"): 6, ("digits_images", "cv"): 6,
                      ("digits_images", "test"): 6}  # fmt: skip
    digits = results[results["dataset"] == "digits_images"]
    assert set(digits.loc[digits["split"] == "test", "n_test"]) == {297}
    assert set(digits.loc[digits["split"] == "cv", "n_train"]) == {200}
    assert results[["accuracy", "balanced_accuracy", "macro_f1"]].stack().between(0, 1).all()
    assert (results["log_loss"] > 0).all()
    assert (results["total_seconds"] >= results["fit_seconds"]).all()
    rgd = results[results["method"] == "rgd"]
    assert all(set(json.loads(params)) == {"lr", "tau"} for params in rgd["params"])
    assert set(results.loc[results["method"] == "hgb", "params"]) == {"{}"}


def test_bench_summary_tables(bench_run):
    _, output = bench_run
    results = pd.read_csv(output / "results.csv")
    summary = (output / "summary.md").read_text()
    assert "Status: complete." in summary
    iris_erm = results[(results["dataset"] == "iris_mixed") & (results["method"] == "erm")]
    mean, std = iris_erm["accuracy"].mean(), iris_erm["accuracy"].std(ddof=1)
    assert f"| iris_mixed | cv | erm | 2 | {mean:.4f} ± {std:.4f} |" in summary
    for split in ("cv", "test"):
        for method in ("rgd", "hgb"):
            assert f"| digits_images | {split} | accuracy | erm | {method} | 2 |" in summary
    assert "| digits_images | image | 400 | 297 | 10 |" in summary
    assert "training subsampled from 1500 rows" in summary


def test_bench_plots_and_curves(bench_run):
    _, output = bench_run
    assert_valid_png(output / "accuracy.png")
    for dataset in ("iris_mixed", "digits_images"):
        assert_valid_png(output / f"curves_{dataset}.png")
    curves = pd.read_csv(output / "curves.csv")
    # Two epochs per fold for the networks; gradient boosting has no curve.
    assert curves.groupby(["dataset", "method"]).size().to_dict() == {
        ("digits_images", "erm"): 4, ("digits_images", "rgd"): 4,
        ("iris_mixed", "erm"): 4, ("iris_mixed", "rgd"): 4,
    }  # fmt: skip
    assert (curves["epochs_equivalent"] == curves["epoch"]).all()


def test_bench_records_its_configuration(bench_run):
    _, output = bench_run
    config = json.loads((output / "config.json").read_text())
    assert config["command"].startswith("sk-reweight bench --datasets iris_mixed digits_images")
    assert config["arguments"]["cv"] == 2
    assert config["arguments"]["max_rows"] == 400
    assert config["arguments"]["budget"]["hidden_layer_sizes"] == [16]
    assert config["seeds"] == [0]
    assert config["status"] == "complete"
    for package in ("python", "numpy", "torch", "scikit-learn", "skorch", "sk_reweight"):
        assert config["versions"][package]
    assert "git_commit" in config
    assert config["torch_threads"] == 1
    assert [info["name"] for info in config["datasets"]] == ["iris_mixed", "digits_images"]
    assert config["datasets"][1]["description"] == fake_datasets.DIGITS_IMAGES_DESCRIPTION


def test_speed_compares_a_method_with_uniform_sgd(tmp_path, monkeypatch, capsys):
    fake_datasets.install(monkeypatch)
    argv = ["speed", "--dataset", "breast_cancer", "--method", "rgd", "--max-epochs", "3",
            "--hidden", "16", "--seeds", "2", "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert "speed: 100%" in capsys.readouterr().err  # the progress bar
    speed = pd.read_csv(tmp_path / "speed.csv")
    # Default budgets 1/4, 1/2, 3/4, 1 of 3 epochs: 1, 2, 3; seed 1 runs the method first.
    pair = ["uniform SGD", "rgd (sgd)"]
    assert speed["seed"].tolist() == [0] * 6 + [1] * 6
    assert speed["method"].tolist() == pair * 3 + pair[::-1] * 3
    assert speed["budget"].tolist() == [1, 1, 2, 2, 3, 3] * 2
    assert (speed["epochs_run"] == speed["budget"]).all()
    speedup = speed["baseline_seconds"] / speed["seconds_to_target"]
    assert np.allclose(speed["speedup"], speedup, equal_nan=True)
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves["test_accuracy"].between(0, 1).all()
    assert (curves["test_log_loss"] > 0).all()
    last = curves.groupby(["seed", "method", "budget"], sort=False)[
        ["train_loss", "test_accuracy"]
    ].last()
    by_run = speed.set_index(["seed", "method", "budget"])
    assert np.allclose(by_run["final_loss"], last["train_loss"])
    assert np.allclose(by_run["test_accuracy"], last["test_accuracy"])
    full = curves[(curves["epoch"] == 3) & (curves["method"] == "uniform SGD")]
    assert np.allclose(speed["target_loss"], np.repeat(full["train_loss"].to_numpy(), 6))
    frontier = pd.read_csv(tmp_path / "frontier.csv")
    assert frontier[["seed", "budget"]].values.tolist() == [[0, 1], [0, 2], [0, 3],
                                                            [1, 1], [1, 2], [1, 3]]  # fmt: skip
    summary = (tmp_path / "summary.md").read_text()
    assert "| method | final loss | test acc | test log-loss | epochs run |" in summary
    assert "- held-out accuracy at equal time (method - uniform SGD's frontier): " in summary
    # Breast cancer trains in hundredths of a second: no timing is claimed.
    assert "**within noise (too short to time)**" in summary
    assert "| seed | budget | seconds | test_accuracy | uniform_accuracy |" in summary
    assert_valid_png(tmp_path / "speed.png")
    assert_valid_png(tmp_path / "frontier.png")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["arguments"]["method"] == "rgd"
    assert config["budget_epochs"] == [1, 2, 3]
    assert config["training_seed"].startswith("1000 * seed")


def test_speed_warms_up_before_timing_and_records_only_the_timed_runs(tmp_path, monkeypatch):
    from sk_reweight.harness import _speed

    fake_datasets.install(monkeypatch)
    calls = []
    fit_curve = _speed.fit_curve

    def recording_fit(split, method, parameters, *args, **kwargs):
        calls.append((len(split.y_train), method, parameters))
        return fit_curve(split, method, parameters, *args, **kwargs)

    monkeypatch.setattr(_speed, "fit_curve", recording_fit)
    argv = ["speed", "--dataset", "breast_cancer", "--max-epochs", "4", "--hidden", "16",
            "--budgets", "0.5", "--shared-param", "batch_size=32",
            "--param", "refresh_interval=4", "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    # The warm-up: both contenders, two epochs, on the first rows of seed 0's 455.
    assert [(rows, method, p["max_epochs"]) for rows, method, p in calls[:2]] == [
        (455, "erm", 2), (455, "rais", 2)
    ]  # fmt: skip
    timed = [(method, p["max_epochs"]) for _, method, p in calls[2:]]
    assert timed == [("erm", 2), ("rais", 2), ("erm", 4), ("rais", 4)]
    # The shared parameter reaches both contenders, the method's own only the method.
    assert all(p["batch_size"] == 32 for _, _, p in calls)
    assert [p.get("refresh_interval") for _, _, p in calls[2:]] == [None, 4, None, 4]
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves.groupby(["method", "budget"]).size().to_dict() == {
        ("rais (sgd)", 2): 2, ("rais (sgd)", 4): 4, ("uniform SGD", 2): 2, ("uniform SGD", 4): 4
    }  # fmt: skip
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["arguments"]["shared_parameters"] == {"batch_size": 32}
    assert config["arguments"]["budgets"] == [0.5]
    assert "shared parameters {'batch_size': 32}" in (tmp_path / "summary.md").read_text()


def test_speed_measures_the_full_loss_of_an_mlp_on_flattened_images(tmp_path, monkeypatch):
    fake_datasets.install(monkeypatch)
    argv = ["speed", "--dataset", "digits_images", "--max-epochs", "2", "--hidden", "16",
            "--full-loss", "--flatten", "--param", "refresh_interval=4", "--budgets", "1",
            "--param", "solver=cvxpy", "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves["full_train_loss"].notna().all()
    speed = pd.read_csv(tmp_path / "speed.csv").set_index("method")
    baseline = curves[curves["method"] == "uniform SGD"]
    assert speed.loc["uniform SGD", "target_loss"] == baseline["full_train_loss"].iloc[-1]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["arguments"]["method_parameters"] == {"refresh_interval": 4, "solver": "cvxpy"}
    summary = (tmp_path / "summary.md").read_text()
    assert "MLP [16] on flattened, standardised pixels" in summary
    assert "full training loss" in summary


def test_speed_hands_its_parameters_to_the_method(tmp_path, monkeypatch):
    fake_datasets.install(monkeypatch)
    output = tmp_path / "out"
    argv = ["speed", "--dataset", "breast_cancer", "--max-epochs", "2", "--hidden", "16",
            "--param", "refresh_interval=0", "--output", str(output)]  # fmt: skip
    # RAISClassifier's own constraints refuse the value, before any output is written.
    with pytest.raises(SystemExit, match="2"):
        main(argv)
    assert not output.exists()


def test_speed_reports_a_dataset_that_cannot_be_loaded(tmp_path, monkeypatch, capsys):
    fake_datasets.install(monkeypatch)

    def unreachable(name, *, data_home=None, download=True):
        raise OSError(f"{name}: the artifact is not cached and download=False")

    monkeypatch.setattr(sys.modules["sk_reweight.datasets"], "load_dataset", unreachable)
    argv = ["speed", "--dataset", "digits", "--method", "rgd", "--output", str(tmp_path)]
    assert main(argv) == 1
    assert "sk-reweight: error: digits: the artifact is not cached" in capsys.readouterr().err


def command_help(command: str, capsys) -> str:
    """``sk-reweight COMMAND --help``, as printed, on one line."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_speed_help_describes_the_command_and_states_its_defaults(capsys):
    from sk_reweight.harness._methods import Budget
    from sk_reweight.harness._race import DEFAULT_BUDGETS, SPEED_BUDGET

    text = command_help("speed", capsys)
    assert "Train a method (default rais) and uniform SGD" in text
    bench = Budget()
    stated = {
        "--max-epochs": f"(default: bench {bench.max_epochs}, speed {SPEED_BUDGET.max_epochs})",
        "--batch-size": f"(default: bench {bench.batch_size}, speed {SPEED_BUDGET.batch_size})",
        "--lr": f"speed: of both runs, default {SPEED_BUDGET.lr}",
        "--hidden": "(default {})".format(" ".join(map(str, SPEED_BUDGET.hidden_layer_sizes))),
        "--budgets": "(default {})".format(" ".join(f"{b:g}" for b in DEFAULT_BUDGETS)),
        "--optimizer": "(default sgd;",
        "--seeds": "(default 1)",
        "--lr-schedule": "(default step)",
        "--dataset": "(default digits)",
    }
    for option, default in stated.items():
        own_help = text.split(f" {option} ", 1)[1].split(" --", 1)[0]
        assert default in own_help, option
