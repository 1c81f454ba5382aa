"""Shared fixtures: small real datasets bundled with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

# The suite runs in parallel workers (pytest -n 2) on 2 cores: one intra-op thread per
# worker avoids oversubscription, under which OpenMP kernels slow down 30-fold.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@pytest.fixture(scope="session")
def mixed_frame():
    """A DataFrame with numeric and categorical columns and a string target."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.lognormal(10, 1, n),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "city": rng.choice(["paris", "tokyo", "lima", "oslo"], n),
        }
    )
    score = (frame["age"] - 50) / 15 + (frame["colour"] == "red") * 1.5 - (frame["city"] == "lima")
    target = pd.Series(np.where(score + rng.normal(0, 0.3, n) > 0, "buy", "skip"), name="target")
    return frame, target
