"""Record instances of (PT) from real RAIS training runs, as fixtures of ``test_pt_solver.py``.

Fits ``RAISClassifier`` on scikit-learn's digits and on a ``make_classification``
dataset, capturing the arguments of every solve of (PT) (by wrapping the
policy's ``solve_uncertainty_set``), and writes the first solve and the last
two consecutive ones of each run to ``pt_<run>_<solve>.npz`` next to this
script: ``features``, ``norms``, ``weights`` and ``mean_features``, in float32
(the precision in which training computes them, so nothing is lost).

    .venv/bin/python tests/data/record_pt_instances.py
"""

from __future__ import annotations

import threading
from pathlib import Path
from unittest import mock

import numpy as np
from sklearn.datasets import load_digits, make_classification

from sk_reweight import RAISClassifier
from sk_reweight._rais import _policy

HERE = Path(__file__).parent
ARGUMENTS = ("features", "norms", "weights", "mean_features")


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Name -> (X, y, history_size)."""
    X_digits, y_digits = load_digits(return_X_y=True)
    X_synthetic, y_synthetic = make_classification(
        n_samples=3000, n_features=20, n_informative=8, n_classes=4, flip_y=0.05, random_state=0
    )
    return {
        "digits": (X_digits / 16.0, y_digits, 1500),
        "classification": (X_synthetic, y_synthetic, 2000),
    }


def record_solves(X: np.ndarray, y: np.ndarray, history_size: int) -> list[dict]:
    """The arguments of every (PT) solve while RAIS trains on ``(X, y)``."""
    solves: list[dict] = []
    lock = threading.Lock()
    solve = _policy.solve_uncertainty_set

    def capture(*args, **kwargs):
        with lock:
            solves.append(dict(zip(ARGUMENTS, (np.array(a) for a in args[:4]), strict=True)))
        return solve(*args, **kwargs)

    model = RAISClassifier(history_size=history_size, max_epochs=30, random_state=0, device="cpu")
    with mock.patch.object(_policy, "solve_uncertainty_set", wraps=capture):
        model.fit(X, y)
    return solves


def main() -> None:
    for name, (X, y, history_size) in datasets().items():
        solves = record_solves(X, y, history_size)
        print(f"{name}: {len(solves)} solves of {history_size} records")
        for index in (0, len(solves) - 2, len(solves) - 1):
            arrays = {key: value.astype(np.float32) for key, value in solves[index].items()}
            for key, value in arrays.items():
                np.testing.assert_array_equal(value, solves[index][key])  # float32 loses nothing
            path = HERE / f"pt_{name}_{index}.npz"
            np.savez_compressed(path, **arrays)
            print(f"  {path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
