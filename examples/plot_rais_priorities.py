"""
Which examples RAIS prioritises
===============================

Trains RAISClassifier on scikit-learn's digits (8x8 images, default small CNN
with weighted batch normalisation) and shows, as in Figure 1 of the RAIS paper,
the training images it samples least and most often at the end of training
(``sampling_probabilities()``), with their label and the network's most likely
other class. Below, the gain ratio and epochs equivalent per epoch from
``history_``.

About 20 s on 2 CPU cores.
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
figure = plt.figure(figsize=(12, 7))
grid = figure.add_gridspec(3, 8)
for column, (title, index) in enumerate(
    [("rare", i) for i in order[:4]] + [("priority", i) for i in order[-4:]]
):
    axis = figure.add_subplot(grid[0, column])
    axis.imshow(images[index, 0], cmap="gray_r")
    axis.set_title(
        f"{title}\n{y[index]} ({runner_up[index]})\np={probabilities[index]:.1e}", fontsize=9
    )
    axis.axis("off")
history = rais.history_
epochs = history[:, "epoch"]
axis = figure.add_subplot(grid[1:, :4])
axis.plot(epochs, history[:, "gain_ratio"], marker="o")
axis.set(xlabel="epoch", ylabel="mean gain ratio")
axis = figure.add_subplot(grid[1:, 4:])
axis.plot(epochs, history[:, "epochs_equivalent"], marker="o", label="RAIS")
axis.plot(epochs, epochs, linestyle="--", label="uniform SGD")
axis.set(xlabel="epoch", ylabel="epochs equivalent")
axis.legend()
figure.suptitle(f"RAIS on digits: uniform p would be {1 / len(y):.1e}")
figure.tight_layout()
print(f"training accuracy {rais.score(images, y):.3f}")
