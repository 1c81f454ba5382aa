"""Per-epoch training time of sk_reweight against a hand-written PyTorch loop and plain skorch.

All contenders train the same MLP (same widths, Adam, same batch size) on the
same synthetic data in this one process. Each repetition fits every contender
once, in an order rotated between repetitions, and divides each contender's
median epoch time by the hand-written loop's of the same repetition; the
script reports the median of these ratios over repetitions and their range.
Pairing within a repetition cancels the slow drifts of a shared machine, whose
epoch times vary by +-20 % from fit to fit.

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
from sk_reweight._data import TensorDataset
from sk_reweight._engine import ReweightingNet
from sk_reweight._modules import MLP
from sk_reweight._policies import MinibatchPolicy
from sk_reweight._rgd import RGDPolicy


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
        n_iter_no_change=None,  # every epoch of the budget
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


def step_time_ratio(X, y, hidden, batch_size, device, blocks=40, steps=50) -> list[float]:
    """RGD's training-step time over ERM's, per block of ``steps`` identical minibatches.

    Both policies drive identical engines over the same minibatches; blocks
    alternate between them, so each ratio compares neighbours in time. This
    isolates what RGD adds per step (the weights and their statistics) from
    the fit-to-fit noise of whole epochs.
    """
    dataset = TensorDataset(
        torch.as_tensor(X), torch.as_tensor(y), torch.ones(len(X), dtype=torch.float32)
    ).to(device)
    nets = {}
    for name, policy in (("ERM", MinibatchPolicy()), ("RGD", RGDPolicy(tau=1.0))):
        policy.reset(len(X), torch.Generator().manual_seed(0), torch.device(device))
        policy.epochs_started = 1
        torch.manual_seed(0)
        nets[name] = ReweightingNet(
            MLP(X.shape[1], int(y.max()) + 1, hidden),
            policy=policy,
            optimizer=torch.optim.Adam,
            lr=1e-3,
            batch_size=batch_size,
            train_split=None,
            device=device,
            verbose=0,
        ).initialize()
    generator = torch.Generator().manual_seed(1)
    batches = [
        dataset[torch.randint(len(X), (batch_size,), generator=generator).to(device)]
        for _ in range(steps)
    ]
    ratios = []
    for block in range(blocks):
        seconds = {}
        for name in ("ERM", "RGD") if block % 2 == 0 else ("RGD", "ERM"):
            start = time.perf_counter()
            for batch in batches:
                nets[name].train_step(batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name] = time.perf_counter() - start
        nets["RGD"].policy.epoch_statistics()
        ratios.append(seconds["RGD"] / seconds["ERM"])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (first excluded)")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--skorch-epochs", type=int, default=1, help="plain skorch is slow")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's, one per core)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n_samples, args.n_features)).astype(np.float32)
    y = (X[:, :5].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 5] > 0)
    # 10 % random labels keep the losses away from 0, and so the network's
    # gradients out of the denormal range, whose slow arithmetic on x86 CPUs
    # would make epoch times grow 3-fold as training converges; flushing
    # denormals to zero covers what remains (GPUs do so by default).
    noisy = rng.random(args.n_samples) < 0.1
    y[noisy] = rng.integers(0, 4, noisy.sum())
    torch.set_flush_denormal(True)
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
    ratios: dict[str, list[float]] = {name: [] for name in [*contenders, "RGD / ERM"]}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(args.repeats):
        # Rotate the order each repetition so that no contender always runs first.
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        medians = {}
        for name in order:
            epochs = args.skorch_epochs if name.startswith("skorch") else args.epochs
            medians[name] = statistics.median(contenders[name](epochs + 1)[1:])
        for name in names:
            seconds[name].append(medians[name])
            ratios[name].append(medians[name] / medians["hand-written loop"])
        ratios["RGD / ERM"].append(medians["RGDClassifier"] / medians["ERMClassifier"])

    step_ratios = step_time_ratio(X, y, hidden, args.batch_size, args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device={args.device}; "
        f"{args.n_samples} x {args.n_features}, MLP {hidden}, batch {args.batch_size}, Adam; "
        f"{args.repeats} repetitions in rotated order"
    )
    print("ratio = median over repetitions of (median epoch time / same repetition's reference)")
    print(f"{'contender':<28} {'s/epoch':>9} {'ratio':>7} {'min-max':>13}")
    for name in [*names, "RGD / ERM"]:
        per_epoch = f"{statistics.median(seconds[name]):9.3f}" if name in seconds else " " * 9
        values = ratios[name]
        print(
            f"{name:<28} {per_epoch} {statistics.median(values):6.3f}x "
            f"{min(values):6.3f}-{max(values):.3f}"
        )
    quartiles = statistics.quantiles(step_ratios, n=4)
    print(
        f"RGD / ERM per training step (engine only, {len(step_ratios)} alternating blocks): "
        f"median {statistics.median(step_ratios):.3f}x, quartiles "
        f"{quartiles[0]:.3f}-{quartiles[2]:.3f}"
    )


if __name__ == "__main__":
    main()
