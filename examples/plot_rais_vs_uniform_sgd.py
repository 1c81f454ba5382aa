"""
RAIS-SGD against uniform SGD: held-out accuracy per second
==========================================================

RAIS samples minibatches from a learnt distribution and multiplies the
learning rate by the estimated gain ratio, so one of its steps is worth more
than one uniform step: it runs its learning-rate schedule in *epochs
equivalent* and ends as soon as they complete it. Whether that buys anything
is a question of wall-clock time and of held-out accuracy, which is what
``sk-reweight speed`` measures. This page shows a run of it that was
**recorded** (the CSV files under ``docs/results/``), not timings taken while
the documentation was built: those would depend on whatever else the build
machine was doing. The command (about 12,000 training and 3,000 held-out
Fashion-MNIST images, flattened for an MLP (256, 256), SGD with momentum 0.9,
lr 0.05, cosine schedule over 12 epochs, minibatches of 128, 3 seeds, one CPU
thread)::

    sk-reweight speed --dataset fashion_mnist --flatten --full-loss \\
        --lr-schedule cosine --max-epochs 12 --max-rows 15000 --seeds 3 \\
        --output docs/results/speed_rais_fashion_mnist_mlp_frontier

Uniform SGD and RAIS each train with budgets of 1/4, 1/2, 3/4 and all of the
12 epochs, every budget with its schedule compressed to it. Uniform SGD's
held-out accuracy against its training seconds is its **equal-time
frontier**; RAIS's accuracy is compared with the frontier read at RAIS's own
seconds. The same comparison in code, for your own data::

    from sk_reweight import ERMClassifier, RAISClassifier

    sgd = dict(optimizer="sgd", momentum=0.9, lr=0.05, lr_schedule="cosine")
    for epochs in (3, 6, 9, 12):
        uniform = ERMClassifier(max_epochs=epochs, **sgd).fit(X_train, y_train)
        rais = RAISClassifier(max_epochs=epochs, **sgd).fit(X_train, y_train)
        # seconds: sum(model.history_[:, "dur"]); accuracy: model.score(X_test, y_test)
"""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

# sphinx-gallery runs the examples in their own directory, examples/.
RUN = "speed_rais_fashion_mnist_mlp_frontier"
results = next(
    root / "docs" / "results" / RUN
    for root in (Path.cwd(), Path.cwd().parent)
    if (root / "docs" / "results" / RUN).is_dir()
)
speed = pd.read_csv(results / "speed.csv")
frontier = pd.read_csv(results / "frontier.csv")
curves = pd.read_csv(results / "curves.csv")

# %%
# The full schedule
# -----------------
# One row per seed and method with all 12 epochs: epochs run, epochs
# equivalent, training seconds (the sum of the epochs' durations), the final
# full training loss and held-out scores, and the seconds each run needed to
# reach uniform SGD's final training loss and held-out log-loss (empty: never).
full = speed[speed["budget"] == speed["budget"].max()]
columns = [
    "seed",
    "method",
    "epochs_run",
    "epochs_equivalent",
    "seconds",
    "final_loss",
    "test_accuracy",
    "test_log_loss",
    "seconds_to_target",
    "seconds_to_test_log_loss",
]
full[columns].round(3)

# %%
# The equal-time frontier
# -----------------------
# Every run of both methods: held-out accuracy against training seconds, one
# line per seed, each point labelled with its budget in epochs. A RAIS point
# above uniform SGD's line of the same seed is ahead at equal time.
fig, ax = plt.subplots(figsize=(8, 5))
for color, (method, runs) in zip(("C0", "C1"), speed.groupby("method", sort=False), strict=True):
    for seed, seed_runs in runs.groupby("seed"):
        seed_runs = seed_runs.sort_values("budget")
        ax.plot(
            seed_runs["seconds"],
            100 * seed_runs["test_accuracy"],
            marker="o",
            color=color,
            alpha=0.7,
            label=method if seed == 0 else None,
        )
        for run in seed_runs.itertuples():
            ax.annotate(
                str(run.budget),
                (run.seconds, 100 * run.test_accuracy),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
                color=color,
            )
ax.set(xlabel="training seconds", ylabel="held-out accuracy (%)")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()

# %%
# Accuracy at equal time: for each RAIS run, uniform SGD's accuracy
# interpolated at RAIS's seconds (``position`` says when RAIS's seconds lie
# outside the frontier's time range: then its nearest end is used), the
# difference in percentage points, and the seconds uniform SGD needs on its
# frontier to reach RAIS's accuracy, over RAIS's seconds (above 1: RAIS is
# faster).
frontier.round(3)

# %%
# Three clocks
# ------------
# The full-budget runs, mean over seeds: the full training loss against
# epochs (RAIS is ahead because each of its steps counts for more), against
# seconds (what its bookkeeping costs is included), and the held-out accuracy
# against seconds.
mean = (
    curves[curves["budget"] == curves["budget"].max()]
    .groupby(["method", "epoch"], sort=False)[["seconds", "full_train_loss", "test_accuracy"]]
    .mean()
    .reset_index()
)
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for method, run in mean.groupby("method", sort=False):
    axes[0].plot(run["epoch"], run["full_train_loss"], marker=".", label=method)
    axes[1].plot(run["seconds"], run["full_train_loss"], marker=".", label=method)
    axes[2].plot(run["seconds"], 100 * run["test_accuracy"], marker=".", label=method)
axes[0].set(xlabel="epochs", ylabel="full training loss", yscale="log")
axes[1].set(xlabel="training seconds", ylabel="full training loss", yscale="log")
axes[2].set(xlabel="training seconds", ylabel="held-out accuracy (%)")
axes[0].legend()
fig.tight_layout()

# %%
# What the recorded run says is summarised in ``summary.md`` next to the CSV
# files, with the verdicts "within noise" (a median difference smaller than the
# seeds' spread) and "too short to time"; :doc:`/benchmarks` records every run
# of the command, and :ref:`choosing` says where RAIS pays and where it does not.
