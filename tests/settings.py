"""Estimator settings shared by the test modules."""

FAST = {"max_epochs": 15, "device": "cpu", "random_state": 0}
"""Few epochs on the CPU with a fixed seed: quick, reproducible fits."""
