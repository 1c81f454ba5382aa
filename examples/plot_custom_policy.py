"""
Writing a training method: the focal loss as a policy
=====================================================

A training method of this package is a :class:`~sk_reweight.MinibatchPolicy`:
which examples form each minibatch, and how each example's loss is weighted.
:class:`~sk_reweight.ReweightingClassifier` trains a network under any policy
with everything the package's classifiers have (the scikit-learn API, the
stopping rule, sample and class weights, callbacks, checkpoints, devices,
saving). This example writes two methods in a few lines each:

- the **focal loss** of Lin et al. (2017), a *reweighting* policy: each
  example's cross-entropy times :math:`(1 - p_y)^\\gamma`, :math:`p_y` the
  probability the network gives its class, so that well-classified examples
  count less;
- a **sampling** policy that trains each epoch on the examples misclassified
  when last seen, plus a random share of the others.

Both are compared with :class:`~sk_reweight.ERMClassifier` on a long-tailed
version of scikit-learn's digits (bundled, no download). The
:ref:`custom_policies` page of the user guide describes the protocol in full.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from sk_reweight import ERMClassifier, MinibatchPolicy, ReweightingClassifier
from sk_reweight.datasets import make_long_tailed

# %%
# The focal loss in one method
# ----------------------------
# A policy's parameters are the arguments of its ``__init__``, stored under
# the same names, as a scikit-learn estimator's. :meth:`~sk_reweight.MinibatchPolicy.loss_weights`
# receives a :class:`~sk_reweight.TrainingStep` after each forward pass and
# returns one multiplier per example: ``step.losses`` are the detached
# per-example cross-entropies, so :math:`p_y = e^{-\ell}`. The rest of the
# class records the mean weight of each epoch in ``history_``: what a fit
# accumulates is created in :meth:`~sk_reweight.MinibatchPolicy.reset`, and
# the sum stays on the device until the epoch ends.
#
# The factor is computed from detached losses, so it scales each example's
# gradient without being differentiated itself (as RGD's weights): Lin et
# al. also differentiate through it. For their exact gradient, compute
# :math:`p_y` from ``step.output``, the network's output, which is attached to
# the graph.


class FocalPolicy(MinibatchPolicy):
    """Each example's cross-entropy times ``(1 - p_y) ** gamma`` (Lin et al., 2017)."""

    def __init__(self, gamma=2.0):
        self.gamma = gamma

    def loss_weights(self, step):
        weights = (1 - torch.exp(-step.losses)) ** self.gamma
        self.weight_sum += weights.sum()
        self.weight_count += len(weights)
        return weights

    def reset(self, n_samples, generator, device):
        super().reset(n_samples, generator, device)
        self.weight_sum, self.weight_count = torch.zeros((), device=device), 0

    def epoch_statistics(self):
        mean = self.weight_sum.item() / self.weight_count
        self.weight_sum.zero_()
        self.weight_count = 0
        return {"focal_weight_mean": mean}


# %%
# Long-tailed digits
# ------------------
# Half of the digits, subsampled so that the classes shrink exponentially
# from 87 training images of digit 0 down to 4 of digit 9 (an *induced*
# imbalance of 20, :func:`~sk_reweight.datasets.make_long_tailed`); the
# other half, balanced, is the test set.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.5, stratify=y, random_state=0
)
X_train, y_train = make_long_tailed(X_train, y_train, imbalance_ratio=20, random_state=0)
print("training images per class:", np.bincount(y_train).tolist())

# %%
# Four ways to train the same network, three seeds each
# -----------------------------------------------------
# The same MLP, optimizer (Adam), budget (40 epochs, all run) and seeds;
# only the weighting differs. ``class_weight='balanced'`` weights each
# class by the inverse of its frequency; the policy's weights multiply it.
shared = dict(hidden_layer_sizes=(64,), max_epochs=40, n_iter_no_change=None, batch_size=32)
methods = {
    "ERM": lambda seed: ERMClassifier(random_state=seed, **shared),
    "focal": lambda seed: ReweightingClassifier(FocalPolicy(2.0), random_state=seed, **shared),
    "ERM, balanced": lambda seed: ERMClassifier(
        class_weight="balanced", random_state=seed, **shared
    ),
    "focal, balanced": lambda seed: ReweightingClassifier(
        FocalPolicy(2.0), class_weight="balanced", random_state=seed, **shared
    ),
}
recalls, scores, focal_models = {}, {}, []
for name, make in methods.items():
    per_seed = []
    for seed in range(3):
        model = make(seed).fit(X_train, y_train)
        predicted = model.predict(X_test)
        per_seed.append(recall_score(y_test, predicted, average=None))
        scores.setdefault(name, []).append(balanced_accuracy_score(y_test, predicted))
        if name == "focal":
            focal_models.append(model)
    recalls[name] = np.mean(per_seed, axis=0)
    print(
        f"{name:>15}: balanced accuracy {np.mean(scores[name]):.3f} "
        f"(seeds: {', '.join(f'{score:.3f}' for score in scores[name])})"
    )

# %%
# ``history_`` holds the policy's statistics beside the engine's own columns:
# the mean focal weight of the last three epochs of the first seed's fit.
focal_models[0].history_[-3:, ("epoch", "train_loss", "focal_weight_mean")]

# %%
# Recall per class, and the focal weight during training
# ------------------------------------------------------
frame = pd.DataFrame(recalls, index=pd.Index(range(10), name="class"))
fig, (recall_axis, weight_axis) = plt.subplots(
    1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]}
)
width = 0.2
for offset, name in enumerate(frame.columns):
    recall_axis.bar(frame.index + (offset - 1.5) * width, frame[name], width, label=name)
recall_axis.set(
    xlabel="class (training images fall from 87 to 4)",
    ylabel="test recall, mean of 3 seeds",
    xticks=frame.index,
)
recall_axis.legend(ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
for seed, model in enumerate(focal_models):
    weight_axis.plot(
        range(1, model.n_iter_ + 1), model.history_[:, "focal_weight_mean"], label=f"seed {seed}"
    )
weight_axis.set(xlabel="epoch", ylabel="mean focal weight (gamma=2)", ylim=(0, 1))
weight_axis.legend()
fig.tight_layout()

# %%
# Recall falls with the number of training images under every method. The
# focal loss raises the rarest classes' recall over ERM, and its balanced
# accuracy by a few points on every seed; ``class_weight='balanced'``, which
# weights digit 9 about 20 times digit 0, raises it more than twice as much,
# and the focal loss adds nothing on top of it. The mean focal weight falls
# from about 0.8 to about 0.1 as the network fits the training set: the
# well-fitted examples count less and less. One split of one small data
# set: compare methods with repeated cross-validation (as :doc:`/benchmarks`
# does) before trusting a difference.

# %%
# Tuning gamma like any other parameter
# -------------------------------------
# The policy's parameters are nested parameters of the classifier
# (``policy__gamma``), so :class:`~sklearn.model_selection.GridSearchCV`
# tunes them, here on balanced accuracy with 3 stratified folds of the
# training set. ``gamma=0`` gives every example the weight 1: it is ERM.
search = GridSearchCV(
    ReweightingClassifier(FocalPolicy(), random_state=0, **shared),
    {"policy__gamma": [0.0, 0.5, 1.0, 2.0, 5.0]},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
    scoring="balanced_accuracy",
).fit(X_train, y_train)
results = pd.DataFrame(search.cv_results_)
print(results[["param_policy__gamma", "mean_test_score", "std_test_score"]].to_string(index=False))
print("best:", search.best_estimator_.policy)

# %%
# The cross-validated score grows a little with ``gamma``, but with 4 to 8
# examples of the rarest classes split into 3 folds, the folds' spread
# (``std_test_score``) is as large as the differences (two values of
# ``gamma`` may even make the same predictions on every test fold): the
# search picks a value, the data say little about it.

# %%
# A sampling policy: train on the mistakes
# ----------------------------------------
# The other kind of hook chooses the examples. This policy trains each epoch
# on the examples that were misclassified when last seen, plus a random
# ``share`` of the others (the first epoch on all of them), and records which
# are misclassified from each step's ``step.output``. Its epochs have fewer
# steps than ERM's, so it says what an epoch is: :attr:`~sk_reweight.MinibatchPolicy.progress`
# counts epochs, the fraction done of the current one included, so that the
# learning-rate schedule and ``max_epochs`` run on epochs. Every random draw
# comes from the fit's seeded ``generator``, which makes the fit
# reproducible. ``state_dict`` and ``load_state_dict`` let a
# :class:`~sk_reweight.TrainingCheckpoint` resume it exactly, and
# ``end_training`` drops the per-example record: a fitted classifier keeps no
# training data.


class MistakesPolicy(MinibatchPolicy):
    """Each epoch: the examples misclassified when last seen, and a random ``share`` of the
    others."""

    def __init__(self, share=0.2):
        self.share = share

    def reset(self, n_samples, generator, device):
        super().reset(n_samples, generator, device)
        self.mistaken = torch.ones(n_samples, dtype=torch.bool, device=device)
        self.epochs = 0.0
        self.trained_fraction = 1.0

    @property
    def progress(self):
        return self.epochs

    def epoch_batches(self, batch_size):
        drawn = torch.rand(self.n_samples, generator=self.generator).to(self.device)
        chosen = torch.nonzero(self.mistaken | (drawn < self.share)).squeeze(1)
        order = chosen[torch.randperm(len(chosen), generator=self.generator).to(self.device)]
        self.trained_fraction = len(chosen) / self.n_samples
        first = self.epochs
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
            self.epochs = first + min(start + batch_size, len(order)) / len(order)

    def loss_weights(self, step):
        self.mistaken[step.indices] = step.output.argmax(dim=1) != step.targets
        return None  # unit weights

    def epoch_statistics(self):
        return {"trained_fraction": self.trained_fraction}

    def state_dict(self):
        return {**super().state_dict(), "epochs": self.epochs, "mistaken": self.mistaken.cpu()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.epochs = state["epochs"]
        self.mistaken.copy_(state["mistaken"])

    def end_training(self):
        super().end_training()
        self.mistaken = None


# %%
# Against ERM for the same 40 epochs, and against ERM given as many
# training examples (in total over its epochs) as the policy drew:
mistakes = ReweightingClassifier(MistakesPolicy(share=0.2), random_state=0, **shared)
mistakes.fit(X_train, y_train)
drawn_epochs = sum(mistakes.history_[:, "trained_fraction"])
erm_40 = ERMClassifier(random_state=0, **shared).fit(X_train, y_train)
erm_same_draws = ERMClassifier(
    random_state=0, **{**shared, "max_epochs": round(drawn_epochs)}
).fit(X_train, y_train)
for name, model, epochs in [
    ("mistakes, 40 epochs", mistakes, drawn_epochs),
    ("ERM, 40 epochs", erm_40, 40),
    (f"ERM, {round(drawn_epochs)} epochs", erm_same_draws, round(drawn_epochs)),
]:
    score = balanced_accuracy_score(y_test, model.predict(X_test))
    print(f"{name:>20}: {epochs:5.1f} epochs of examples drawn, balanced accuracy {score:.3f}")
print(
    "share of the training set per epoch:", np.round(mistakes.history_[:, "trained_fraction"], 2)
)

# %%
# The share of the training set trained on falls from all of it to about
# 0.3 (the random 0.2 and the examples still misclassified) within ten
# epochs, as the network fits the examples, so the policy draws about a third
# of ERM's examples over 40 epochs, in a third of its steps. It is behind ERM
# at equal epochs, and ahead of ERM given as many examples: cheaper epochs,
# not better ones. Whether that is worth it is a question of time, to be
# measured on a clock and on held-out data, as :doc:`/benchmarks` does for the
# package's methods; the package's own policy of this kind, which reweights
# the kept examples so that the gradient stays unbiased, is
# :class:`~sk_reweight.InfoBatchClassifier`.
