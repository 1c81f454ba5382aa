"""Whether a refactoring changed what the classifiers learn: fits of two checkouts, compared.

Each checkout of ``sk_reweight`` (the one this script runs from, and a
baseline extracted elsewhere) fits the same cases in a subprocess of its own,
on one thread, with the same ``random_state``; the script prints, per case,
the SHA-256 of the fitted weights, the epochs and the final training loss of
both, and whether they are identical. The cases cover every classifier, RAIS
with step-by-step and block bookkeeping, early stopping with a cosine
schedule, the default CNN with augmentation and dropout, the stopping rule,
a warm start and ``partial_fit``. (RAIS's governor is given a fixed cost
ratio, ``uniform_fallback=1.0``: ``'timed'`` decides from wall-clock
measurements.)

    git archive BASE_COMMIT sk_reweight | tar -x -C /tmp/baseline
    python benchmarks/identity_against_checkout.py /tmp/baseline

Exit status 1 when any case differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

FITS = """
import hashlib, json, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
from sklearn.datasets import load_digits
import sk_reweight as sr

torch.set_num_threads(1)
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)
images = X.reshape(-1, 1, 8, 8)

def digest(model):
    weights = hashlib.sha256()
    for tensor in model.net_.module_.state_dict().values():
        weights.update(tensor.cpu().numpy().tobytes())
    return [weights.hexdigest()[:16], model.n_iter_, float(model.loss_curve_[-1])]

cases = {
    "ERM": (sr.ERMClassifier, {}, X),
    "RGD": (sr.RGDClassifier, {}, X),
    "InfoBatch": (sr.InfoBatchClassifier, {}, X),
    "RAIS": (sr.RAISClassifier, {"uniform_fallback": 1.0}, X),
    "RAIS, refresh 1": (
        sr.RAISClassifier, {"uniform_fallback": 1.0, "refresh_interval": 1}, X
    ),
    "RAIS, early stopping, cosine": (
        sr.RAISClassifier,
        {"uniform_fallback": 1.0, "early_stopping": True, "lr_schedule": "cosine"},
        X,
    ),
    "ERM CNN, crop, dropout, early stopping": (
        sr.ERMClassifier, {"early_stopping": True, "augmentation": "crop", "dropout": 0.2}, images
    ),
    "RGD, stopping rule": (
        sr.RGDClassifier, {"n_iter_no_change": 2, "tol": 0.05, "max_epochs": 20}, X
    ),
}
results = {}
for name, (Classifier, parameters, inputs) in cases.items():
    parameters = {"max_epochs": 4, "n_iter_no_change": None, "random_state": 0, **parameters}
    results[name] = digest(Classifier(**parameters).fit(inputs, y))
model = sr.ERMClassifier(random_state=0, warm_start=True, max_epochs=2, n_iter_no_change=None)
model.fit(X, y).set_params(lr=0.01).fit(X, y)
results["ERM, warm start"] = digest(model)
model = sr.RGDClassifier(random_state=0)
for start in range(3):
    model.partial_fit(X[start::3], y[start::3], classes=np.unique(y))
results["RGD, partial_fit x 3"] = digest(model)
print(json.dumps(results))
"""


def fits_of(package_root: Path) -> dict[str, list]:
    """The cases' digests, fitted by the ``sk_reweight`` found under ``package_root``."""
    environment = {**os.environ, "PYTHONPATH": str(package_root), "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [sys.executable, "-c", FITS],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=package_root,
    )
    return json.loads(finished.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="a folder holding the baseline sk_reweight/")
    args = parser.parse_args()
    candidate = fits_of(Path(__file__).resolve().parents[1])
    baseline = fits_of(args.baseline.resolve())
    print("| case | baseline | candidate | identical |\n|---|---|---|---|")
    for name, result in candidate.items():
        same = result == baseline[name]
        print(f"| {name} | {baseline[name]} | {result} | {'yes' if same else 'NO'} |")
    sys.exit(0 if candidate == baseline else 1)


if __name__ == "__main__":
    main()
