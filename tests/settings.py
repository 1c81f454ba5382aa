"""Estimator settings shared by the test modules."""

FAST = {"max_epochs": 15, "n_iter_no_change": None, "device": "cpu", "random_state": 0}
"""Few epochs on the CPU with a fixed seed, every one of them run: quick, reproducible fits
(the stopping rule of ``n_iter_no_change`` would warn that 15 epochs may be too few)."""
