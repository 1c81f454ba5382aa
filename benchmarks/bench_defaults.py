"""The README's Adult example with the default stopping rule, against scikit-learn's MLPClassifier.

Every model is ``make_pipeline(adult.make_preprocessor(), classifier)`` fitted on
Adult's 32,561 training rows and scored on its 16,281 test rows, as the
README does, for ``--seeds`` seeds (``random_state`` of the classifier). The
classifiers, all with their defaults otherwise (an MLP of 100 units, Adam at
lr 1e-3; ``MLPClassifier`` minibatches of 200, ours of 128):

- ``ERM`` / ``RGD``: the defaults (training loss not improving by ``tol=1e-4``
  for ``n_iter_no_change=10`` epochs stops, ceiling ``max_epochs=100``);
- ``MLP``: ``MLPClassifier()`` (the same rule, ceiling ``max_iter=200``);
- with ``--early-stopping``, the three again with ``early_stopping=True``;
- with ``--every-epoch``, ``ERM`` and ``RGD`` with ``n_iter_no_change=None``
  (all 100 epochs: the defaults before the stopping rule) for the first seed.

Fits of one seed run in turn in this process (one torch and BLAS thread), the
order rotated by seed. The script prints a Markdown table of fit time and test
accuracy per model (mean and standard deviation over seeds) and the epochs
each fit trained.

    OMP_NUM_THREADS=1 python benchmarks/bench_defaults.py --seeds 3 --early-stopping
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline

from sk_reweight import ERMClassifier, RGDClassifier
from sk_reweight.datasets import load_dataset


def classifiers(seed: int, early_stopping: bool, every_epoch: bool) -> dict[str, BaseEstimator]:
    """The classifiers of one seed, by name."""
    models: dict[str, BaseEstimator] = {
        "ERM": ERMClassifier(random_state=seed),
        "RGD": RGDClassifier(random_state=seed),
        "MLP": MLPClassifier(random_state=seed),
    }
    if early_stopping:
        models["ERM, early_stopping"] = ERMClassifier(random_state=seed, early_stopping=True)
        models["RGD, early_stopping"] = RGDClassifier(random_state=seed, early_stopping=True)
        models["MLP, early_stopping"] = MLPClassifier(random_state=seed, early_stopping=True)
    if every_epoch:
        models["ERM, every epoch"] = ERMClassifier(random_state=seed, n_iter_no_change=None)
        models["RGD, every epoch"] = RGDClassifier(random_state=seed, n_iter_no_change=None)
    return models


def epochs_trained(classifier: BaseEstimator) -> int:
    """Epochs of a fitted classifier (MLPClassifier's iterations)."""
    return int(classifier.n_iter_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--early-stopping", action="store_true")
    parser.add_argument("--every-epoch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    adult = load_dataset("adult")
    rows = []
    for seed in range(args.seeds):
        models = classifiers(seed, args.early_stopping, args.every_epoch and seed == 0)
        names = list(models)
        names = names[seed % len(names) :] + names[: seed % len(names)]
        for name in names:
            model = make_pipeline(adult.make_preprocessor(), models[name])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                start = time.perf_counter()
                model.fit(adult.data, adult.target)
                seconds = time.perf_counter() - start
            accuracy = model.score(adult.data_test, adult.target_test)
            warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "fit_s": seconds,
                    "accuracy": accuracy,
                    "epochs": epochs_trained(model[-1]),
                    "warned": warned,
                }
            )
            print(rows[-1], flush=True)
    results = pd.DataFrame(rows)
    table = results.groupby("model", sort=False).agg(
        fit_s_mean=("fit_s", "mean"),
        fit_s_std=("fit_s", "std"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        epochs=("epochs", lambda e: " ".join(str(v) for v in e)),
        warned=("warned", "sum"),
    )
    print()
    print("| model | fit s | test accuracy | epochs (per seed) | ConvergenceWarning |")
    print("|---|---|---|---|---|")
    for name, row in table.iterrows():
        print(
            f"| {name} | {row.fit_s_mean:.1f} ± {np.nan_to_num(row.fit_s_std):.1f} | "
            f"{row.accuracy_mean:.4f} ± {np.nan_to_num(row.accuracy_std):.4f} | {row.epochs} | "
            f"{row.warned} |"
        )


if __name__ == "__main__":
    main()
