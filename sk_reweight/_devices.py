"""The ``device`` parameter: the torch device it names, or a sentence saying why none."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device that ``device`` names, once it is known to work on this machine.

    What the classifiers do with their ``device`` parameter (and
    :meth:`~sk_reweight.ERMClassifier.to_device` with its argument) before any
    training, exposed for code that checks a device early, such as the
    command line's ``--device``.

    Parameters
    ----------
    device : str or torch.device
        ``'auto'`` (CUDA when available, else the CPU), ``'cpu'``,
        ``'cuda'``, ``'cuda:1'``, ``'mps'``, ... or a :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        One sentence saying what is wrong and what to use instead: a name
        that is no torch device (``'gpu'`` suggests ``'cuda'``), a backend
        this machine or this build of torch lacks (``'cuda'`` on a CPU-only
        machine, ``'mps'`` off Apple silicon), a CUDA index beyond the GPUs
        present, or a device that holds no data (``'meta'``).

    Examples
    --------
    >>> from sk_reweight import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: device='gpu' is not a torch device; did you mean device='cuda' (an NVIDIA GPU)...
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and device.lower().partition(":")[0] == "gpu":
        suggested = "cuda" + device[len("gpu") :]
        raise ValueError(
            f"device={device!r} is not a torch device; did you mean device={suggested!r} "
            "(an NVIDIA GPU), or device='auto'?"
        )
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    problem = unavailable_reason(resolved)
    if problem is not None:
        raise ValueError(
            f"device={device!r} cannot be used: {problem}; use device='auto' (a CUDA GPU when "
            "there is one, else the CPU) or device='cpu'."
        )
    return resolved


def unavailable_reason(device: torch.device) -> str | None:
    """Why tensors cannot live on ``device`` on this machine; ``None`` when they can.

    CUDA is asked without initialising it (a forked worker could not use it
    afterwards); another backend must take one number and give it back.
    """
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            return "this build of torch has no CUDA support (install a CUDA build of torch)"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "CUDA is not available on this machine (no usable NVIDIA GPU or driver)"
        if (device.index or 0) >= count:
            return f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        return None
    if device.type == "meta":
        return "the meta device holds no data to train on"
    try:
        torch.zeros(1, device=device).cpu()
    except Exception:  # each backend fails in its own way (RuntimeError, AssertionError, ...)
        return f"the {device.type} backend is not available on this machine or in this torch"
    return None
