"""Per-epoch training time of sk_reweight against a hand-written PyTorch loop and plain skorch.

All contenders train the same MLP (same widths, Adam, same batch size) on the
same synthetic data in this one process. Epoch times are interleaved: each
repetition runs every contender once, in turn, so machine noise hits them
alike; the script reports the median per-epoch time of each and its ratio to
the hand-written loop.

    python benchmarks/bench_throughput.py --n-samples 100000 --n-features 50

The first epoch of every fit is excluded (one-off costs: optimizer import of
torch._dynamo, allocator warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight._modules import MLP


def hand_written_epochs(X, y, hidden, batch_size, epochs, device):
    """The reference: slice tensors per batch, Adam, mean cross-entropy."""
    X_t, y_t = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    model = MLP(X.shape[1], int(y.max()) + 1, hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    durations = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(X_t), device=device)
        total = torch.zeros((), device=device)
        for begin in range(0, len(X_t), batch_size):
            index = order[begin : begin + batch_size]
            optimizer.zero_grad()
            loss = criterion(model(X_t[index]), y_t[index])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()
        durations.append(time.perf_counter() - start)
    return durations


def estimator_epochs(estimator_class, X, y, hidden, batch_size, epochs, device):
    model = estimator_class(
        hidden_layer_sizes=hidden,
        batch_size=batch_size,
        max_epochs=epochs,
        device=device,
        random_state=0,
    ).fit(X, y)
    return list(model.history_[:, "dur"])


def skorch_epochs(X, y, hidden, batch_size, epochs, device):
    net = NeuralNetClassifier(
        MLP,
        module__n_features=X.shape[1],
        module__n_classes=int(y.max()) + 1,
        module__hidden_layer_sizes=hidden,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        verbose=0,
    ).fit(X, y)
    return list(net.history[:, "dur"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit (first excluded)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skorch-epochs", type=int, default=2, help="plain skorch is slow")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n_samples, args.n_features)).astype(np.float32)
    y = (X[:, :5].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 5] > 0)
    hidden = tuple(args.hidden)
    contenders = {
        "hand-written loop": lambda e: hand_written_epochs(
            X, y, hidden, args.batch_size, e, args.device
        ),
        "ERMClassifier": lambda e: estimator_epochs(
            ERMClassifier, X, y, hidden, args.batch_size, e, args.device
        ),
        "RGDClassifier": lambda e: estimator_epochs(
            RGDClassifier, X, y, hidden, args.batch_size, e, args.device
        ),
        "skorch NeuralNetClassifier": lambda e: skorch_epochs(
            X, y, hidden, args.batch_size, e, args.device
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            epochs = args.skorch_epochs if name.startswith("skorch") else args.epochs
            times[name] += run(epochs + 1)[1:]

    reference = statistics.median(times["hand-written loop"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device={args.device}; "
        f"{args.n_samples} x {args.n_features}, MLP {hidden}, batch {args.batch_size}, Adam"
    )
    print(f"{'contender':<28} {'s/epoch':>9} {'vs loop':>8}")
    for name, durations in times.items():
        median = statistics.median(durations)
        print(f"{name:<28} {median:>9.3f} {median / reference:>7.2f}x")
    erm, rgd = (statistics.median(times[name]) for name in ("ERMClassifier", "RGDClassifier"))
    print(f"RGD overhead over ERM: {100 * (rgd / erm - 1):+.1f} %")


if __name__ == "__main__":
    main()
