"""Learning-rate schedules as pure functions of training progress.

A schedule maps the training progress, measured in (fractional) epochs, to a
multiplier of the base learning rate. Measuring progress in epochs rather than
in optimizer steps lets the same schedule drive uniform training, where
progress is ``samples seen / n_samples``, and importance sampling, where the
RAIS paper (section 3.2) advances the schedule by *epochs equivalent*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

LRSchedule = Callable[[float], float]


def constant_schedule(epoch: float) -> float:
    """Return 1: the base learning rate throughout."""
    return 1.0


def cosine_schedule(epoch: float, total_epochs: float) -> float:
    r"""Cosine annealing from 1 to 0 over ``total_epochs``.

    .. math:: \eta(e) / \eta_0 = \tfrac12 \bigl(1 + \cos(\pi \min(e, E) / E)\bigr)

    (Loshchilov & Hutter, 2017, without restarts.)
    """
    fraction = min(max(epoch / total_epochs, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * fraction))


def step_schedule(epoch: float, total_epochs: float, gamma: float = 0.1) -> float:
    """Divide the learning rate by ``1 / gamma`` at 50 % and again at 75 % of training."""
    milestones_passed = (epoch >= 0.5 * total_epochs) + (epoch >= 0.75 * total_epochs)
    return gamma**milestones_passed


def resolve_lr_schedule(lr_schedule: str | LRSchedule | None, total_epochs: int) -> LRSchedule:
    """Turn the ``lr_schedule`` parameter of an estimator into a callable.

    Parameters
    ----------
    lr_schedule : {None, 'cosine', 'step'} or callable
        ``None`` keeps the learning rate constant; ``'cosine'`` and ``'step'``
        are :func:`cosine_schedule` and :func:`step_schedule` over
        ``total_epochs``; a callable receives the fractional epoch and returns
        the multiplier of the base learning rate.
    total_epochs : int
        The training budget the named schedules are stretched over.

    Returns
    -------
    schedule : callable
        ``schedule(epoch: float) -> float``. Picklable whenever the user's
        callable is.
    """
    if lr_schedule is None:
        return constant_schedule
    if lr_schedule == "cosine":
        return partial(cosine_schedule, total_epochs=total_epochs)
    if lr_schedule == "step":
        return partial(step_schedule, total_epochs=total_epochs)
    return lr_schedule
