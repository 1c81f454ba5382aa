"""TrainingCheckpoint: a skorch callback that makes a long fit resumable after a crash."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.history import History

CHECKPOINT_FORMAT = 1


def write_atomically(path: Path, content: Any) -> None:
    """``torch.save`` ``content`` to ``path`` so that ``path`` is always a complete file.

    The checkpoint is written to a temporary file in the same directory, flushed
    to the disk and renamed over ``path`` (an atomic replacement on POSIX and
    Windows): a process killed at any moment leaves the previous checkpoint or
    the new one, never a partial file.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    """JSON encoding of the NumPy scalars a history may hold."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot checkpoint a history value of type {type(value).__name__}")


class TrainingCheckpoint(Callback):
    """Checkpoint a fit every ``every`` epochs; a fit that finds a checkpoint resumes from it.

    Pass it in a classifier's ``callbacks``. At the end of every ``every``-th
    epoch it writes ``dirname/filename``, atomically (a process killed at any
    moment leaves a complete checkpoint): the network's weights, the
    optimizer's state, the history, the minibatch policy's progress (which
    drives the learning-rate schedule and the end of training) and random
    generators, the generator of the ``augmentation``, torch's global random
    state (dropout) and the state of early stopping. When ``fit`` starts and
    the file exists, training continues from it instead of from the start, and
    runs only the epochs that remain: a killed fit, run again with the same
    data and parameters, loses at most ``every`` epochs and, on the CPU, ends
    with the same network, bit for bit, as a fit that was never interrupted.
    :class:`RAISClassifier` also saves its per-example norm histories, (PT)
    records, uncertainty set, gain estimate and the (PT) solve in flight
    (waited for at the checkpoint), so that its resumed fit samples as the
    uninterrupted one would. The fitted state of other callbacks (e.g.
    :class:`~skorch.callbacks.EpochScoring`'s best score) is not saved; put
    this callback after those whose records the checkpointed history should
    hold.

    The file is read with ``torch.load(weights_only=True)``, which accepts
    tensors and plain Python values only. The checkpoint is kept when the fit
    ends: delete it (or use another ``dirname``) to train from scratch again.

    Parameters
    ----------
    dirname : str or path-like
        Directory of the checkpoint; created if missing.
    every : int >= 1, default=1
        Epochs between checkpoints.
    filename : str, default='training.pt'
        Name of the checkpoint file in ``dirname``.

    Examples
    --------
    >>> from sk_reweight import RGDClassifier, TrainingCheckpoint
    >>> model = RGDClassifier(
    ...     max_epochs=1000, random_state=0,
    ...     callbacks=[TrainingCheckpoint("checkpoints/run1", every=10)])  # doctest: +SKIP
    """

    def __init__(self, dirname: str | os.PathLike, every: int = 1, filename: str = "training.pt"):
        self.dirname = dirname
        self.every = every
        self.filename = filename

    @property
    def path(self) -> Path:
        """Where the checkpoint is written."""
        return Path(self.dirname) / self.filename

    def initialize(self) -> TrainingCheckpoint:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"every must be an integer >= 1; got {self.every!r}.")
        return self

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        if self.path.exists():
            self._resume(net, torch.load(self.path, map_location="cpu", weights_only=True))

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if len(net.history) % self.every == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, self._state(net))

    # ------------------------------------------------------------------

    def _state(self, net: Any) -> dict[str, Any]:
        devices = [net.device] if torch.device(net.device).type == "cuda" else []
        return {
            "format": CHECKPOINT_FORMAT,
            "epochs": len(net.history),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "history": json.dumps(list(net.history), default=_plain),
            "policy": net.policy.checkpoint_state(),
            "augmentation_rng": _generator_state(net.augmentation_generator),
            "torch_rng": torch.random.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(device) for device in devices],
            "early_stopping": [
                _early_stopping_state(callback) for callback in _early_stoppings(net)
            ],
        }

    def _resume(self, net: Any, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.path} is not a checkpoint of this version of sk_reweight.")
        try:
            net.module_.load_state_dict(state["module"])
        except RuntimeError as exc:
            raise ValueError(
                f"the checkpoint {self.path} was written for another network ({exc}); delete "
                "it, or pass another dirname, to train from scratch."
            ) from None
        net.optimizer_.load_state_dict(state["optimizer"])
        net.history = History(json.loads(state["history"]))
        net.policy.resume(state["policy"])
        if net.augmentation_generator is not None and state.get("augmentation_rng") is not None:
            net.augmentation_generator.set_state(state["augmentation_rng"])
        torch.random.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.device(net.device).type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"][0], net.device)
        for callback, saved in zip(_early_stoppings(net), state["early_stopping"], strict=False):
            callback.__dict__.update(saved)


def _generator_state(generator: torch.Generator | None) -> torch.Tensor | None:
    return None if generator is None else generator.get_state()


def _early_stoppings(net: Any) -> list[EarlyStopping]:
    return [callback for _, callback in net.callbacks_ if isinstance(callback, EarlyStopping)]


def _early_stopping_state(callback: EarlyStopping) -> dict[str, Any]:
    return {
        "misses_": callback.misses_,
        "dynamic_threshold_": float(callback.dynamic_threshold_),
        "best_epoch_": callback.best_epoch_,
        "best_model_weights_": callback.best_model_weights_,
    }
