"""The training engine: a skorch net that trains on device-resident tensor batches.

skorch contributes the epoch loop, callbacks, history, early stopping and
checkpointing. This module replaces what makes plain skorch slow for tabular
data (one ``__getitem__`` and one collate per example) with tensor slicing, and
routes every minibatch through a :class:`~sk_reweight._policies.MinibatchPolicy`
that decides which examples are drawn and how their losses are weighted.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import BatchScoring, EpochTimer, PassthroughScoring
from skorch.utils import TeeGenerator
from torch import Tensor, nn

from ._augmentation import augment, augmentation_generator
from ._batchnorm import WeightedBatchNorm2d, example_weights
from ._convergence import CALLBACK, MAX_EPOCHS, STOP_REASON
from ._data import Batch, Targets, TensorBatches, TensorDataset
from ._output import EpochTable
from ._policies import MinibatchPolicy, TrainingStep
from ._schedules import LRSchedule, constant_schedule


def total_sample_weight(sample_weight: Tensor) -> Tensor:
    """The denominator of :func:`weighted_mean_loss`: the batch's summed sample weights.

    Clamped to the smallest positive float, so that a batch whose weights are
    all zero contributes zero rather than NaN.
    """
    return sample_weight.sum().clamp_min(torch.finfo(sample_weight.dtype).tiny)


def weighted_mean_loss(
    losses: Tensor,
    sample_weight: Tensor,
    example_weight: Tensor | None = None,
    total_weight: Tensor | None = None,
) -> Tensor:
    r"""Minibatch objective: the sample-weighted mean of reweighted losses.

    .. math:: L = \frac{\sum_i u_i r_i \ell_i}{\sum_i u_i}

    with :math:`u_i` the user's sample weight (times class weight), as in
    :class:`sklearn.neural_network.MLPClassifier`, and :math:`r_i` the
    policy's multiplier (1 for ERM, the RGD weight, the RAIS importance
    weight). A minibatch whose sample weights are all zero contributes zero.
    ``total_weight``, :func:`total_sample_weight` of the batch, may be passed
    when it is already known.
    """
    if total_weight is None:
        total_weight = total_sample_weight(sample_weight)
    weight = sample_weight if example_weight is None else sample_weight * example_weight
    return torch.dot(weight, losses) / total_weight


def weighted_accuracy(predicted: Tensor, y: Tensor, sample_weight: Tensor) -> float:
    """The sample-weighted share of correct predictions; NaN when the examples weigh nothing.

    What :class:`~sklearn.neural_network.MLPClassifier` records as its
    validation score (``validation_scores_``), read from the device once.
    """
    correct = torch.dot(sample_weight, (predicted == y).to(sample_weight.dtype))
    correct_weight, total_weight = torch.stack([correct, sample_weight.sum()]).tolist()
    return correct_weight / total_weight if total_weight > 0 else math.nan


def weighted_layers(module: nn.Module) -> list[WeightedBatchNorm2d]:
    """The layers of ``module`` that weight their batch statistics by sampling weights."""
    return [layer for layer in module.modules() if isinstance(layer, WeightedBatchNorm2d)]


PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""The ``precision`` options: the dtype of the forward pass under :func:`torch.autocast`
(``None``: no autocast, float32 throughout)."""


class ScheduleComplete(Exception):  # noqa: N818 (the end of a schedule, not an error)
    """Raised at the start of an epoch once the policy's progress has reached ``max_epochs``.

    :meth:`ReweightingNet.fit_loop` ends training on it, as it ends when its
    epochs run out: it is the schedule's end, distinct from a Ctrl-C
    (:class:`KeyboardInterrupt`, which :meth:`ReweightingNet.partial_fit`
    raises again) and from a callback's stop.
    """


class SigintFlag:
    """SIGINT handler that records a Ctrl-C instead of raising :class:`KeyboardInterrupt`.

    skorch ends training on :class:`KeyboardInterrupt` (as the engine and
    :class:`~skorch.callbacks.EarlyStopping` do on purpose) and returns as if
    training had finished; recording the Ctrl-C lets the trainer stop at a
    step boundary and raise it where skorch cannot swallow it. With
    ``stop_at_once``, or at a second Ctrl-C, the handler raises at once as
    well.
    """

    def __init__(self, stop_at_once: bool = False):
        self.stop_at_once = stop_at_once
        self.received = False

    def __call__(self, signum: int, frame: Any) -> None:
        stop = self.stop_at_once or self.received
        self.received = True
        if stop:
            raise KeyboardInterrupt


@contextmanager
def sigint_recorded(stop_at_once: bool = False) -> Iterator[SigintFlag]:
    """Handle SIGINT with a ``SigintFlag`` inside the block; restore the previous handler.

    Signal handlers belong to the main thread: elsewhere nothing is
    installed and the flag stays unset, as it does when SIGINT is ignored (a
    background job of a script) or handled outside Python.

    Parameters
    ----------
    stop_at_once : bool, default=False
        Raise :class:`KeyboardInterrupt` at the first Ctrl-C instead of
        recording it; a second Ctrl-C always raises.

    Yields
    ------
    flag : SigintFlag
        Its ``received`` attribute turns true at a Ctrl-C: a training loop
        checks it after each step, stops, and raises
        :class:`KeyboardInterrupt` where skorch cannot swallow it.

    Examples
    --------
    >>> from sk_reweight import sigint_recorded
    >>> with sigint_recorded() as flag:
    ...     for step in range(3):
    ...         if flag.received:
    ...             raise KeyboardInterrupt
    >>> flag.received
    False
    """
    flag = SigintFlag(stop_at_once)
    previous = signal.getsignal(signal.SIGINT)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or previous in (None, signal.SIG_IGN):
        yield flag
        return
    signal.signal(signal.SIGINT, flag)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class ReweightingNet(NeuralNetClassifier):
    """skorch classifier net that trains under a minibatch policy.

    The criterion is cross-entropy with ``reduction='none'``; each training
    step minimises :func:`weighted_mean_loss` with the policy's weights, at the
    learning rate ``lr * lr_schedule(policy.progress) * policy.lr_factor()``,
    and training ends after ``max_epochs`` epochs or once ``policy.progress``
    reaches ``max_epochs`` (importance sampling progresses faster than one
    epoch per epoch), unless a callback ends it first (the classifiers'
    :class:`~sk_reweight._convergence.StoppingRule`); the last epoch records
    why (:data:`~sk_reweight._convergence.STOP_REASON`).
    :class:`~sk_reweight._batchnorm.WeightedBatchNorm2d` layers weight their
    training statistics by the policy's
    :meth:`~MinibatchPolicy.sampling_weights`. The recorded ``train_loss`` is
    the sample-weighted mean cross-entropy of the drawn examples without the
    policy's loss multipliers, but with the importance weights of
    non-uniform sampling: an unbiased estimate of the training loss for every
    policy, so that their curves are comparable.

    As a :class:`skorch.NeuralNetClassifier`, it works with encoded labels:
    ``predict`` returns class indices, ``predict_proba`` the softmax of the
    logits, for NumPy, pandas or torch input shaped as the network expects
    (or a :class:`TensorDataset`), and skorch's scoring callbacks see the
    class indices as ``y``.

    Parameters
    ----------
    module : torch.nn.Module
        Network producing logits.
    policy : MinibatchPolicy
        Draws the minibatches and weights their losses. The net is the one
        that drives it: it resets the policy for the training set and starts
        it when training begins, asks it for every epoch's order and every
        step's weights, records its statistics and ends it.
    seed : int
        Seeds the policy's generator and the augmentation's, when training
        begins.
    lr_schedule : callable
        Multiplier of ``lr`` as a function of progress in epochs.
    precision : {'fp32', 'bf16', 'fp16'}
        Mixed precision of the training forward pass (:data:`PRECISIONS`):
        under :func:`torch.autocast`, matrix products and convolutions run in
        bfloat16 or float16; the logits are cast back to float32 before the
        loss, so the per-example losses, the policy's weights and everything
        computed from them stay in float32 (RAIS's (PT) in float64). With
        ``'fp16'`` a :class:`torch.amp.GradScaler` scales the loss against
        underflowing gradients; callbacks see unscaled gradients.
        Prediction and validation run in float32.
    augmentation : {None, 'crop', 'crop_flip'}
        Augmentation of every training minibatch of images, before the
        forward pass (:func:`~sk_reweight._augmentation.augment`), drawn from
        :attr:`augmentation_generator`, which exists from the start to the
        end of training. Prediction and validation see the images as they
        are.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        policy: MinibatchPolicy,
        seed: int = 0,
        lr_schedule: LRSchedule = constant_schedule,
        precision: str = "fp32",
        augmentation: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            module, criterion=nn.CrossEntropyLoss, criterion__reduction="none", **kwargs
        )
        self.policy = policy
        self.seed = seed
        self.lr_schedule = lr_schedule
        self.precision = precision
        self.augmentation = augmentation
        self.augmentation_generator: torch.Generator | None = None
        self._policy_training = False  # between the policy's begin_training and end_training

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        # Losses are accumulated by run_single_epoch, not by per-batch scoring callbacks.
        return [("epoch_timer", EpochTimer()), ("print_log", EpochTable())]

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> ReweightingNet:
        """Train on a :class:`TensorDataset` (with labels) or on ``X`` and class indices ``y``."""
        return super().fit(X, y, **fit_params)

    def partial_fit(
        self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any
    ) -> ReweightingNet:
        """Train for ``max_epochs`` more epochs (``fit`` trains through this method too).

        A Ctrl-C (SIGINT, in the main thread) ends training after the current
        step, runs the ``on_train_end`` callbacks and raises
        :class:`KeyboardInterrupt`, which skorch would otherwise swallow and
        return a half-trained net. Any other error ends the policy's training
        (:meth:`~MinibatchPolicy.end_training`, which skorch's
        ``on_train_end`` would not reach) before it propagates.
        """
        with sigint_recorded() as sigint:
            self._sigint = sigint
            try:
                super().partial_fit(X, y, classes, **fit_params)
            except Exception:
                if self._policy_training:
                    self._end_policy_after_error()
                raise
            finally:
                del self._sigint
        if sigint.received:
            raise KeyboardInterrupt
        return self

    def _end_policy_after_error(self) -> None:
        """End the policy's training (its threads, its data) while an error propagates; an
        error of its own would hide the first one, and is dropped."""
        self._policy_training = False
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what it would report belongs to a failed fit
            self.policy.end_training()

    def fit_loop(self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any):
        """skorch's epoch loop, which also ends when the policy's schedule is complete."""
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except ScheduleComplete:
            return self

    @property
    def progress(self) -> float:
        """Training progress in the policy's epochs (epochs equivalent for RAIS)."""
        return self.policy.progress

    def run_single_epoch(
        self, iterator: TensorBatches | None, training: bool, prefix: str, step_fn, **fit_params
    ) -> None:
        """Run one training or validation epoch and record its mean loss as ``{prefix}_loss``.

        Unlike skorch's loop, batch losses are summed on the device and read
        back once per epoch, so the loop never waits for the device and keeps
        no per-batch records (``history[-1, 'batches']`` holds empty
        records), unless a callback reads them: with a
        :class:`~skorch.callbacks.BatchScoring` or
        :class:`~skorch.callbacks.PassthroughScoring`, every batch records
        ``{prefix}_batch_size`` and ``{prefix}_loss`` as in skorch, at the
        cost of one device synchronisation per batch. ``{prefix}_loss_best``
        says whether the epoch's loss is the lowest so far. A validation
        epoch also records ``valid_acc``, the sample-weighted accuracy, and
        ``valid_acc_best``. Callbacks see each
        batch as skorch's ``(X, y)``, ``y`` the encoded labels, and receive
        the batch's ``sample_weight`` and ``indices`` (positions in the
        dataset) as keyword arguments (``on_grad_computed`` receives the
        engine's :class:`~sk_reweight._data.Batch`, as the training step
        does). A non-finite training loss raises
        :class:`FloatingPointError` rather than leaving a network that
        predicts NaN. A Ctrl-C ends the epoch after the current step
        (:meth:`partial_fit`).
        """
        if iterator is None:
            return
        loss_sum = torch.zeros((), device=self.device)
        # Validation only: each batch's predicted classes, labels and weights, for valid_acc.
        predictions: list[tuple[Tensor, Tensor, Tensor]] = []
        n_examples = n_batches = 0
        for batch in iterator:
            targets = batch.targets
            seen = {
                "batch": (batch.X, targets.y),
                "sample_weight": targets.sample_weight,
                "indices": targets.indices,
            }
            self.notify("on_batch_begin", training=training, **seen)
            step = step_fn(batch, **fit_params)
            batch_size = len(batch.X)
            loss_sum.add_(step["loss"].detach(), alpha=batch_size)
            if not training:
                y_pred = step["y_pred"].argmax(dim=1)
                predictions.append((y_pred, targets.y, targets.sample_weight))
            n_examples += batch_size
            n_batches += 1
            if self._records_batches:
                self.history.record_batch(f"{prefix}_batch_size", batch_size)
                self.history.record_batch(f"{prefix}_loss", step["loss"].item())
            self.notify("on_batch_end", training=training, **seen, **step)
            if self._sigint.received:
                raise KeyboardInterrupt  # ends training; partial_fit raises it again
        mean_loss = loss_sum.item() / n_examples
        if training and not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"training diverged in epoch {len(self.history)}: the training loss is "
                f"{mean_loss}. Lower lr (or scale the inputs)."
            )
        key = f"{prefix}_loss"
        best_before = min(
            (epoch[key] for epoch in self.history[:-1] if key in epoch), default=math.inf
        )
        # The batches actually run: a policy may end an epoch early (``progress_limit``).
        self.history.record(f"{prefix}_batch_count", n_batches)
        self.history.record(key, mean_loss)
        self.history.record(f"{key}_best", mean_loss < best_before)
        if predictions:
            accuracy = weighted_accuracy(
                *(torch.cat(part) for part in zip(*predictions, strict=True))
            )
            acc_key = f"{prefix}_acc"
            best_before = max(
                (epoch[acc_key] for epoch in self.history[:-1] if acc_key in epoch),
                default=-math.inf,
            )
            self.history.record(acc_key, accuracy)
            self.history.record(f"{acc_key}_best", accuracy > best_before)

    def get_dataset(self, X: Any, y: Any = None) -> TensorDataset:
        """Hold ``X`` (and encoded labels ``y``) as a :class:`TensorDataset`.

        ``X`` is a :class:`TensorDataset` (returned as is) or NumPy, pandas or
        torch data shaped as the network expects; ``y``, when given, holds
        class indices, and every example weighs 1.
        """
        if isinstance(X, TensorDataset):
            return X
        if isinstance(X, Tensor):
            inputs = X.float()
        else:
            inputs = torch.tensor(np.asarray(X, dtype=np.float32))
        if y is None:
            return TensorDataset(inputs)
        labels = torch.as_tensor(y if isinstance(y, Tensor) else np.asarray(y), dtype=torch.int64)
        labels = labels.to(inputs.device)
        return TensorDataset(inputs, labels, torch.ones(len(labels), device=inputs.device))

    def get_iterator(self, dataset: TensorDataset, training: bool = False) -> TensorBatches:
        order = self._epoch_order if training else None
        return TensorBatches(dataset, self.batch_size, self.device, epoch_order=order)

    def _epoch_order(self) -> Iterator[Tensor]:
        """The index tensors of one training epoch's minibatches, from the policy."""
        return self.policy.epoch_batches(self.batch_size)

    def initialize_module(self) -> ReweightingNet:
        super().initialize_module()
        self._weighted_layers = weighted_layers(self.module_)
        self.grad_scaler_ = (
            torch.amp.GradScaler(torch.device(self.device).type)
            if self.precision == "fp16"
            else None
        )
        return self

    def __getstate__(self) -> dict[str, Any]:
        # skorch pickles module_ apart from the other attributes: the weighted layers,
        # references into module_, are found again after unpickling.
        state = super().__getstate__()
        state.pop("_weighted_layers", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "module_" in self.__dict__:
            self._weighted_layers = weighted_layers(self.module_)

    def on_train_begin(self, net: NeuralNet, X: TensorDataset = None, **kwargs):
        """Start the policy on the training set ``X``, and the augmentation's generator.

        Before every callback's ``on_train_begin``: a
        :class:`~sk_reweight.TrainingCheckpoint` then resumes their states.
        """
        super().on_train_begin(net, X=X, **kwargs)
        self._records_batches = any(
            isinstance(callback, BatchScoring | PassthroughScoring)
            for _, callback in self.callbacks_
        )
        device = X.X.device
        self.policy.reset(len(X), torch.Generator().manual_seed(self.seed), device)
        self.policy.progress_limit = self.max_epochs
        self.policy.begin_training(self.module_, X)
        self._policy_training = True
        if self.augmentation is not None:
            self.augmentation_generator = augmentation_generator(self.seed, self.device)

    def on_train_end(self, net: NeuralNet, **kwargs):
        if len(self.history) and STOP_REASON not in self.history[-1]:
            # A stopping rule records its own stop; otherwise the ceiling or a callback ended it.
            ceiling = self.policy.progress >= self.max_epochs
            self.history.record(STOP_REASON, MAX_EPOCHS if ceiling else CALLBACK)
        self._policy_training = False
        self.policy.end_training()
        self.augmentation_generator = None
        super().on_train_end(net, **kwargs)

    def on_epoch_begin(self, net: NeuralNet, **kwargs):
        if self.policy.progress >= self.max_epochs:
            raise ScheduleComplete
        super().on_epoch_begin(net, **kwargs)

    def on_epoch_end(self, net: NeuralNet, **kwargs):
        super().on_epoch_end(net, **kwargs)
        self.history.record("lr", self.optimizer_.param_groups[0]["lr"])
        for name, value in self.policy.epoch_statistics().items():
            self.history.record(name, value)

    def train_step(self, batch: Batch, **fit_params: Any) -> dict[str, Tensor]:
        """One training step, in order: zero the gradients, set the learning rate, augment,
        forward, the policy's weights, backward (unscaled for ``'fp16'``), the callbacks'
        ``on_grad_computed``, the optimizer's step.

        The learning rate is ``lr * lr_schedule(progress) * policy.lr_factor()``.
        Returns the recorded loss (see the class docstring) and the logits.
        """
        self.optimizer_.zero_grad(set_to_none=True)
        self._set_learning_rate(
            self.lr * self.lr_schedule(self.policy.progress) * self.policy.lr_factor()
        )
        if not self.module_.training:
            self.module_.train()
        X, targets = batch
        y, sample_weight = targets.y, targets.sample_weight
        if self.augmentation is not None:
            X = augment(X, self.augmentation, self.augmentation_generator)
        importance = self.policy.sampling_weights()
        autocast = PRECISIONS[self.precision]
        with (
            example_weights(self._weighted_layers, importance),
            torch.autocast(X.device.type, dtype=autocast, enabled=autocast is not None),
        ):
            output = self.infer(X, **fit_params)
        # Losses, and so the policies' weights and RAIS's gain ratio, in float32 (the cast is a
        # no-op for fp32); the policy gets the module's output itself (RAIS's probe reads it).
        logits = output.float()
        losses = self.criterion_(logits, y)
        detached = losses.detach()
        total_weight = total_sample_weight(sample_weight)
        example_weight = self.policy.loss_weights(
            TrainingStep(X, y, targets.indices, sample_weight, output, detached)
        )
        objective = weighted_mean_loss(losses, sample_weight, example_weight, total_weight)
        if self.grad_scaler_ is None:
            objective.backward()
        else:
            self.grad_scaler_.scale(objective).backward()
            self.grad_scaler_.unscale_(self.optimizer_)  # callbacks see the true gradients
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
        )
        if self.grad_scaler_ is None:
            self.optimizer_.step()
        else:  # skips a step whose gradients are not finite, then updates its scale
            self.grad_scaler_.step(self.optimizer_)
            self.grad_scaler_.update()
        if example_weight is not None:
            objective = weighted_mean_loss(detached, sample_weight, importance, total_weight)
        return {"loss": objective.detach(), "y_pred": logits.detach()}

    def _set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer_.param_groups:
            group["lr"] = lr

    def get_loss(
        self, y_pred: Tensor, y_true: Targets, X: Any = None, training: bool = False
    ) -> Tensor:
        """The sample-weighted mean cross-entropy (skorch's validation step)."""
        return weighted_mean_loss(self.criterion_(y_pred, y_true.y), y_true.sample_weight)
