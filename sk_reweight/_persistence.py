"""What a fitted classifier saves: plain values and tensors, never pickled torch objects.

A fitted classifier pickles (and saves with :func:`skops.io.dump`) its trained
network as :func:`saved_net`: the network's and the optimizer's state dicts as
`safetensors <https://huggingface.co/docs/safetensors>`_ blobs (bytes that hold
nothing but named numeric tensors, always on the CPU), the optimizer's
hyper-parameters and the history as plain Python values. Loading rebuilds the
skorch net from the classifier's parameters and fills it from these, on the
training device when it exists and on the CPU otherwise. Nothing else of
training is kept: no training or validation data, no random generator, no
minibatch policy state, no fitted state of the callbacks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

TRUSTED_TYPES: list[str] = [
    "sk_reweight._erm.ERMClassifier",
    "sk_reweight._rgd.RGDClassifier",
    "sk_reweight._rais._estimator.RAISClassifier",
    "sk_reweight._infobatch.InfoBatchClassifier",
    "sk_reweight._reweighting.ReweightingClassifier",
    "sk_reweight._rais._uncertainty.UncertaintySet",
    "sk_reweight._checkpoint.TrainingCheckpoint",
]
"""The types of this package that a :func:`skops.io.load` of a fitted classifier must trust.

With the default ``module``, optimizer, schedule and callbacks, a classifier
saved by :func:`skops.io.dump` contains only these and types that skops trusts
by default, so ``skops.io.load(path, trusted=sk_reweight.TRUSTED_TYPES)``
loads it. The list also names :class:`~sk_reweight.TrainingCheckpoint`, for a
classifier with one (its ``dirname`` a string) among its callbacks. A user's
own module class or factory, optimizer class, schedule function or callbacks
add their own types, which ``skops.io.get_untrusted_types`` lists.
"""

SAVED_NET_FORMAT = 1


def tensors_to_bytes(tensors: dict[str, Tensor]) -> bytes:
    """Serialise named tensors as a safetensors blob (copied to the CPU, unshared)."""
    from safetensors.torch import save

    return save(
        {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    )


def tensors_from_bytes(blob: Any, what: str) -> dict[str, Tensor]:
    """Read a blob of :func:`tensors_to_bytes`; anything else is refused without running it.

    Raises
    ------
    ValueError
        When ``blob`` is not bytes in the safetensors format (e.g. a pickle).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not isinstance(blob, bytes):
        raise ValueError(f"the saved {what} must be bytes; got {type(blob).__name__}.")
    try:
        return load(blob)
    except SafetensorError as exc:
        raise ValueError(
            f"the saved {what} is not a safetensors blob of plain tensors ({exc}); the file "
            "is damaged or was tampered with, and was not loaded."
        ) from None


def module_state(module: nn.Module) -> bytes:
    """The network's state dict (parameters and buffers) as a safetensors blob."""
    state = module.state_dict()
    not_tensors = [name for name, value in state.items() if not isinstance(value, Tensor)]
    if not_tensors:
        raise TypeError(
            f"the network's state dict holds values that are not tensors: {not_tensors}."
        )
    return tensors_to_bytes(state)


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict: its tensors as a safetensors blob, the rest as is.

    Per-parameter tensors are named ``"{parameter index}.{name}"``; the
    hyper-parameters (``param_groups``) and any per-parameter value that is not
    a tensor stay plain Python values.
    """
    state_dict = optimizer.state_dict()
    tensors, values = {}, {}
    for index, parameter_state in state_dict["state"].items():
        values[index] = {}
        for name, value in parameter_state.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                values[index][name] = value
    return {
        "tensors": tensors_to_bytes(tensors),
        "values": values,
        "param_groups": state_dict["param_groups"],
    }


def optimizer_state_dict(saved: dict[str, Any]) -> dict[str, Any]:
    """The state dict that :func:`optimizer_state` saved."""
    state = {index: dict(values) for index, values in saved["values"].items()}
    for key, tensor in tensors_from_bytes(saved["tensors"], "optimizer state").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": saved["param_groups"]}


def saved_net(net: Any) -> dict[str, Any]:
    """What a fitted classifier keeps of its skorch net when it is pickled or saved."""
    return {
        "format": SAVED_NET_FORMAT,
        "device": str(net.device),
        "module": module_state(net.module_),
        "optimizer": optimizer_state(net.optimizer_),
        "history": [dict(epoch) for epoch in net.history],
    }


def loading_device(saved_device: str) -> torch.device:
    """The device a saved net is loaded onto: the training device if present, else the CPU."""
    device = torch.device(saved_device)
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        return torch.device("cpu")
    if device.type not in ("cpu", "cuda"):
        return torch.device("cpu")
    return device


def load_net_state(net: Any, saved: dict[str, Any]) -> None:
    """Fill an initialised net with what :func:`saved_net` kept."""
    from skorch.history import History

    if saved.get("format") != SAVED_NET_FORMAT:
        raise ValueError(
            f"unknown format {saved.get('format')!r} of the saved network; this version of "
            f"sk_reweight reads format {SAVED_NET_FORMAT}."
        )
    net.module_.load_state_dict(tensors_from_bytes(saved["module"], "network weights"))
    net.optimizer_.load_state_dict(optimizer_state_dict(saved["optimizer"]))
    net.history = History(dict(epoch) for epoch in saved["history"])


class NetSnapshot:
    """A fitted net as it is now, to put it back if training it further fails.

    What training a net changes: its settings and fitted attributes (a
    shallow copy of its attributes), the weights and buffers of its module,
    its optimizer's state, its gradient scaler's, its callbacks' states and
    its history, which training only extends (and whose last record it may
    annotate). Copying these costs the size of the weights and optimizer
    state and of the callbacks, not of the history, unlike a deep copy of
    the net, which grows with every epoch trained (every ``partial_fit``
    call). Restoring puts them back into the same module and optimizer
    objects.
    """

    def __init__(self, net: Any):
        self.net = net
        self.attributes = dict(vars(net))
        self.module = {
            name: tensor.detach().clone() for name, tensor in net.module_.state_dict().items()
        }
        self.optimizer = copy.deepcopy(net.optimizer_.state_dict())
        scaler = net.grad_scaler_
        self.grad_scaler = None if scaler is None else copy.deepcopy(scaler.state_dict())
        self.callbacks = copy.deepcopy(net.callbacks_)
        self.epochs = len(net.history)
        self.last_epoch = copy.deepcopy(net.history[-1]) if self.epochs else None

    def restore(self) -> None:
        """Put the net back as it was when the snapshot was taken."""
        net = self.net
        net.__dict__.clear()
        net.__dict__.update(self.attributes)
        net.module_.load_state_dict(self.module)
        net.optimizer_.load_state_dict(self.optimizer)
        if self.grad_scaler is not None:
            net.grad_scaler_.load_state_dict(self.grad_scaler)
        net.callbacks_ = self.callbacks
        del net.history[self.epochs :]
        if self.last_epoch is not None:
            net.history[-1] = self.last_epoch


@contextmanager
def unchanged_on_error(estimator: Any, in_place: bool) -> Iterator[None]:
    """Leave a classifier as it was when the block raises (a Ctrl-C included).

    ``in_place``: the block may train the fitted ``net_`` in place (a warm fit
    or a ``partial_fit`` call), so a :class:`NetSnapshot` of it is kept to
    restore.
    """
    previous_state = estimator.__dict__.copy()
    in_training = in_place and hasattr(estimator, "net_")
    snapshot = NetSnapshot(estimator.net_) if in_training else None
    try:
        yield
    except BaseException:
        if snapshot is not None:
            snapshot.restore()
        estimator.__dict__ = previous_state
        raise
