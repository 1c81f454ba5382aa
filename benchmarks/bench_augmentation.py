"""What ``augmentation='crop'`` costs per epoch and what it buys in held-out accuracy.

ERM with the default network (``module=None``: the default CNN) and defaults
otherwise (Adam, lr 1e-3, batch 128, no schedule) trains on a stratified
subsample of Fashion-MNIST's training images for a fixed number of epochs,
with and without augmentation, for several seeds; both fits of a seed run back
to back in this process, in an order that alternates between seeds. Reported:

- the per-epoch time ratio (augmented / plain) of each seed, from the median
  epoch duration of each fit with its first epoch left out (one-off costs);
- the accuracy of each fit on the official 10,000 test images;
- the cost of the augmentation alone on one minibatch against a whole training
  step of the same network (forward, backward, Adam), timed interleaved.

    OMP_NUM_THREADS=1 python benchmarks/bench_augmentation.py --n-train 20000 --epochs 10 \\
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from sklearn.model_selection import train_test_split

from sk_reweight import ERMClassifier, default_module
from sk_reweight._augmentation import augment, augmentation_generator
from sk_reweight.datasets import load_dataset


def fit(X, y, X_test, y_test, augmentation, seed, epochs):
    model = ERMClassifier(
        max_epochs=epochs,
        n_iter_no_change=None,  # every epoch of the budget
        device="cpu",
        random_state=seed,
        augmentation=augmentation,
    )
    model.fit(X, y)
    durations = model.history_[:, "dur"]
    return statistics.median(durations[1:]), model.score(X_test, y_test), sum(durations)


def timed(function, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def step_costs(batch_size: int, repetitions: int, calls: int) -> dict[str, list[float]]:
    """Seconds per call of each augmentation and of a training step, interleaved."""
    X = torch.rand(batch_size, 1, 28, 28)
    y = torch.randint(10, (batch_size,))
    module = default_module((1, 28, 28), 10, (100,), 0.0)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    generator = augmentation_generator(0, "cpu")

    def training_step():
        optimizer.zero_grad()
        criterion(module(X), y).backward()
        optimizer.step()

    contenders = {
        "step": training_step,
        "crop": lambda: augment(X, "crop", generator),
        "crop_flip": lambda: augment(X, "crop_flip", generator),
    }
    for function in contenders.values():  # warm-up
        timed(function, calls)
    costs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repetitions):
        for name, function in contenders.items():
            costs[name].append(timed(function, calls))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--augmentation", default="crop", choices=["crop", "crop_flip"])
    parser.add_argument("--step-repetitions", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)

    costs = step_costs(128, args.step_repetitions, calls=20)
    step = statistics.median(costs["step"])
    for name in ("crop", "crop_flip"):
        ratios = [a / s for a, s in zip(costs[name], costs["step"], strict=True)]
        print(
            f"{name}: {statistics.median(costs[name]) * 1e3:.3f} ms per batch of 128 "
            f"(training step {step * 1e3:.1f} ms): {statistics.median(ratios):.2%} of a step "
            f"(range {min(ratios):.2%} - {max(ratios):.2%})",
            flush=True,
        )

    data = load_dataset("fashion_mnist")
    X, _, y, _ = train_test_split(
        data.data, data.target, train_size=args.n_train, stratify=data.target, random_state=0
    )
    print(f"training on {len(X)} images, testing on {len(data.data_test)}", flush=True)
    print("seed | epoch time ratio | test accuracy plain | augmented | fit seconds plain | aug")
    for seed in args.seeds:
        runs = {}
        order = [None, args.augmentation] if seed % 2 == 0 else [args.augmentation, None]
        for augmentation in order:
            runs[augmentation] = fit(
                X, y, data.data_test, data.target_test, augmentation, seed, args.epochs
            )
        (plain_epoch, plain_accuracy, plain_total) = runs[None]
        (aug_epoch, aug_accuracy, aug_total) = runs[args.augmentation]
        print(
            f"{seed} | {aug_epoch / plain_epoch:.3f} ({plain_epoch:.2f} s vs {aug_epoch:.2f} s) | "
            f"{plain_accuracy:.4f} | {aug_accuracy:.4f} | {plain_total:.0f} | {aug_total:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
