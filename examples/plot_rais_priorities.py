"""
Which examples RAIS prioritises
===============================

Trains RAISClassifier on scikit-learn's digits (8x8 images, default CNN with
weighted batch normalisation) and shows, as in Figure 1 of the RAIS paper,
the training images it samples least and most often at the end of training
(``sampling_probabilities()``), with their label and the network's most likely
other class. Below, how uneven the distribution is, and the effective sample
size and gain ratio per epoch from ``history_``.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from sk_reweight import RAISClassifier
from sk_reweight.datasets import load_digits_images

digits = load_digits_images()
images, y = digits.data[:, np.newaxis], digits.target
rais = RAISClassifier(lr=0.05, lr_schedule="cosine", max_epochs=15, random_state=0)
rais.fit(images, y)

probabilities = rais.sampling_probabilities()
order = np.argsort(probabilities)
proba = rais.predict_proba(images)
proba[np.arange(len(y)), y] = -1.0
runner_up = proba.argmax(axis=1)

# %%
# Rarely sampled and prioritised images
# -------------------------------------
# As in the paper's Figure 1: each image's label, in brackets the class the
# network finds most likely after it, and the probability of being drawn next
# (uniform sampling would give every image the same ``1/n``).
figure, axes = plt.subplots(2, 8, figsize=(12, 4.2))
for row, (title, indices) in enumerate(
    [("rarely sampled", order[:8]), ("prioritised", order[::-1][:8])]
):
    for axis, index in zip(axes[row], indices, strict=True):
        axis.imshow(images[index, 0], cmap="gray_r")
        label = f"{y[index]} ({runner_up[index]})\np={probabilities[index]:.1e}"
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    axes[row, 0].text(-0.3, 0.5, title, transform=axes[row, 0].transAxes, ha="right", va="center")
figure.suptitle(f"RAIS on digits: uniform p would be {1 / len(y):.1e}")
figure.tight_layout()

# %%
# How uneven the distribution is
# ------------------------------
# The sampling probabilities span orders of magnitude; ``history_`` records
# the effective sample size of the distribution (1 for uniform sampling) and
# the gain ratio per epoch. On 1,797 small images the gain stays modest: RAIS
# pays off on larger data sets (see the RAIS against uniform SGD example).
history = rais.history_
epochs = history[:, "epoch"]
figure, (histogram, ess_axis, gain_axis) = plt.subplots(1, 3, figsize=(13, 3.8))
histogram.hist(np.log10(probabilities * len(y)), bins=40)
histogram.set(xlabel="log10(n p): 0 is uniform", ylabel="training images")
ess_axis.plot(epochs, history[:, "effective_sample_size"], marker="o")
ess_axis.set(xlabel="epoch", ylabel="effective sample size / n")
gain_axis.plot(epochs, history[:, "gain_ratio"], marker="o")
gain_axis.set(xlabel="epoch", ylabel="mean gain ratio")
figure.tight_layout()
print(f"training accuracy {rais.score(images, y):.3f}")
