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
def initial_weights_drawn(seed: int | None = None) -> Iterator[None]:
    """Draw a network's initial weights in the block: seeded, alone, and leaving no trace.

    torch's modules draw their initial weights from torch's global CPU
    generator. In the block it is seeded with the fit's ``seed`` (left as it
    is when ``None``: weights about to be replaced by saved ones), no other
    thread's block runs (a process-wide lock), and its state is restored
    afterwards: the same ``random_state`` gives the same initial weights in
    any thread, and the caller's global random state is unchanged.
    """
    with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
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


@contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the duration of a fit, then restore them.

    In the main thread only. The policy's and the augmentation's generators
    are the fit's own (:class:`~sk_reweight._engine.ReweightingNet` seeds
    them), the initial weights are drawn in :func:`initial_weights_drawn`
    and the default networks' dropout from :meth:`RunningFit.generator`; a
    user's module that draws from the global generators is reproducible in
    the main thread, the only one where a fit seeds them (elsewhere fits
    would race on them).
    """
    if not owns_global_generator():
        yield
        return
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield
