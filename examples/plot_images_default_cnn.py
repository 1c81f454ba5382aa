"""
Images with the default convolutional network
=============================================

Inputs shaped ``(n, H, W)`` or ``(n, C, H, W)`` get a compact VGG-style CNN
when ``module=None``: three 3x3 convolution blocks with (weighted) batch
normalisation, a 2x2 max-pool after each of the first two, the feature maps
flattened into the dense head given by ``hidden_layer_sizes``
(:func:`~sk_reweight.default_module`). Here on
scikit-learn's 8x8 digits as images
(:func:`~sk_reweight.datasets.load_digits_images`, bundled), trained by ERM
and by RGD with the same seed.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.datasets import load_digits_images

digits = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=0
)
print(X_train.shape, X_train.dtype)

shared = dict(max_epochs=15, n_iter_no_change=None, batch_size=64, random_state=0)
erm = ERMClassifier(**shared).fit(X_train, y_train)
rgd = RGDClassifier(tau=1.0, **shared).fit(X_train, y_train)
for name, model in [("ERM", erm), ("RGD", rgd)]:
    print(f"{name}: test accuracy {model.score(X_test, y_test):.4f}")

# %%
# The network
# -----------
# ``input_shape_`` is the shape of one example as the network sees it (a
# channel axis was added to the ``(n, 8, 8)`` input) and ``net_.module_`` the
# trained torch module.
print(rgd.input_shape_)
print(rgd.net_.module_)

# %%
# Errors
# ------
# The confusion matrix of RGD on the held-out images, and the misclassified
# ones with their label and RGD's prediction.
predicted = rgd.predict(X_test)
wrong = np.flatnonzero(predicted != y_test)
fig = plt.figure(figsize=(11, 4.5))
grid = fig.add_gridspec(2, 6)
ConfusionMatrixDisplay.from_predictions(
    y_test, predicted, ax=fig.add_subplot(grid[:, :3]), colorbar=False
)
for position, index in enumerate(wrong[:6]):
    axis = fig.add_subplot(grid[position // 3, 3 + position % 3])
    axis.imshow(X_test[index], cmap="gray_r")
    axis.set_title(f"label {y_test[index]}, predicted {predicted[index]}", fontsize=9)
    axis.axis("off")
fig.tight_layout()

# %%
# Your own network replaces the default by ``module=``: a
# :class:`torch.nn.Module` instance, or a callable
# ``module(input_shape, n_classes)`` (see the user guide's page on custom
# modules).
