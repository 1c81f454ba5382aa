"""Minibatch policies: which examples form a minibatch and how their losses are weighted.

ERM, RGD, InfoBatch and RAIS share one training engine and differ only in the
policy it consults: the order in which examples are drawn, the per-example
multipliers of their losses and, for RAIS, a factor on the learning rate.
:class:`MinibatchPolicy` is public: a new training method is a subclass,
trained by :class:`~sk_reweight.ReweightingClassifier`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

if TYPE_CHECKING:
    from ._data import TensorDataset


@dataclass(frozen=True)
class TrainingStep:
    """What the engine knows about a minibatch after its forward pass.

    Attributes
    ----------
    inputs : Tensor of shape (batch_size, ...)
        The examples, as the network received them (augmented, if
        ``augmentation`` is set).
    targets : Tensor of shape (batch_size,)
        Their encoded labels (class indices).
    indices : Tensor of shape (batch_size,)
        Their positions in the training set.
    sample_weight : Tensor of shape (batch_size,)
        The user's sample weights (times class weights) of those examples.
    output : Tensor of shape (batch_size, n_classes)
        The tensor the network's ``forward`` returned, itself: the logits,
        attached to the autograd graph, in the forward pass's dtype (bfloat16
        or float16 under mixed precision). Not a copy or a cast: a policy may
        recognise it, e.g. as the output of the network's last layer (RAIS's
        per-example gradient norms of ``grad_norm='last_layer'``).
    losses : Tensor of shape (batch_size,)
        Detached per-example cross-entropies, in float32.
    """

    inputs: Tensor
    targets: Tensor
    indices: Tensor
    sample_weight: Tensor
    output: Tensor
    losses: Tensor


class MinibatchPolicy:
    """How a training engine draws minibatches and weights their losses; by itself, plain ERM.

    The base policy visits a fresh random permutation of the training set
    each epoch, in consecutive slices of ``batch_size`` examples, with unit
    loss weights. A new training method is a subclass that overrides what
    it changes, usually :meth:`loss_weights` (reweighting) or
    :meth:`epoch_batches` and :attr:`progress` (sampling), and is trained by
    :class:`~sk_reweight.ReweightingClassifier` (``policy=MyPolicy(...)``),
    with every parameter, callback, checkpoint and device of the package's
    classifiers.

    The policy's own parameters are the arguments of its ``__init__``,
    stored under the same names and never changed by training (as a
    scikit-learn estimator's), so that the classifier copies it, prints it
    and grid-searches it (``policy__gamma``). Everything a fit learns is set
    in :meth:`reset` or later.

    **The protocol.** The engine is the only caller. When training starts it
    calls :meth:`reset` (the training set's size, the fit's seeded generator,
    the data's device), sets ``progress_limit`` and calls
    :meth:`begin_training` (the network and the training set). Each epoch it
    iterates :meth:`epoch_batches`; for each minibatch it asks
    :meth:`sampling_weights` (before the forward pass), :meth:`lr_factor` and
    :meth:`loss_weights` (after it, with a :class:`TrainingStep`); it records
    :meth:`epoch_statistics` in ``history_`` at each epoch's end and calls
    :meth:`end_training` when training stops, however it stops. Training ends
    once :attr:`progress` reaches ``max_epochs``. Before any data are copied,
    ``fit`` calls :meth:`check_module` on the network; after training it sets
    the classifier's fitted attributes from :meth:`fitted_attributes`.
    :class:`~sk_reweight.TrainingCheckpoint` saves :meth:`state_dict`
    at the ends of epochs and restores it with :meth:`load_state_dict`.

    Attributes
    ----------
    progress_limit : float
        The engine ends training once :attr:`progress` reaches it (its
        ``max_epochs``); a policy whose progress runs ahead of its epochs may
        end an epoch early there, instead of drawing minibatches that the
        schedule no longer wants.
    progress_unit : str
        What :attr:`progress` counts, as messages name it: ``'epochs'``, or
        ``'epochs equivalent'`` for importance sampling.
    supports_partial_fit : bool
        Whether the classifier offers ``partial_fit``, which trains every
        chunk under a fresh policy (one epoch each).

    Examples
    --------
    The focal loss (Lin et al., 2017) as a policy: each example's loss
    times :math:`(1 - p_i)^\\gamma`, :math:`p_i` the probability of its class.

    >>> import torch
    >>> from sk_reweight import MinibatchPolicy, ReweightingClassifier
    >>> class FocalPolicy(MinibatchPolicy):
    ...     def __init__(self, gamma=2.0):
    ...         self.gamma = gamma
    ...     def loss_weights(self, step):
    ...         return (1 - torch.exp(-step.losses)) ** self.gamma
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> model = ReweightingClassifier(
    ...     FocalPolicy(gamma=1.0), max_epochs=20, n_iter_no_change=None, random_state=0
    ... )
    >>> model.fit(X / 16, y).score(X / 16, y) > 0.95
    True
    """

    progress_limit: float = math.inf
    progress_unit: str = "epochs"
    supports_partial_fit: bool = True

    def __repr__(self) -> str:
        parameters = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({parameters})"

    @classmethod
    def _parameter_names(cls) -> list[str]:
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self" and p.kind not in variadic]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The policy's parameters: the arguments of its ``__init__`` (scikit-learn's protocol)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params: Any) -> MinibatchPolicy:
        """Set parameters by name, as :meth:`sklearn.base.BaseEstimator.set_params` does."""
        valid = self._parameter_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters "
                    f"are {valid}."
                )
            setattr(self, name, value)
        return self

    def check_module(self, module: nn.Module, inputs: Tensor) -> None:
        """Refuse a network this policy cannot train, with a :class:`ValueError` saying why.

        Called by ``fit`` on the network it will train, before any training
        data are copied; ``inputs`` are two training examples, on the
        network's device, on which it may be run. The base policy trains any
        network.
        """

    def fitted_attributes(
        self, training_rows: NDArray[np.intp], n_rows: int
    ) -> dict[str, Any]:
        """Fitted attributes the classifier takes from this policy when training ends.

        Called once, after :meth:`end_training`. ``training_rows`` are the
        positions, among the ``n_rows`` rows of the ``X`` passed to ``fit``,
        of the training examples (the policy's examples ``0 .. n - 1``);
        the others were held out for early stopping. Names end with an
        underscore, as scikit-learn's fitted attributes do. The base policy
        adds none.
        """
        return {}

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        """Prepare for training on ``n_samples`` examples stored on ``device``.

        Parameters
        ----------
        n_samples : int
            Size of the training set.
        generator : torch.Generator
            The seeded CPU generator every random draw of the policy uses.
        device : torch.device
            Where the training tensors live; index tensors are put there.
        """
        self.n_samples = n_samples
        self.generator = generator
        self.device = device
        self.samples_seen = 0
        self.epochs_started = 0

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        """Training of ``module`` on ``dataset`` (the training set) starts."""

    def end_training(self) -> None:
        """Training stopped; release what :meth:`begin_training` acquired, and the generator."""
        self.generator = None

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to go on where this one is, at the end of an epoch.

        Progress (which drives the learning-rate schedule and the stop), the
        epoch count and the state of the random generator: tensors and plain
        values only.
        """
        return {
            "n_samples": self.n_samples,
            "samples_seen": self.samples_seen,
            "epochs_started": self.epochs_started,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (after :meth:`begin_training`): a resumed fit."""
        if state["n_samples"] != self.n_samples:
            raise ValueError(
                f"the checkpoint was written while training on {state['n_samples']} examples; "
                f"this fit trains on {self.n_samples}."
            )
        self.samples_seen = state["samples_seen"]
        self.epochs_started = state["epochs_started"]
        self.generator.set_state(state["generator"])

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        """Yield the index tensors of one epoch's minibatches."""
        self.epochs_started += 1
        order = torch.randperm(self.n_samples, generator=self.generator).to(self.device)
        for start in range(0, self.n_samples, batch_size):
            indices = order[start : start + batch_size]
            yield indices
            self._advance(len(indices))

    def _advance(self, n_drawn: int) -> None:
        """Account for a finished step that drew ``n_drawn`` examples."""
        self.samples_seen += n_drawn

    @property
    def progress(self) -> float:
        """Training progress in epochs: examples drawn so far over ``n_samples``."""
        return self.samples_seen / self.n_samples

    def sampling_weights(self) -> Tensor | None:
        """Importance weights :math:`1 / (n p_i)` of the minibatch just drawn.

        ``None`` when sampling is uniform. Weighted batch-normalisation layers
        use them for their training statistics.
        """
        return None

    def lr_factor(self) -> float:
        """Multiplier of the scheduled learning rate for the next step."""
        return 1.0

    def loss_weights(self, step: TrainingStep) -> Tensor | None:
        """Per-example multipliers of the minibatch's losses, or ``None`` for all ones.

        Called once per training step, after the forward pass and before the
        backward pass; a policy may update its state from ``step`` here.
        """
        return None

    def epoch_statistics(self) -> dict[str, float]:
        """Statistics of the epoch that just ended, recorded in ``history_``."""
        return {}


class WeightStatistics:
    """Minimum, mean and maximum of the per-example loss weights of an epoch.

    :meth:`update` only keeps a reference to each minibatch's weights, so the
    training loop launches no extra kernel and waits for no device; the
    statistics are reduced once, in :meth:`summary`.
    """

    def __init__(self) -> None:
        self._batches: list[Tensor] = []

    def update(self, weights: Tensor) -> None:
        """Account for one minibatch's weights."""
        self._batches.append(weights)

    def summary(self, prefix: str = "weight") -> dict[str, float]:
        """``{prefix}_min``, ``_mean`` and ``_max`` since the last summary, then forget them.

        All three are 1 when no weights were recorded (e.g. a warm-up epoch).
        """
        if not self._batches:
            return {f"{prefix}_min": 1.0, f"{prefix}_mean": 1.0, f"{prefix}_max": 1.0}
        weights = torch.cat(self._batches)
        self._batches = []
        low, high = torch.aminmax(weights)
        return {
            f"{prefix}_min": low.item(),
            f"{prefix}_mean": weights.mean().item(),
            f"{prefix}_max": high.item(),
        }
