"""
RGD's weights during training
=============================

Trains ERM and RGD on scikit-learn's digits (8x8 images, with the default
CNN), with the same seed, and plots per epoch the training loss of both
and RGD's weight statistics from ``history_``: as the network learns, most
examples become easy and their weights fall towards 1, while the hardest
examples keep the cap ``exp(tau / (tau + 1))``.
"""

# %%
import math

import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.datasets import load_digits_images

digits = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.25, random_state=0
)

# %%
# The same network, optimizer, budget and seed for both: only the weighting differs.
# n_iter_no_change=None: both train all 20 epochs, so that their curves have the same length.
shared = {
    "max_epochs": 20,
    "n_iter_no_change": None,
    "batch_size": 64,
    "random_state": 0,
    "device": "cpu",
}
tau = 1.0
erm = ERMClassifier(**shared).fit(X_train, y_train)
rgd = RGDClassifier(tau=tau, verbose=1, **shared).fit(X_train, y_train)
print(f"test accuracy: ERM {erm.score(X_test, y_test):.4f}, RGD {rgd.score(X_test, y_test):.4f}")

# %%
# Reading ``history_``
# --------------------
# ``verbose=1`` printed the table above during training. ``history_`` is a
# :class:`skorch.History`, a list of one dict per epoch that can be sliced by
# epoch and key: the keys of the last epoch, then three columns of the last
# three epochs.
print(sorted(rgd.history_[-1]))
rgd.history_[-3:, ("epoch", "train_loss", "rgd_weight_mean")]

# %%
# RGD's weights over training
# ---------------------------
epochs = range(1, rgd.n_iter_ + 1)
fig, (loss_axis, weight_axis) = plt.subplots(1, 2, figsize=(10, 4))
loss_axis.plot(epochs, erm.loss_curve_, label="ERM")
loss_axis.plot(epochs, rgd.loss_curve_, label=f"RGD (tau={tau})")
loss_axis.set(xlabel="epoch", ylabel="training cross-entropy", yscale="log")
loss_axis.legend()
for statistic in ("min", "mean", "max"):
    weight_axis.plot(epochs, rgd.history_[:, f"rgd_weight_{statistic}"], label=statistic)
weight_axis.axhline(math.exp(tau / (tau + 1)), color="grey", linestyle=":", label="cap")
weight_axis.set(xlabel="epoch", ylabel="RGD weight per example")
weight_axis.legend()
fig.tight_layout()
