"""What a running fit makes known to the code it calls: its estimator, data and generators.

``BaseReweightingClassifier._fit`` enters :func:`fitting` around the
training loop; :class:`~sk_reweight.TrainingCheckpoint` reads the estimator and
the data to fingerprint its checkpoint, and the default networks' dropout
draws from the fit's own generator. The record is per thread, so that fits
running in parallel threads never see each other's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray


@dataclass
class RunningFit:
    """One fit in progress.

    Parameters
    ----------
    estimator : BaseReweightingClassifier
        The classifier being fitted (its parameters and ``classes_``).
    X, y, sample_weight : ndarray
        The validated training inputs, encoded labels and sample weights
        (times class weights), before the validation split.
    warm : bool
        Whether the fit continues the fitted network (``warm_start`` or
        ``partial_fit``) instead of starting from fresh weights.
    seed : int
        The fit's seed, from ``random_state``.
    """

    estimator: Any
    X: NDArray
    y: NDArray
    sample_weight: NDArray
    warm: bool
    seed: int
    _generators: dict[torch.device, torch.Generator] = field(default_factory=dict, repr=False)

    def generator(self, device: torch.device) -> torch.Generator:
        """The fit's generator of random numbers for tensors on ``device`` (dropout masks).

        One per device, seeded from the fit's seed (a stream of its own, not
        the minibatch policy's), created at first use.
        """
        if device not in self._generators:
            seed = int(np.random.SeedSequence([self.seed, 1]).generate_state(1)[0])
            self._generators[device] = torch.Generator(device).manual_seed(seed)
        return self._generators[device]

    def generator_states(self) -> dict[str, torch.Tensor]:
        """The states of the generators used so far, by device (for a checkpoint)."""
        return {
            str(device): generator.get_state() for device, generator in self._generators.items()
        }

    def restore_generators(self, states: dict[str, torch.Tensor]) -> None:
        """Continue the generators from :meth:`generator_states` (a resumed fit)."""
        for device, state in states.items():
            self.generator(torch.device(device)).set_state(state)


_running = threading.local()

_GLOBAL_GENERATOR = threading.RLock()
"""Held while a fit seeds torch's global generator to draw a network's initial weights."""


def owns_global_generator() -> bool:
    """Whether a fit in this thread may seed torch's global generators for its whole duration.

    Only in the main thread: fits running in other threads at the same time
    would draw from, reseed and restore the one global generator in turn.
    Elsewhere a fit touches it only in :func:`initial_weights_drawn`.
    """
    return threading.current_thread() is threading.main_thread()


@contextmanager
def initial_weights_drawn() -> Iterator[None]:
    """Draw a network's initial weights in the block: seeded, alone, and leaving no trace.

    torch's modules draw their initial weights from torch's global CPU
    generator. In the block it is seeded with the running fit's seed (left
    as it is outside a fit), no other thread's block runs (a process-wide
    lock), and its state is restored afterwards: the same ``random_state``
    gives the same initial weights in any thread, and the caller's global
    random state is unchanged.
    """
    fit = running_fit()
    with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
        if fit is not None:
            torch.random.default_generator.manual_seed(fit.seed)
        yield


@contextmanager
def fitting(fit: RunningFit) -> Iterator[RunningFit]:
    """Make ``fit`` the running fit of this thread inside the block."""
    previous = getattr(_running, "fit", None)
    _running.fit = fit
    try:
        yield fit
    finally:
        _running.fit = previous


def running_fit() -> RunningFit | None:
    """The fit running in this thread, or ``None`` outside a classifier's ``fit``."""
    return getattr(_running, "fit", None)
