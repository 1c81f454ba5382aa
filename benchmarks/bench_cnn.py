"""The default image network against candidates and the former ``SmallCNN``, on one CPU thread.

Every network trains with the estimators' defaults (Adam, lr 1e-3, batch 128, head
``hidden_layer_sizes=(100,)`` without dropout) and only ``max_epochs`` and ``random_state`` set.

``accuracy``
    Fashion-MNIST: trains on the first ``--rows`` of the 60,000 training images (a stratified
    subsample when fewer) for ``--max-epochs`` epochs, reports the official 10,000-image test
    accuracy, every epoch's duration and the *full* training loss after every epoch (the
    network in evaluation mode on the whole training set, from weight copies taken after the
    epoch's timer stopped). scikit-learn's 8x8 digits (``X.reshape(-1, 1, 8, 8) / 16``):
    ``--digits-epochs`` epochs, 5-fold stratified cross-validation (shuffled with seed 0),
    mean and spread of the test accuracy.
``epoch``
    The time of one training epoch on ``--rows`` Fashion-MNIST images, the networks interleaved
    in one process (``--repeats`` rounds, in alternating order), each fit 2 epochs of which the
    second is timed (the first pays warm-up). ``--classifiers rais`` times RAISClassifier
    instead (its defaults, 3 epochs, the third timed: it samples by importance from its second
    epoch on). ``--digits`` times the 1,797 8x8 digits instead (the images the tests fit).

    python benchmarks/bench_cnn.py accuracy --rows 10000 --max-epochs 5 \\
        --networks pool_32_64 pool_32_64_64 stride_32_64_64 small_cnn
    python benchmarks/bench_cnn.py accuracy --networks default --rows 60000 --max-epochs 15
    python benchmarks/bench_cnn.py epoch --rows 48000 --repeats 3
    python benchmarks/bench_cnn.py epoch --rows 12000 --repeats 3 --classifiers rais
    python benchmarks/bench_cnn.py epoch --digits --repeats 5 --classifiers erm rais
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold, train_test_split
from skorch.callbacks import Callback
from torch import Tensor, nn

from sk_reweight import ERMClassifier, RAISClassifier, default_module
from sk_reweight._batchnorm import WeightedBatchNorm2d
from sk_reweight._modules import MLP
from sk_reweight.datasets import load_dataset

HIDDEN = (100,)
"""The estimators' default ``hidden_layer_sizes``."""


class SmallCNN(nn.Module):
    """The default network before issue 16, kept here as the baseline of the time budget."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        in_channels, *image_size = input_shape
        pool: list[nn.Module] = [nn.MaxPool2d(2)] if min(image_size) >= 8 else []
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1, bias=False),
            WeightedBatchNorm2d(32),
            nn.ReLU(),
            *pool,
            nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False),
            WeightedBatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = MLP(64, n_classes, HIDDEN, 0.0)

    def forward(self, X: Tensor) -> Tensor:
        return self.head(self.features(X))


def _block(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        WeightedBatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class Candidate(nn.Module):
    """A candidate: convolution blocks given as (width, stride or 'pool'), then flatten, head.

    The last feature map is average-pooled to at most 7x7 before flattening.
    """

    def __init__(self, layout: list[tuple[int, int | str]], input_shape, n_classes) -> None:
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out_channels, step in layout:
            if step == "pool":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                height, width = -(-height // 2), -(-width // 2)
                continue
            layers += _block(channels, out_channels, step)
            channels = out_channels
            height, width = -(-height // step), -(-width // step)
        grid = (min(height, 7), min(width, 7))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.head = MLP(channels * grid[0] * grid[1], n_classes, HIDDEN, 0.0)

    def forward(self, X: Tensor) -> Tensor:
        return self.head(self.features(X))


LAYOUTS = {
    "pool_32_64": [(32, 1), (0, "pool"), (64, 1), (0, "pool")],
    "stride_32_64_64": [(32, 1), (64, 2), (64, 2)],
    "stride_32_32_64_64": [(32, 1), (32, 2), (64, 1), (64, 2)],
    "pool_32_64_64": [(32, 1), (0, "pool"), (64, 1), (0, "pool"), (64, 1)],
    "vgg_32_32_64_64": [(32, 1), (32, 1), (0, "pool"), (64, 1), (64, 1), (0, "pool")],
}


def network(name: str) -> Callable[[tuple[int, ...], int], nn.Module]:
    """``module(input_shape, n_classes)`` for the estimators."""
    if name == "default":
        return lambda shape, n_classes: default_module(shape, n_classes, HIDDEN, 0.0)
    if name == "small_cnn":
        return SmallCNN
    layout = LAYOUTS[name]
    return lambda shape, n_classes: Candidate(layout, shape, n_classes)


class EvaluatedEpochs(Callback):
    """After each epoch (outside skorch's timer): full training loss (eval mode), test accuracy.

    Each epoch's line is printed at once, so that an interrupted run keeps its curve.
    """

    def __init__(self, X, y, X_test, y_test) -> None:
        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test

    def on_train_begin(self, net, **kwargs) -> None:
        self.losses_: list[float] = []

    def on_epoch_end(self, net, **kwargs) -> None:
        proba = net.predict_proba(self.X)
        self.losses_.append(float(-np.log(proba[np.arange(len(self.y)), self.y]).mean()))
        accuracy = np.mean(net.predict_proba(self.X_test).argmax(axis=1) == self.y_test)
        print(
            f"epoch {len(net.history)}: {net.history[-1, 'dur']:.1f} s, full training loss "
            f"{self.losses_[-1]:.4f}, test accuracy {accuracy:.4f}",
            flush=True,
        )


def fashion(rows: int) -> tuple[np.ndarray, ...]:
    data = load_dataset("fashion_mnist")
    X, y = data.data[:, None], data.target
    if rows < len(y):
        X, _, y, _ = train_test_split(X, y, train_size=rows, stratify=y, random_state=0)
    return X, y, data.data_test[:, None], data.target_test


def accuracy(args: argparse.Namespace) -> None:
    X, y, X_test, y_test = fashion(args.rows)
    images, labels = digits_images()
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(images, labels))
    for name in args.networks:
        settings = {
            "module": network(name),
            "n_iter_no_change": None,  # every epoch of the budget
            "random_state": 0,
            "device": "cpu",
        }
        built = network(name)(X.shape[1:], 10)
        size = sum(p.numel() for p in built.parameters())
        print(f"# {name}: {type(built).__name__}, {size} parameters", flush=True)
        evaluated = EvaluatedEpochs(X, y, X_test, y_test)
        model = ERMClassifier(
            **settings, max_epochs=args.max_epochs, callbacks=[("evaluated", evaluated)]
        )
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
        test = model.score(X_test, y_test)
        durations = model.net_.history[:, "dur"]
        losses = dict(model.net_.callbacks_)["evaluated"].losses_
        scores = [
            ERMClassifier(**settings, max_epochs=args.digits_epochs)
            .fit(images[train], labels[train])
            .score(images[held_out], labels[held_out])
            for train, held_out in folds
        ]
        parameters = sum(p.numel() for p in model.net_.module_.parameters())
        print(
            f"## {name}: {parameters} parameters, Fashion-MNIST {len(y)} rows, "
            f"{args.max_epochs} epochs: test accuracy {test:.4f}, fit {seconds:.0f} s, "
            f"epoch {np.median(durations):.1f} s (min {min(durations):.1f}, "
            f"max {max(durations):.1f}); digits {args.digits_epochs} epochs, 5-fold CV "
            f"{np.mean(scores):.4f} "
            f"(min {min(scores):.4f}, max {max(scores):.4f})",
            flush=True,
        )
        print("full training loss per epoch: " + " ".join(f"{loss:.4f}" for loss in losses))


def timed_epoch(classifier, X: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """Duration of the last of ``epochs`` epochs."""
    classifier.set_params(max_epochs=epochs, n_iter_no_change=None).fit(X, y)
    return classifier.net_.history[-1, "dur"]


CLASSIFIERS = {"erm": (ERMClassifier, 2), "rais": (RAISClassifier, 3)}
"""Each classifier and the number of epochs it trains, of which the last is timed."""


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(n, 1, 8, 8)`` images in [0, 1]."""
    digits = load_digits()
    return digits.data.reshape(-1, 1, 8, 8) / 16, digits.target


def epoch(args: argparse.Namespace) -> None:
    X, y = digits_images() if args.digits else fashion(args.rows)[:2]
    kinds = {kind: CLASSIFIERS[kind] for kind in args.classifiers}
    seconds: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        order = args.networks if repeat % 2 == 0 else args.networks[::-1]
        for kind, (Classifier, epochs) in kinds.items():
            for name in order:
                classifier = Classifier(module=network(name), random_state=repeat, device="cpu")
                duration = timed_epoch(classifier, X, y, epochs)
                seconds.setdefault((kind, name), []).append(duration)
                print(f"round {repeat} {kind} {name}: {duration:.2f} s", flush=True)
    baseline = args.networks[-1]
    steps = -(-len(y) // 128)
    for (kind, name), values in seconds.items():
        ratios = np.divide(values, seconds[kind, baseline])
        print(
            f"{kind} {name}: epoch median {np.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f}), "
            f"{1000 * np.median(values) / steps:.1f} ms/step; "
            f"ratio to {baseline} median {np.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["accuracy", "epoch"])
    parser.add_argument("--networks", nargs="+", default=["default", "small_cnn"],
                        help=f"default, small_cnn or one of {sorted(LAYOUTS)}; for 'epoch' "
                        "the last is the baseline of the ratios")  # fmt: skip
    parser.add_argument("--rows", type=int, default=48_000)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--digits-epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--digits", action="store_true")
    parser.add_argument("--classifiers", nargs="+", choices=list(CLASSIFIERS), default=["erm"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"accuracy": accuracy, "epoch": epoch}[args.command](args)


if __name__ == "__main__":
    main()
