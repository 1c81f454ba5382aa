"""TrainingCheckpoint: a skorch callback that makes a long fit resumable after a crash."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.history import History
from torch import nn

from ._convergence import StoppingRule
from ._fit_context import RunningFit, owns_global_generator, running_fit

CHECKPOINT_FORMAT = 4
"""Version of the checkpoints' contents.

A checkpoint is a dictionary of tensors and plain values: ``format``,
``fingerprint`` (JSON), ``epochs``, ``module`` and ``optimizer`` (state
dicts), ``history`` (JSON), ``policy`` (the policy's ``state_dict``:
for RAIS the schema documented in
:meth:`~sk_reweight._rais._policy.RAISPolicy.state_dict`),
``augmentation_rng``, ``generators``, ``torch_rng``, ``cuda_rng`` and
``early_stopping``. 4: the policy's bookkeeping under fixed, documented keys
(3 saved RAIS's private attribute names; 2 lacked the stopping rule's state).
Another format is refused (:meth:`TrainingCheckpoint._read`).
"""

NOT_FINGERPRINTED = frozenset({"callbacks", "device", "verbose"})
"""Parameters that do not choose a fit's checkpoint: they do not change what is trained
(``device`` does only in the last bits, and a fit may resume on another device)."""

FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_atomically(path: Path, content: Any) -> None:
    """``torch.save`` ``content`` to ``path`` so that ``path`` is always a complete file.

    The checkpoint is serialised in memory, written to a temporary file in the
    same directory, flushed to the disk and renamed over ``path`` (an atomic
    replacement on POSIX and Windows): a process killed at any moment, or a
    disk that fills up, leaves the previous checkpoint or the new one, never a
    partial file. Serialising first makes a full disk raise
    :class:`OSError` with ``errno.ENOSPC`` (torch's own writer reports it as
    an opaque :class:`RuntimeError`).
    """
    buffer = io.BytesIO()
    torch.save(content, buffer)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(buffer.getbuffer())
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


def check_filename(filename: Any) -> str:
    """``filename`` if it is a plain file name: no directory part, not ``.`` or ``..``.

    A checkpoint is always written inside its ``dirname``: a name that could
    lead elsewhere (``../../autostart.sh``, ``/etc/x``) is refused, whoever
    set it (a model file loaded with skops can carry a callback).
    """
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if (
        not isinstance(filename, str)
        or filename in {"", ".", ".."}
        or "\0" in filename
        or any(separator in filename for separator in separators)
    ):
        raise ValueError(
            f"filename must be a plain file name, without a directory part or '..'; got "
            f"{filename!r}. Choose the directory with dirname."
        )
    return filename


def _qualified_name(thing: Any) -> str:
    return f"{getattr(thing, '__module__', '?')}.{getattr(thing, '__qualname__', repr(thing))}"


def _digest(array: Any) -> str:
    """SHA-256 of an array's bytes (C order), its dtype and shape."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def stable_description(value: Any) -> Any:
    """A JSON value that describes a parameter's value identically in every process.

    Plain values stay; arrays and random states become digests; classes and
    functions their qualified names (a ``repr`` holding a memory address
    would differ between the crashed process and the resumed one); a module
    instance its class and the shapes of its tensors (its weights are drawn
    again at every fit).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [stable_description(item) for item in value]
    if isinstance(value, dict):
        return {str(key): stable_description(item) for key, item in sorted(value.items(), key=str)}
    if isinstance(value, np.ndarray):
        return {"array": _digest(value)}
    if isinstance(value, np.random.RandomState):
        return {"RandomState": stable_description(list(value.get_state(legacy=True)))}
    if isinstance(value, np.random.Generator):
        return {"Generator": json.dumps(value.bit_generator.state, sort_keys=True, default=str)}
    if isinstance(value, nn.Module):
        shapes = {name: list(tensor.shape) for name, tensor in value.state_dict().items()}
        return {"module": _qualified_name(type(value)), "shapes": shapes}
    if isinstance(value, functools.partial):
        return {
            "partial": stable_description(value.func),
            "args": stable_description(value.args),
            "keywords": stable_description(value.keywords),
        }
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return _qualified_name(value)
    text = repr(value)
    return _qualified_name(type(value)) if " at 0x" in text else text


def training_fingerprint(fit: RunningFit, net: Any) -> dict[str, Any]:
    """What a checkpoint belongs to: the classifier, its training parameters and its data.

    The classifier's class, every parameter but :data:`NOT_FINGERPRINTED`
    (:func:`stable_description` of each), the training data (shape, classes,
    SHA-256 of the inputs, encoded labels and sample weights times class
    weights) and, for a warm fit, the network it starts from.
    """
    estimator = fit.estimator
    parameters = estimator.get_params(deep=False)
    fingerprint: dict[str, Any] = {
        "estimator": _qualified_name(type(estimator)),
        "parameters": {
            name: stable_description(value)
            for name, value in sorted(parameters.items())
            if name not in NOT_FINGERPRINTED
        },
        "data": {
            "shape": list(fit.X.shape),
            "classes": [str(label) for label in estimator.classes_],
            "X": _digest(fit.X),
            "y": _digest(fit.y),
            "sample_weight": _digest(fit.sample_weight),
        },
    }
    if fit.warm:
        weights = hashlib.sha256()
        for name, tensor in net.module_.state_dict().items():
            weights.update(name.encode())
            weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        fingerprint["warm_start_from"] = {
            "epochs": len(net.history),
            "weights": weights.hexdigest(),
        }
    return fingerprint


def fingerprint_differences(
    saved: dict[str, Any], expected: dict[str, Any], prefix: str = ""
) -> list[str]:
    """The entries (``data.X``, ``parameters.lr``, ...) where two fingerprints differ."""
    differences = []
    for key in sorted(set(saved) | set(expected)):
        name = f"{prefix}{key}"
        mine, theirs = saved.get(key), expected.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict) and prefix.count(".") < 1:
            differences += fingerprint_differences(mine, theirs, f"{name}.")
        elif mine != theirs:
            differences.append(name)
    return differences


class TrainingCheckpoint(Callback):
    """Checkpoint a fit every ``every`` epochs; the same fit, run again, resumes from it.

    Pass it in a classifier's ``callbacks``. At the end of every ``every``-th
    epoch it writes a checkpoint in ``dirname``, atomically (a process killed
    at any moment leaves a complete checkpoint): the network's weights, the
    optimizer's state, the history, the minibatch policy's progress (which
    drives the learning-rate schedule and the end of training) and random
    generators, the fit's dropout generator, the generator of the
    ``augmentation``, torch's global random state and the state of the
    stopping rule (``n_iter_no_change``: the best loss so far and the epochs
    since it) and of early stopping. When ``fit`` starts and finds its own
    checkpoint, training continues from it instead of from the start, and
    runs only the epochs that remain: a killed fit, run again with the same
    data and parameters, loses at most ``every`` epochs and, on the CPU,
    ends with the same network, bit for bit, as a fit that was never
    interrupted. :class:`RAISClassifier` also saves its per-example norm
    histories, (PT) records, uncertainty set, gain estimate and the (PT)
    solve in flight (waited for at the checkpoint), so that its resumed fit
    samples as the uninterrupted one would. The fitted state of other
    callbacks (e.g. :class:`~skorch.callbacks.EpochScoring`'s best score) is
    not saved; put this callback after those whose records the checkpointed
    history should hold.

    **Whose checkpoint.** Each checkpoint records a fingerprint of its fit:
    the classifier's class, every parameter except ``callbacks``, ``device``
    and ``verbose``, and the training data (shape, classes and SHA-256 of
    ``X``, the labels and the sample weights times class weights; for a warm
    fit also the network it starts from). The file is named after it,
    ``training-<16 hex digits>.pt`` for ``filename='training.pt'``, so that
    one directory holds the checkpoints of many fits (the folds and
    candidates of a :class:`~sklearn.model_selection.GridSearchCV`, its
    refit, fits running at the same time) and each fit resumes only its own:
    a search with this callback gives the results it gives without it. A
    file whose recorded fingerprint differs from its name is refused with a
    :class:`ValueError` naming what differs.

    **Faults.** The directory is created and checked for writing before
    training (a :class:`ValueError` if it cannot be written). A damaged file
    raises a :class:`ValueError` that names it (delete it to train from
    scratch). A full disk keeps the previous checkpoint, warns
    (:class:`RuntimeWarning`) and lets training go on; the next checkpoint
    is tried ``every`` epochs later.

    The file is read with ``torch.load(weights_only=True)``, which accepts
    tensors and plain Python values only. The checkpoint is kept when the fit
    ends: delete it (or use another ``dirname``) to train from scratch again.
    The path a fit uses is ``path_`` of its copy of the callback
    (``dict(model.net_.callbacks_)['TrainingCheckpoint'].path_``).

    Parameters
    ----------
    dirname : str or path-like
        Directory of the checkpoints; created if missing.
    every : int >= 1, default=1
        Epochs between checkpoints.
    filename : str, default='training.pt'
        Name of the checkpoint files, before the fingerprint is inserted:
        a plain file name (no directory part, not ``..``), checked here and
        again at every fit.

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
        self.filename = check_filename(filename)

    def path_for(self, fingerprint: dict[str, Any]) -> Path:
        """The checkpoint file of the fit with ``fingerprint`` (what a fit records of itself)."""
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        name = Path(check_filename(self.filename))
        return Path(self.dirname) / f"{name.stem}-{digest[:16]}{name.suffix}"

    def initialize(self) -> TrainingCheckpoint:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"every must be an integer >= 1; got {self.every!r}.")
        if not isinstance(self.dirname, str | os.PathLike):
            raise ValueError(f"dirname must be a str or a path; got {self.dirname!r}.")
        check_filename(self.filename)
        return self

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        fit = running_fit()
        if fit is None:
            raise ValueError(
                "TrainingCheckpoint checkpoints the fits of sk_reweight's classifiers; pass it "
                "in their callbacks parameter."
            )
        self.initialize()
        self._fit = fit
        self._fingerprint = training_fingerprint(fit, net)
        self.path_ = self.path_for(self._fingerprint)
        self._saved_epochs = 0
        _check_writable(Path(self.dirname))
        if self.path_.exists():
            self._resume(net, self._read())

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        self._fit = None  # holds the training data

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        epochs = len(net.history)
        if epochs % self.every:
            return
        try:
            write_atomically(self.path_, self._state(net))
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                raise
            kept = (
                f"the previous one (epoch {self._saved_epochs}) is kept"
                if self._saved_epochs
                else "no earlier checkpoint of this fit exists"
            )
            warnings.warn(
                f"no space left on the device of {self.path_}: the checkpoint of epoch "
                f"{epochs} was not written and {kept}. Training goes on and tries again in "
                f"{self.every} epoch(s); free space, or pass a dirname on another disk.",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            self._saved_epochs = epochs

    # ------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        """The checkpoint at ``path_``; a :class:`ValueError` naming it if it cannot be used."""
        try:
            state = torch.load(self.path_, map_location="cpu", weights_only=True)
        except Exception:  # truncated, overwritten, not a zip, or holding more than tensors
            state = None
        if not (isinstance(state, dict) and "format" in state):
            raise ValueError(
                f"cannot read the checkpoint {self.path_}: it is damaged (truncated or "
                "overwritten) or is not a checkpoint of sk_reweight. Delete it, or move it "
                "away, to train this fit from scratch."
            ) from None
        if state["format"] != CHECKPOINT_FORMAT:
            older = isinstance(state["format"], int) and state["format"] < CHECKPOINT_FORMAT
            raise ValueError(
                f"the checkpoint {self.path_} was written by {'an older' if older else 'another'} "
                f"version of sk_reweight (checkpoint format {state['format']!r}; this version "
                f"reads format {CHECKPOINT_FORMAT} only) and cannot be resumed. Delete it to "
                "train this fit from scratch."
            )
        saved = json.loads(state["fingerprint"])
        if saved != self._fingerprint:
            differences = ", ".join(fingerprint_differences(saved, self._fingerprint))
            raise ValueError(
                f"the checkpoint {self.path_} belongs to another fit (it differs in: "
                f"{differences}); it was renamed or copied. Delete it, or pass another "
                "dirname, to train this fit from scratch."
            )
        return state

    def _state(self, net: Any) -> dict[str, Any]:
        devices = [net.device] if torch.device(net.device).type == "cuda" else []
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": json.dumps(self._fingerprint, sort_keys=True),
            "epochs": len(net.history),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "history": json.dumps(list(net.history), default=_plain),
            "policy": net.policy.state_dict(),
            "augmentation_rng": _generator_state(net.augmentation_generator),
            "generators": self._fit.generator_states(),
            # torch's global generators belong to the fit in the main thread only.
            "torch_rng": torch.random.get_rng_state() if owns_global_generator() else None,
            "cuda_rng": [
                torch.cuda.get_rng_state(device) for device in devices if owns_global_generator()
            ],
            "early_stopping": [
                _early_stopping_state(callback) for callback in _early_stoppings(net)
            ],
        }

    def _resume(self, net: Any, state: dict[str, Any]) -> None:
        try:
            net.module_.load_state_dict(state["module"])
        except RuntimeError as exc:
            raise ValueError(
                f"the checkpoint {self.path_} was written for another network ({exc}); delete "
                "it, or pass another dirname, to train from scratch."
            ) from None
        net.optimizer_.load_state_dict(state["optimizer"])
        net.history = History(json.loads(state["history"]))
        net.policy.load_state_dict(state["policy"])
        if net.augmentation_generator is not None and state["augmentation_rng"] is not None:
            net.augmentation_generator.set_state(state["augmentation_rng"])
        self._fit.restore_generators(state["generators"])
        self._saved_epochs = state["epochs"]
        if state["torch_rng"] is not None and owns_global_generator():
            torch.random.set_rng_state(state["torch_rng"])
        if (
            state["cuda_rng"]
            and torch.device(net.device).type == "cuda"
            and owns_global_generator()
        ):
            torch.cuda.set_rng_state(state["cuda_rng"][0], net.device)
        for callback, saved in zip(_early_stoppings(net), state["early_stopping"], strict=False):
            callback.__dict__.update(saved)


def _generator_state(generator: torch.Generator | None) -> torch.Tensor | None:
    return None if generator is None else generator.get_state()


def _check_writable(directory: Path) -> None:
    """Create ``directory`` and write a file in it; a :class:`ValueError` if that fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ValueError(
            f"cannot write checkpoints in {directory} ({exc.strerror or exc}); pass a writable "
            "dirname. Nothing was trained."
        ) from None


def _early_stoppings(net: Any) -> list[EarlyStopping]:
    return [callback for _, callback in net.callbacks_ if isinstance(callback, EarlyStopping)]


def _early_stopping_state(callback: EarlyStopping) -> dict[str, Any]:
    """What an early-stopping callback (the classifiers' stopping rule included) has learnt."""
    state = {
        "misses_": callback.misses_,
        "dynamic_threshold_": float(callback.dynamic_threshold_),
        "best_epoch_": callback.best_epoch_,
        "best_model_weights_": callback.best_model_weights_,
    }
    if isinstance(callback, StoppingRule):
        state["best_progress_"] = callback.best_progress_
    return state
