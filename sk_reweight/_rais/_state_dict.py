"""Checks of the state dictionaries that RAIS's bookkeeping classes write into a checkpoint.

Each class (``NormHistory``, ``RecentRecords``, ``GainRatioEstimator``,
``SamplingState``, ``UncertaintySet``, ``BackgroundSolves``,
``SamplingGovernor``) says in its ``state_dict`` which keys it writes; its
``load_state_dict`` (or ``from_state_dict``) reads them back through these
checks, so that a state of another shape (another training set, another
``history_size``) or of another version is refused with one clear
:class:`ValueError` instead of failing later, or silently, in a kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from torch import Tensor

ADVICE = "Delete the checkpoint, or pass another dirname, to train this fit from scratch."


def checked_keys(state: Any, keys: Collection[str], owner: str) -> Mapping[str, Any]:
    """``state`` if it is a mapping with exactly ``keys``; else a :class:`ValueError`."""
    if not isinstance(state, Mapping) or set(state) != set(keys):
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(
            f"the checkpoint's {owner} state holds {found}, not the keys {sorted(keys)} that "
            f"this version of sk_reweight writes. {ADVICE}"
        )
    return state


def restored_tensor(value: Any, like: Tensor, name: str) -> Tensor:
    """``value`` on the device of ``like``, if it has its shape and dtype; else a ValueError.

    ``like`` is the tensor of the fit being resumed (its shape follows from
    the training set and the parameters).
    """
    if not isinstance(value, Tensor):
        raise ValueError(f"the checkpoint's {name} is not a tensor. {ADVICE}")
    if value.shape != like.shape or value.dtype != like.dtype:
        raise ValueError(
            f"the checkpoint's {name} has shape {tuple(value.shape)} and dtype {value.dtype}; "
            f"this fit's has shape {tuple(like.shape)} and dtype {like.dtype}: the checkpoint "
            f"was written for another training set or other parameters. {ADVICE}"
        )
    return value.to(like.device)
