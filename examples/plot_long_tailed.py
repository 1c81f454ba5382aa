"""
A long-tailed data set: Fashion-MNIST-LT
========================================

Fashion-MNIST-LT with imbalance ratio 100
(:func:`~sk_reweight.datasets.load_fashion_mnist_lt100`) keeps from 6,000
training images of class 0 down to 60 of class 9, following the exponential
profile of Cao et al. (2019) that defines CIFAR-10-LT; the test set is the
balanced official one. The imbalance is *induced* by subsampling: report it
as such. The RGD paper reports +2.5 % accuracy over ERM on CIFAR-10-LT; here
ERM, RGD, and both with ``class_weight='balanced'`` train the same MLP on the
flattened images, with the same seed.

The source (Debian's ``dataset-fashion-mnist``, 31 MB) is downloaded once
and read from the cache afterwards.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, recall_score

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.datasets import load_fashion_mnist_lt100

fashion = load_fashion_mnist_lt100()
X_train = fashion.data.reshape(len(fashion.data), -1)
X_test = fashion.data_test.reshape(len(fashion.data_test), -1)
y_train, y_test = fashion.target, fashion.target_test
counts = np.bincount(y_train)
print("training images per class:", counts.tolist())
print("test images per class:", np.bincount(y_test).tolist())

# %%
# Four ways to train the same network
# -----------------------------------
shared = dict(
    hidden_layer_sizes=(256,), max_epochs=8, n_iter_no_change=None, batch_size=128, random_state=0
)
models = {
    "ERM": ERMClassifier(**shared),
    "RGD": RGDClassifier(tau=1.0, **shared),
    "ERM, balanced": ERMClassifier(class_weight="balanced", **shared),
    "RGD, balanced": RGDClassifier(tau=1.0, class_weight="balanced", **shared),
}
recalls = {}
for name, model in models.items():
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    recalls[name] = recall_score(y_test, predicted, average=None)
    print(
        f"{name:>14}: accuracy {model.score(X_test, y_test):.4f}, "
        f"balanced accuracy {balanced_accuracy_score(y_test, predicted):.4f}"
    )

# %%
# Recall per class
# ----------------
# On the balanced test set, recall falls with the number of training images.
# RGD up-weights high-loss examples, among which the rare classes' are many,
# but by at most :math:`e^{\tau/(\tau+1)} \approx 1.65` at ``tau=1``;
# ``class_weight='balanced'`` weights class 9 a hundred times class 0.
frame = pd.DataFrame(recalls, index=pd.Index(range(10), name="class"))
fig, (count_axis, recall_axis) = plt.subplots(
    2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
)
count_axis.bar(frame.index, counts, color="grey")
count_axis.set(yscale="log", ylabel="training images")
width = 0.2
for offset, name in enumerate(frame.columns):
    recall_axis.bar(frame.index + (offset - 1.5) * width, frame[name], width, label=name)
recall_axis.set(xlabel="class", ylabel="test recall", xticks=frame.index)
recall_axis.legend(ncol=2)
fig.tight_layout()

# %%
# The measured suite (:doc:`/benchmarks`) found RGD's balanced test accuracy
# on this data set within noise of ERM's (+0.07 pp), with the former default
# network ``SmallCNN`` and an untuned ``tau``; class weighting is the stronger
# lever against an induced imbalance.
