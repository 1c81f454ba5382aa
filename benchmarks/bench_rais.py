"""RAIS-SGD against uniform SGD: training loss and test accuracy per epoch, epochs equivalent
and wall-clock, per-epoch overhead and time to reach uniform SGD's final training loss.

Both methods train the same network (an MLP, hidden layers ``--hidden``) with SGD
(momentum 0.9), the same learning rate, the same cosine schedule over
``--epochs`` and, for each seed, the same initialisation. Uniform SGD is
:class:`~sk_reweight.ERMClassifier` with ``optimizer='sgd'``; RAIS-SGD is
:class:`~sk_reweight.RAISClassifier` with its defaults (``grad_norm='last_layer'``,
``history_size=20000``, gain-ratio learning rate, schedule in epochs
equivalent, training ends when epochs equivalent reach ``--epochs``).

After every epoch a callback, excluded from the epoch's timed duration,
measures the *full* training loss (mean cross-entropy over the whole training
set: the history's ``train_loss`` is the mean over the drawn minibatches, which
importance sampling tilts towards hard examples) and the test accuracy.

For each dataset the script reports, as medians over seeds:

- ``final loss``, ``test acc``: at the end of training;
- ``epochs`` actually run and ``epochs equiv.`` reached;
- ``overhead/epoch``: RAIS's mean epoch duration over uniform SGD's, and the
  same without its first epoch;
- ``epochs-to-target`` and ``time-to-target``: epochs (the optimizer steps,
  in units of n examples) and wall-clock for RAIS to reach uniform SGD's final
  full training loss (linear interpolation between epochs) over uniform SGD's
  total; > 1 or "never" means RAIS did not get there sooner. The first
  measures the algorithm, the second includes every overhead;
- ``PT seconds``: total time spent in (PT) solves.

A third run per seed, "uniform SGD, RAIS's epochs", trains uniform SGD for only
as many epochs as RAIS ran, with the cosine schedule compressed to them: the
budgeted-training baseline that often erases importance-sampling gains.

Datasets: ``digits`` (scikit-learn, no download) and, through
:mod:`sk_reweight.datasets` (downloaded once), ``letter`` (20,000 rows),
``pendigits``, ``adult`` or ``fashion_mnist`` (flattened, subsample with
``--max-rows``). A 25 % stratified test split is held out.

    python benchmarks/bench_rais.py --datasets digits letter --seeds 0 1 2
    python benchmarks/bench_rais.py --datasets fashion_mnist --max-rows 20000 --device cuda

Curves (per epoch, per seed) are written as CSV next to the summary with
``--output``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, RAISClassifier
from sk_reweight.harness._evaluation import markdown_table


def load(name: str, max_rows: int | None, seed: int, images: bool) -> tuple[NDArray, NDArray]:
    """Features (flattened, or ``(n, 1, H, W)`` images) and integer labels of a dataset."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X.reshape(-1, 1, 8, 8) / 16.0 if images else X
    else:
        from sk_reweight.datasets import load_dataset

        dataset = load_dataset(name)
        X = dataset.make_preprocessor().fit_transform(dataset.data)
        y = np.unique(np.asarray(dataset.target), return_inverse=True)[1]
        X = np.asarray(X, dtype=np.float32)
        X = X.reshape(len(X), 1, *X.shape[1:]) if images else X.reshape(len(X), -1)
    if max_rows is not None and len(X) > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=seed)
    return np.asarray(X, dtype=np.float32), y


class FullEvaluation(Callback):
    """Record the full training loss and the test accuracy after every epoch."""

    def __init__(self, X_train, y_train, X_test, y_test):
        self.X_train, self.y_train = X_train, y_train
        self.X_test, self.y_test = X_test, y_test

    @staticmethod
    def _logits(module, X, chunk=4096):
        device = next(module.parameters()).device
        return torch.cat(
            [
                module(torch.as_tensor(X[start : start + chunk], device=device)).cpu()
                for start in range(0, len(X), chunk)
            ]
        )

    def on_epoch_end(self, net, **kwargs):
        module = net.module_
        was_training = module.training
        module.eval()
        with torch.no_grad():
            logits = self._logits(module, self.X_train)
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(self.y_train)).item()
            accuracy = (self._logits(module, self.X_test).argmax(1).numpy() == self.y_test).mean()
        module.train(was_training)
        net.history.record("full_train_loss", loss)
        net.history.record("test_accuracy", float(accuracy))


def curves(model, method: str, dataset: str, seed: int) -> pd.DataFrame:
    history = model.history_
    has_rais = "epochs_equivalent" in history[0]
    frame = pd.DataFrame(
        {
            "dataset": dataset,
            "method": method,
            "seed": seed,
            "epoch": history[:, "epoch"],
            "epochs_equivalent": (
                history[:, "epochs_equivalent"] if has_rais else history[:, "epoch"]
            ),
            "seconds": np.cumsum(history[:, "dur"]),
            "epoch_seconds": history[:, "dur"],
            "full_train_loss": history[:, "full_train_loss"],
            "test_accuracy": history[:, "test_accuracy"],
            "solve_seconds": history[:, "solve_seconds"] if has_rais else 0.0,
            "gain_ratio": history[:, "gain_ratio"] if has_rais else 1.0,
        }
    )
    return frame


def time_to_reach(curve: pd.DataFrame, target: float, clock: str = "seconds") -> float:
    """``clock`` (a column) when the full training loss first reaches ``target`` (interpolated)."""
    seconds = np.concatenate([[0.0], curve[clock].to_numpy()])
    losses = np.concatenate([[np.inf], curve["full_train_loss"].to_numpy()])
    below = np.nonzero(losses <= target)[0]
    if len(below) == 0:
        return np.inf
    i = below[0]
    if not np.isfinite(losses[i - 1]):
        return seconds[i]
    fraction = (losses[i - 1] - target) / (losses[i - 1] - losses[i])
    return seconds[i - 1] + fraction * (seconds[i] - seconds[i - 1])


def summarise(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for dataset, per_dataset in frame.groupby("dataset", sort=False):
        ratios, epoch_ratios, overheads, overheads_late, summary = [], [], [], [], {}
        for _, run in per_dataset.groupby("seed"):
            uniform = run[run.method == "uniform SGD"]
            rais = run[run.method == "RAIS-SGD"]
            target = uniform["full_train_loss"].iloc[-1]
            ratios.append(time_to_reach(rais, target) / uniform["seconds"].iloc[-1])
            epoch_ratios.append(time_to_reach(rais, target, "epoch") / uniform["epoch"].iloc[-1])
            overheads.append(rais["epoch_seconds"].mean() / uniform["epoch_seconds"].mean())
            overheads_late.append(
                rais["epoch_seconds"].iloc[1:].mean() / uniform["epoch_seconds"].iloc[1:].mean()
            )
        for method, runs in per_dataset.groupby("method", sort=False):
            last = runs.groupby("seed").tail(1)
            summary[method] = {
                "final loss": np.median(last["full_train_loss"]),
                "test acc": np.median(last["test_accuracy"]),
                "epochs": np.median(last["epoch"]),
                "epochs equiv.": np.median(last["epochs_equivalent"]),
                "PT seconds": np.median(runs.groupby("seed")["solve_seconds"].sum()),
                "mean gain ratio": runs["gain_ratio"].mean(),
            }
        for method, values in summary.items():
            is_rais = method == "RAIS-SGD"
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "final loss": f"{values['final loss']:.4f}",
                    "test acc": f"{100 * values['test acc']:.2f}",
                    "epochs run": f"{values['epochs']:.0f}",
                    "epochs equiv.": f"{values['epochs equiv.']:.2f}",
                    "mean gain ratio": f"{values['mean gain ratio']:.3f}",
                    "PT seconds": f"{values['PT seconds']:.1f}",
                    "overhead/epoch (all, after 1st)": (
                        f"{np.median(overheads):.2f}x, {np.median(overheads_late):.2f}x"
                        if is_rais
                        else "1"
                    ),
                    "epochs-to-target": _ratio_text(epoch_ratios) if is_rais else "1",
                    "time-to-target": _ratio_text(ratios) if is_rais else "1",
                }
            )
    return rows


def fit_and_record(model, method: str, dataset: str, seed: int, split) -> pd.DataFrame:
    """Fit ``model`` on the training part of ``split`` and return its per-epoch curves."""
    X_train, y_train, X_test, y_test = split
    evaluation = FullEvaluation(X_train, y_train, X_test, y_test)
    model.set_params(callbacks=[("full_evaluation", evaluation)])
    model.fit(X_train, y_train)
    frame = curves(model, method, dataset, seed)
    last = frame.iloc[-1]
    print(
        f"  seed {seed} {method:26s} loss {last.full_train_loss:.4f} "
        f"acc {last.test_accuracy:.4f} {last.seconds:.1f}s",
        flush=True,
    )
    return frame


def plot_curves(frame: pd.DataFrame, path: Path) -> None:
    """Full training loss and test accuracy against epochs, epochs equivalent and wall-clock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(frame["dataset"]))
    clocks = [("epoch", "epochs"), ("epochs_equivalent", "epochs equivalent"), ("seconds", "s")]
    figure, axes = plt.subplots(
        2 * len(datasets), 3, figsize=(13, 5.2 * len(datasets)), squeeze=False
    )
    colours = dict(zip(dict.fromkeys(frame["method"]), ["C0", "C3", "C2"], strict=False))
    for row, dataset in enumerate(datasets):
        runs = frame[frame["dataset"] == dataset]
        for column, (clock, label) in enumerate(clocks):
            for (method, seed), run in runs.groupby(["method", "seed"], sort=False):
                style = {"color": colours[method], "alpha": 0.8}
                legend = method if seed == runs["seed"].min() else None
                axes[2 * row, column].plot(
                    run[clock], run["full_train_loss"], label=legend, **style
                )
                axes[2 * row + 1, column].plot(run[clock], 100 * run["test_accuracy"], **style)
            axes[2 * row, column].set(yscale="log", xlabel=label, title=dataset)
            axes[2 * row + 1, column].set(xlabel=label)
        axes[2 * row, 0].set_ylabel("full training loss")
        axes[2 * row + 1, 0].set_ylabel("test accuracy (%)")
        axes[2 * row, 0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _ratio_text(ratios: list[float]) -> str:
    finite = [r for r in ratios if np.isfinite(r)]
    never = len(ratios) - len(finite)
    text = f"{np.median(ratios):.2f}x" if len(finite) > len(ratios) / 2 else "never"
    return f"{text} ({never}/{len(ratios)} never)" if never else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "letter"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    parser.add_argument("--history-size", type=int, default=20_000)
    parser.add_argument(
        "--refresh-interval", type=int, default=16, help="RAIS's steps per bookkeeping block"
    )
    parser.add_argument("--solver", default="newton", help="RAIS's (PT) solver")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--images", action="store_true", help="keep images as (n, 1, H, W): the default CNN"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="CSV of the curves")
    parser.add_argument(
        "--summarise", type=Path, default=None, help="only print the summary of a curves CSV"
    )
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the curves")
    args = parser.parse_args()
    if args.summarise is not None:
        frame = pd.read_csv(args.summarise)
        print(markdown_table(pd.DataFrame(summarise(frame))))
        if args.plot is not None:
            plot_curves(frame, args.plot)
        return
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    shared = dict(
        optimizer="sgd",
        momentum=0.9,
        lr=args.lr,
        lr_schedule="cosine",
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        hidden_layer_sizes=tuple(args.hidden),
        device=args.device,
    )
    frames = []
    start = time.perf_counter()
    for name in args.datasets:
        X, y = load(name, args.max_rows, seed=0, images=args.images)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=0
        )
        if not args.images:
            scaler = StandardScaler().fit(X_train)
            X_train = scaler.transform(X_train)
            X_test = scaler.transform(X_test)
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
        print(f"{name}: {len(X_train)} training rows of shape {X.shape[1:]}", flush=True)
        split = (X_train, y_train, X_test, y_test)
        for seed in args.seeds:
            uniform = ERMClassifier(**shared, random_state=seed)
            rais = RAISClassifier(
                history_size=args.history_size,
                refresh_interval=args.refresh_interval,
                solver=args.solver,
                **shared,
                random_state=seed,
            )
            for method, model in (("uniform SGD", uniform), ("RAIS-SGD", rais)):
                frames.append(fit_and_record(model, method, name, seed, split))
            # Uniform SGD given only as many epochs as RAIS ran, its schedule compressed.
            compressed = ERMClassifier(**{**shared, "max_epochs": rais.n_iter_}, random_state=seed)
            frames.append(
                fit_and_record(compressed, "uniform SGD, RAIS's epochs", name, seed, split)
            )
    frame = pd.concat(frames, ignore_index=True)
    print(
        f"\n{len(args.datasets)} datasets, {len(args.seeds)} seeds, "
        f"{time.perf_counter() - start:.0f} s\n"
    )
    print(markdown_table(pd.DataFrame(summarise(frame))))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.output, index=False)
    if args.plot is not None:
        plot_curves(frame, args.plot)


if __name__ == "__main__":
    main()
