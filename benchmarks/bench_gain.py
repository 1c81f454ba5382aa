r"""Does RAIS's online gain ratio (eq. 7) tell the truth? Online estimate against the exact ratio.

RAIS multiplies the learning rate by an online estimate :math:`\hat r` of the
gain ratio (section 3.2, eq. 6)

.. math:: r = \frac{\mathbb E\|g_U\|^2}{\mathbb E\|g_p\|^2}
          = 1 + \frac{\mathbb E\|g_{U1}\|^2 - \mathbb E\|g_{R1}\|^2}{M\, \mathbb E\|g_p\|^2},

and advances its schedule by epochs equivalent (steps weighted by
:math:`\hat r`). The estimator (``GainRatioEstimator``, section 4.4) forms
eq. 7 from moving averages (parameter :math:`\alpha`, ``gain_ema``) of three
one-minibatch estimates of these moments; an epoch's short last minibatch's
estimate of :math:`\mathbb E\|g_p\|^2` is made one for :math:`M` examples
(``nominal_batch_moment``), and every step's three estimates are divided by
the level of :math:`\mathbb E\|g_p\|^2` just before it (a moving average
``LEVEL_SPEEDUP`` times faster), so that the window averages the steps' gains
alike. An earlier version of this script found that the plain moving
averages of eq. 7 as printed weighted each step by its
:math:`\mathbb E\|g_p\|^2`, which falls many-fold within the window, and
counted the short minibatch as a full one: the live estimate was far below
the exact ratio (digits and letter). This script checks the current one.

It trains RAIS-SGD (``grad_norm='last_layer'``, ``lr_scaling=True``, other
settings below) and, with the network paused, measures in the estimator's own
space (the output layer's weight and bias) the gradient of *every* training
example, :math:`v_i`, and the mean gradient :math:`\bar g` (as
``OraclePolicy._measure`` does). With the current sampling distribution
:math:`p` they give the exact moments of eq. 5,

.. math::

    \mathbb E\|g_{U1}\|^2 = \tfrac1n \textstyle\sum_i v_i^2, \quad
    \mathbb E\|g_{R1}\|^2 = \tfrac1{n^2} \textstyle\sum_i v_i^2 / p_i, \quad
    \mathbb E\|g_p\|^2 = \tfrac1M (\mathbb E\|g_{R1}\|^2 - \|\bar g\|^2) + \|\bar g\|^2,

and the exact ratio of eq. 6. Recorded at every epoch's end:

- ``online_end``: the estimate the learning rate uses after the epoch
  (``policy._ratio``, read at the end of the epoch's last block), and
  ``online_mean``, ``history_``'s ``gain_ratio`` (its mean over the epoch's steps);
- ``exact``: eq. 6 now, unclipped (< 1 when :math:`p` is worse than uniform);
  ``exact_full``: the same with the gradients of *all* parameters
  (``torch.func``), the gain of the whole update; ``exact_optimal``: eq. 6 for
  :math:`p \propto v` (Proposition 3.1), the most any :math:`p` gains in the
  last-layer space;
- ``windowed``: the moving average (RAIS's :math:`\alpha`, bias-corrected) of
  the exact per-step ratios :math:`r_t` (for :math:`M`, clipped to
  :math:`[1, M]`), each measured before its step's forward pass with the
  :math:`p` its minibatch was drawn from: what an estimator unbiased at every
  step and smoothed like eq. 7 reports, the window's lag included exactly;
  ``windowed_plain``: eq. 7 on the same moving averages of the exact moments
  of every step (:math:`\mathbb E\|g_p\|^2` for the step's own minibatch
  size; the permutation epoch's without replacement): what plain moving
  averages (the old estimator) converge to, sampling noise aside;
- ``frozen``: a fresh ``GainRatioEstimator`` fed ``--frozen-steps``
  minibatches drawn from the paused snapshot's :math:`p` with the same
  :math:`\alpha`: the estimator's noise and bias without a changing network;
- ``mean_share``: :math:`\|\bar g\|^2 / \mathbb E\|g_p\|^2`;
  ``effective_sample_size`` of :math:`p` (a fraction of ``n``), the learning
  rate of the last step and the full training loss (mean cross-entropy over
  the training set).

Epochs in which :math:`p` is still uniform (before the first (PT) solve) have
:math:`\hat r = r = 1` identically and are left out of the two tables. The
first gives per dataset the median over seeds and epochs of ``online_end /
exact``, its interquartile range, the fraction of epochs with ``online_end >
exact``, and the same split into early and late epochs (first and second half
of each run's importance-sampled epochs); the second (:func:`diagnose`) says
where a difference comes from.

Setting (as ``sk-reweight speed --full-loss --flatten --lr-schedule cosine``):
MLP (256, 256), batch 128, SGD with momentum 0.9, lr 0.05, cosine schedule over
``--epochs`` epochs (equivalent), the training part of seed ``s``'s 80/20
split (its dataset's preprocessing; images flattened and standardised), RAIS
seeded with ``random_state = 1000 s`` (the harness's seeding rule), one torch
thread. The ``windowed*`` columns cost a pass over the training set
before every step (letter: about 115 s per seed on one core; the first command
below takes about 6.5 minutes; ``--no-windowed`` skips them); ``--max-rows``
subsamples a dataset.

    python benchmarks/bench_gain.py --datasets digits letter --seeds 0 1 2 \
        --output docs/results/gain_truth.csv
    python benchmarks/bench_gain.py --summarise docs/results/gain_truth.csv
    python benchmarks/bench_gain.py --gain-ema 0.1 --output docs/results/gain_truth_ema01.csv
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from skorch.callbacks import Callback
from torch import Tensor, nn
from torch.nn import functional

from sk_reweight import RAISClassifier
from sk_reweight._rais._gain import GainRatioEstimator, exact_gain_ratio
from sk_reweight._rais._norms import GradientProbe, LastLayerGradients
from sk_reweight.harness._evaluation import markdown_table
from sk_reweight.harness._methods import as_dense_float32
from sk_reweight.harness._prepared_data import TrainTestSplit, load_dataset, prepare_dataset

EXACT_CHUNK = 4096
"""Examples per forward pass when the whole training set is measured."""

FULL_SPACE_CHUNK = 128
"""Examples per ``torch.func`` pass for the all-parameter gradients (memory: rows x parameters)."""


@dataclass
class TrainingSetGradients:
    r"""Every training example's gradient at one snapshot, in one space.

    Attributes
    ----------
    norms : Tensor of shape (n,), float64
        :math:`v_i`.
    mean_gradient_sq_norm : float
        :math:`\|\bar g\|^2`, :math:`\bar g = \frac1n \sum_i \nabla f_i`.
    mean_loss : float
        The mean cross-entropy over the training set.
    last_layer : LastLayerGradients or None
        The per-example factors :math:`\delta_i, h_i` (last-layer space only),
        from which any minibatch's gradient is rebuilt without a forward pass.
    """

    norms: Tensor
    mean_gradient_sq_norm: float
    mean_loss: float
    last_layer: LastLayerGradients | None = None

    def moments(
        self, probabilities: Tensor, batch_size: int, with_replacement: bool = True
    ) -> tuple[float, float, float]:
        r"""Exact :math:`\mathbb E\|g_{U1}\|^2, \mathbb E\|g_{R1}\|^2, \mathbb E\|g_p\|^2` (eq. 5).

        ``with_replacement=False`` (uniform :math:`p` only): a minibatch of a
        random permutation, whose variance term carries the finite-population
        factor :math:`(n - M)/(n - 1)`.
        """
        n = len(self.norms)
        squares = self.norms.square()
        drawn = probabilities > 0
        uniform_single = squares.mean().item()
        sampled_single = (squares[drawn] / probabilities[drawn].double()).sum().item() / n**2
        mean_sq = self.mean_gradient_sq_norm
        variance = (sampled_single - mean_sq) / batch_size
        if not with_replacement:
            variance *= (n - batch_size) / (n - 1)
        return uniform_single, sampled_single, variance + mean_sq

    def minibatch_samples(self, indices: Tensor, weights: Tensor) -> Tensor:
        r"""Eq. 7's three one-minibatch estimates for minibatches ``indices`` of shape (K, m).

        :math:`\mathrm{mean}_j w_j v_j^2`, :math:`\mathrm{mean}_j w_j^2 v_j^2`
        and :math:`\|\frac1m \sum_j w_j \delta_j (h_j, 1)^\top\|^2` (eq. 4,
        the probe's ``weighted_sum``), as the rows of a (K, 3) tensor.
        """
        weighted = weights * self.norms[indices].square()
        factors = self.last_layer
        gradient_sq_norms = torch.stack(
            [
                LastLayerGradients(factors.delta[batch], factors.inputs[batch])
                .weighted_sum((batch_weights / len(batch)).float())
                .double()
                .square()
                .sum()
                for batch, batch_weights in zip(indices, weights, strict=True)
            ]
        )
        return torch.stack(
            [weighted.mean(dim=1), (weights * weighted).mean(dim=1), gradient_sq_norms], dim=1
        )

    def ratio(self, probabilities: Tensor, batch_size: int) -> float:
        """Eq. 6 for minibatches of ``batch_size`` drawn from ``probabilities``, unclipped."""
        return exact_gain_ratio(
            self.norms, probabilities.double(), self.mean_gradient_sq_norm, batch_size
        )


def measure_training_set(
    module: nn.Module, X: Tensor, y: Tensor, grad_norm: str, chunk: int = EXACT_CHUNK
) -> TrainingSetGradients:
    r"""Per-example gradients of the whole training set, as ``OraclePolicy._measure`` does.

    The module is evaluated in evaluation mode, in chunks, through a
    :class:`GradientProbe` of its own (released afterwards); the mean gradient
    is :math:`\sum_i \frac1n \nabla f_i`, accumulated with the probe's
    ``weighted_sum``. Equal sample weights are assumed.
    """
    n = len(X)
    probe = GradientProbe(grad_norm, module)
    was_training = module.training
    module.eval()
    norms, deltas, inputs, mean_gradient, loss = [], [], [], 0.0, 0.0
    try:
        for start in range(0, n, chunk):
            X_chunk, y_chunk = X[start : start + chunk], y[start : start + chunk]
            with torch.no_grad():
                logits = module(X_chunk)
                loss += functional.cross_entropy(logits, y_chunk, reduction="sum").item()
            gradients = probe.gradients(X_chunk, logits, y_chunk)
            norms.append(gradients.norms.double())
            coefficients = torch.full((len(X_chunk),), 1.0 / n, device=X.device)
            mean_gradient = mean_gradient + gradients.weighted_sum(coefficients).double()
            if isinstance(gradients, LastLayerGradients):
                deltas.append(gradients.delta)
                inputs.append(gradients.inputs)
    finally:
        module.train(was_training)
        probe.release()
    last_layer = LastLayerGradients(torch.cat(deltas), torch.cat(inputs)) if deltas else None
    return TrainingSetGradients(
        torch.cat(norms), mean_gradient.square().sum().item(), loss / n, last_layer
    )


def draw_minibatches(
    gradients: TrainingSetGradients,
    probabilities: Tensor,
    batch_size: int,
    n_batches: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Eq. 7's inputs for ``n_batches`` minibatches drawn from :math:`p` at a frozen snapshot.

    Each minibatch: :math:`M` independent draws with replacement
    (``torch.multinomial``), weights :math:`w_j = 1/(n p_j)`, and the
    importance-weighted minibatch gradient rebuilt from the snapshot's
    per-example factors (:meth:`TrainingSetGradients.minibatch_samples`).

    Returns
    -------
    norms, weights : Tensor of shape (n_batches, batch_size)
    batch_gradient_sq_norms : Tensor of shape (n_batches,)
    """
    n = len(gradients.norms)
    drawn = torch.multinomial(
        probabilities.double(), n_batches * batch_size, replacement=True, generator=generator
    ).view(n_batches, batch_size)
    weights = 1.0 / (n * probabilities.double()[drawn])
    samples = gradients.minibatch_samples(drawn, weights)
    return gradients.norms[drawn], weights, samples[:, 2]


def eq7_ratio(moments: Tensor | Sequence[float], batch_size: int) -> float:
    r""":math:`1 + (a - b) / (M c)` of three (moving averages of) moments, clipped to [1, M]."""
    uniform_single, sampled_single, sampled_batch = (float(m) for m in moments)
    if sampled_batch <= 0:
        return 1.0
    ratio = 1.0 + (uniform_single - sampled_single) / (batch_size * sampled_batch)
    return min(max(ratio, 1.0), float(batch_size))


class GainTruth(Callback):
    """The online gain ratio against the exact one at every epoch end (see the module docstring).

    Each epoch's measurements are recorded in the history as one dict, ``"gain_truth"``.

    Parameters
    ----------
    frozen_steps : int
        Minibatches fed to a fresh estimator at each paused snapshot (0: skip).
    full_space : bool
        Also compute the exact ratio with every parameter's gradient.
    windowed : bool
        Measure the exact moments before every step (a pass over the training
        set per step) for the ``windowed*`` columns.
    seed : int
        Seed of the snapshots' minibatch draws (a private generator: training
        is not disturbed).
    """

    def __init__(
        self,
        frozen_steps: int = 1000,
        full_space: bool = True,
        windowed: bool = True,
        seed: int = 0,
    ):
        self.frozen_steps = frozen_steps
        self.full_space = full_space
        self.windowed = windowed
        self.seed = seed

    def initialize(self):
        self._generator = torch.Generator().manual_seed(self.seed)
        # Moving averages (RAIS's alpha, uncorrected) of the exact per-step ratios and of the
        # exact moments of every step (c for the step's own minibatch size).
        self._window_ratio = 0.0
        self._window_moments = torch.zeros(3, dtype=torch.float64)
        self._steps = 0
        self._step_seconds = 0.0
        return self

    def _training_set(self, policy) -> tuple[Tensor, Tensor]:
        return policy.dataset.X, policy.dataset.y

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not (training and self.windowed):
            return
        start = time.perf_counter()
        policy = net.policy
        gradients = measure_training_set(policy.module, *self._training_set(policy), "last_layer")
        probabilities = policy.probabilities()
        with_replacement = policy.epochs_started > 1  # the first epoch visits a permutation
        size, nominal = len(batch[0]), net.batch_size
        own = torch.tensor(gradients.moments(probabilities, size, with_replacement))
        full = gradients.moments(probabilities, nominal, with_replacement)
        alpha = policy.gain_ema
        self._window_ratio = (1 - alpha) * self._window_ratio + alpha * eq7_ratio(full, nominal)
        self._window_moments.mul_(1 - alpha).add_(own.double(), alpha=alpha)
        self._steps += 1
        self._step_seconds += time.perf_counter() - start

    def on_epoch_end(self, net, **kwargs):
        start = time.perf_counter()
        policy = net.policy
        X, y = self._training_set(policy)
        module, batch_size = policy.module, net.batch_size
        probabilities = policy.probabilities().double()
        last_layer = measure_training_set(module, X, y, policy.grad_norm)
        exact = last_layer.moments(probabilities, batch_size)
        optimal = last_layer.norms / last_layer.norms.sum()
        record = {
            "epoch": len(net.history),
            "epochs_equivalent": net.history[-1, "epochs_equivalent"],
            "uniform": bool((probabilities == probabilities[0]).all()),
            "effective_sample_size": net.history[-1, "effective_sample_size"],
            "online_end": policy._ratio,
            "online_mean": net.history[-1, "gain_ratio"],
            "exact": last_layer.ratio(probabilities, batch_size),
            "exact_optimal": last_layer.ratio(optimal, batch_size),
            "mean_share": last_layer.mean_gradient_sq_norm / exact[2],
            "steps_per_epoch": math.ceil(policy.n_samples / batch_size),
            "lr": net.history[-1, "lr"],
            "full_train_loss": last_layer.mean_loss,
        }
        if self.windowed:
            correction = 1.0 - (1.0 - policy.gain_ema) ** self._steps
            record["windowed"] = self._window_ratio / correction
            record["windowed_plain"] = eq7_ratio(self._window_moments, batch_size)
        if self.frozen_steps:
            frozen = GainRatioEstimator(policy.gain_ema, batch_size, torch.device("cpu"))
            frozen.update(
                *draw_minibatches(
                    last_layer, probabilities, batch_size, self.frozen_steps, self._generator
                )
            )
            record["frozen"] = frozen.ratio
        if self.full_space:
            full = measure_training_set(module, X, y, "exact", chunk=FULL_SPACE_CHUNK)
            record["exact_full"] = full.ratio(probabilities, batch_size)
        record["measure_seconds"] = time.perf_counter() - start + self._step_seconds
        self._step_seconds = 0.0
        net.history.record("gain_truth", record)


def importance_sampled(frame: pd.DataFrame) -> pd.DataFrame:
    """The epochs with a non-uniform :math:`p`, with ``online_over_exact`` and ``phase``.

    ``phase``: ``'early'`` / ``'late'``, the first / second half of each run's
    importance-sampled epochs.
    """
    sampled = frame[~frame["uniform"]].copy()
    sampled["online_over_exact"] = sampled["online_end"] / sampled["exact"]
    position = sampled.groupby(["dataset", "seed"])["epoch"].rank(method="first", pct=True)
    sampled["phase"] = np.where(position <= 0.5, "early", "late")
    return sampled


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: ``online_end / exact`` over the importance-sampled epochs of every seed."""
    rows = []
    for dataset, runs in importance_sampled(frame).groupby("dataset", sort=False):
        ratio = runs["online_over_exact"]
        row = {
            "dataset": dataset,
            "epochs (sampled/all)": f"{len(runs)}/{int((frame['dataset'] == dataset).sum())}",
            "online/exact median [IQR]": _median_iqr(ratio),
            "online > exact": f"{(ratio > 1).mean():.2f}",
        }
        for phase in ("early", "late"):
            part = runs[runs["phase"] == phase]["online_over_exact"]
            row[f"{phase}: median [IQR]"] = _median_iqr(part) if len(part) else "-"
            row[f"{phase}: online > exact"] = f"{(part > 1).mean():.2f}" if len(part) else "-"
        row["exact median [min, max]"] = (
            f"{runs['exact'].median():.2f} [{runs['exact'].min():.2f}, {runs['exact'].max():.2f}]"
        )
        row["ESS median"] = f"{runs['effective_sample_size'].median():.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def diagnose(frame: pd.DataFrame) -> pd.DataFrame:
    r"""Per dataset: where the difference comes from (medians over importance-sampled epochs).

    ``window (epochs)``: the moving averages' :math:`1/\alpha` steps in epochs.
    ``online/windowed``: the online estimate over the moving average of the
    exact per-step ratios (1: the estimator is exact on its own window up to
    noise; the lag is not an error), and ``(online-1)/(windowed-1)`` the same
    for the gain in excess of 1; ``plain/windowed``: eq. 7 on the moving
    averages of the exact moments (the old plain estimator's noise-free
    target) over the same reference; ``frozen/exact``: a fresh estimator on a
    paused snapshot, same :math:`\alpha` (its noise and ratio-of-means bias);
    ``exact_full/exact``: the all-parameter ratio over the last-layer one (the
    proxy space's error).
    """
    rows = []
    sampled = importance_sampled(frame)
    for dataset, runs in sampled.groupby("dataset", sort=False):
        steps_per_epoch = runs["steps_per_epoch"].iloc[0]
        row = {
            "dataset": dataset,
            "gain_ema": ", ".join(f"{alpha:g}" for alpha in runs["gain_ema"].unique()),
            "window (epochs)": f"{1 / (runs['gain_ema'].iloc[0] * steps_per_epoch):.2f}",
            "online_mean/exact": _median_iqr(runs["online_mean"] / runs["exact"]),
        }
        if "windowed" in runs and runs["windowed"].notna().all():
            windowed = runs["windowed"]
            row["online/windowed"] = _median_iqr(runs["online_end"] / windowed)
            row["(online-1)/(windowed-1)"] = _median_iqr((runs["online_end"] - 1) / (windowed - 1))
            row["plain/windowed"] = _median_iqr(runs["windowed_plain"] / windowed)
            row["windowed/exact"] = _median_iqr(windowed / runs["exact"])
        for numerator, denominator, label in (
            ("frozen", "exact", "frozen/exact"),
            ("exact_full", "exact", "exact_full/exact"),
        ):
            if {numerator, denominator} <= set(runs) and runs[numerator].notna().all():
                row[label] = _median_iqr(runs[numerator] / runs[denominator])
        last = frame[frame["dataset"] == dataset].groupby("seed").tail(1)
        row["epochs run"] = f"{last['epoch'].median():.0f}"
        row["final loss"] = f"{last['full_train_loss'].median():.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def _median_iqr(values: pd.Series) -> str:
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    return f"{median:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "letter"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    parser.add_argument("--gain-ema", type=float, default=0.01, help="RAIS's gain_ema (alpha)")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--frozen-steps", type=int, default=1000)
    parser.add_argument(
        "--no-full-space", action="store_true", help="skip the all-parameter exact ratio"
    )
    parser.add_argument(
        "--no-windowed", action="store_true", help="skip the per-step exact moments"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="per-epoch CSV")
    parser.add_argument(
        "--summarise", type=Path, default=None, help="only print the summary of a per-epoch CSV"
    )
    args = parser.parse_args()
    if args.summarise is not None:
        frame = pd.read_csv(args.summarise)
        print(markdown_table(summarise(frame)) + "\n\n" + markdown_table(diagnose(frame)))
        return
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    frames = []
    start = time.perf_counter()
    for name in args.datasets:
        data = prepare_dataset(load_dataset(name), args.max_rows)
        for seed in args.seeds:
            split = TrainTestSplit.of_dataset(data, seed, flatten=True)
            X_train = as_dense_float32(split.make_preprocessor().fit_transform(split.X_train))
            y_train = split.y_train
            print(f"{name}, seed {seed}: {X_train.shape} training rows x features", flush=True)
            truth = GainTruth(
                args.frozen_steps, not args.no_full_space, not args.no_windowed, seed=seed
            )
            model = RAISClassifier(
                uniform_fallback=None,  # the gain ratio of every step, never uniform epochs
                gain_ema=args.gain_ema,
                optimizer="sgd",
                momentum=0.9,
                lr=args.lr,
                lr_schedule="cosine",
                batch_size=args.batch_size,
                max_epochs=args.epochs,
                hidden_layer_sizes=tuple(args.hidden),
                device="cpu",
                random_state=split.training_seed,
                callbacks=[("gain_truth", truth)],
            )
            fit_start = time.perf_counter()
            model.fit(X_train, y_train)
            frame = pd.DataFrame(model.history_[:, "gain_truth"])
            frames.append(frame.assign(dataset=name, seed=seed, gain_ema=args.gain_ema))
            sampled = frame[~frame["uniform"]]
            print(
                f"  seed {seed}: {len(frame)} epochs, epochs equiv. "
                f"{frame['epochs_equivalent'].iloc[-1]:.2f}, loss "
                f"{frame['full_train_loss'].iloc[-1]:.4f}, median online/exact "
                f"{(sampled['online_end'] / sampled['exact']).median():.3f}, "
                f"{time.perf_counter() - fit_start:.0f} s "
                f"({frame['measure_seconds'].sum():.0f} s measuring)",
                flush=True,
            )
    frame = pd.concat(frames, ignore_index=True)
    first = ["dataset", "seed", "gain_ema"]
    frame = frame[first + [column for column in frame.columns if column not in first]]
    elapsed = time.perf_counter() - start
    print(f"\n{len(args.datasets)} datasets, {len(args.seeds)} seeds, {elapsed:.0f} s\n")
    print(markdown_table(summarise(frame)) + "\n\n" + markdown_table(diagnose(frame)))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
