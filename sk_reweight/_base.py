"""The scikit-learn facade shared by every classifier of the package.

:class:`BaseReweightingClassifier` validates input, encodes labels, combines
``sample_weight`` and ``class_weight``, seeds the random number generators,
builds the network and a :class:`~sk_reweight._engine.ReweightingNet` (stored as
``net_``) and predicts. Subclasses only say which
:class:`~sk_reweight._policies.MinibatchPolicy` trains the network.
"""

from __future__ import annotations

import copy
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from skorch.callbacks import LRScheduler
from skorch.helper import predefined_split
from torch import nn

from ._augmentation import AUGMENTATIONS, augmentation_generator
from ._convergence import MAX_EPOCHS, STOP_REASON, StoppingRule, divergence_finding
from ._data import TensorDataset
from ._devices import resolve_device
from ._documentation import api_page_template
from ._engine import PRECISIONS, ReweightingNet
from ._fit_context import RunningFit, fitting, initial_weights_drawn, owns_global_generator
from ._inputs import (
    channels_last_message,
    looks_channels_last,
    non_numeric_columns,
    non_numeric_message,
)
from ._modules import default_module
from ._output import EpochProgressBar
from ._persistence import load_net_state, loading_device, saved_net
from ._policies import MinibatchPolicy
from ._schedules import LRSchedule, resolve_lr_schedule

ModuleFactory = Callable[[tuple[int, ...], int], nn.Module]
"""``module(input_shape, n_classes)`` builds the network for examples of ``input_shape``."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
}

SHARED_PARAMETERS_DOC = """\
    module : None, torch.nn.Module or callable, default=None
        The network; it must return one logit per class. ``None`` picks a
        default from the input: an MLP for 2-D ``X``, a compact VGG-style CNN
        (three 3x3 convolution blocks with batch normalisation, two max-pools,
        the feature maps flattened into the dense head) for images shaped
        ``(n, H, W)`` or ``(n, C, H, W)``. A module instance is deep-copied and
        its layers re-initialised under ``random_state`` at every fit. A
        callable (e.g. a module class) is called as
        ``module(input_shape, n_classes)``, with ``input_shape`` the shape of
        one example, such as ``(n_features,)`` or ``(C, H, W)``.

    hidden_layer_sizes : array-like of int, default=(100,)
        Widths of the hidden dense layers of the default network (for the CNN,
        of its head after the flattened feature maps).

    dropout : float in [0, 1), default=0.0
        Dropout probability after every hidden dense layer of the default
        network.

    augmentation : {None, 'crop', 'crop_flip'}, default=None
        Augmentation of images, as the RAIS paper trains on them (section 6):
        every training minibatch is transformed anew on the training device,
        before the forward pass; prediction, ``predict_proba`` and the
        validation split of ``early_stopping`` see the images as they are.
        ``'crop'`` pads each image with ``p = ceil(min(H, W) / 8)`` zeros on
        every side (4 pixels for 32x32 and 28x28 images, as the paper and
        He et al. 2016 pad CIFAR; 1 for 8x8) and crops it back to ``H x W``
        at an offset drawn uniformly per image: a random translation by up
        to ``p`` pixels. ``'crop_flip'`` also mirrors each image left to
        right with probability 1/2, which suits photographs but not digits
        or text. The draws come from a generator derived from
        ``random_state``, apart from the minibatch order's. Only for images
        shaped ``(n, H, W)`` or ``(n, C, H, W)``: tabular input is refused.

    optimizer : {'sgd', 'adam', 'adamw', 'adagrad'} or torch optimizer class, default='adam'
        The optimizer. A class receives ``lr`` and ``weight_decay`` (and
        ``momentum`` when it is ``torch.optim.SGD``).

    lr : float > 0, default=1e-3
        Base learning rate.

    momentum : float in [0, 1], default=0.9
        Momentum of SGD; ignored by the other optimizers.

    weight_decay : float >= 0, default=0.0
        L2 penalty (decoupled for AdamW).

    batch_size : int >= 1, default=128
        Examples per minibatch (the whole training set when larger).

    max_epochs : int >= 1, default=100
        The most epochs training may take (:class:`RAISClassifier`: epochs
        equivalent), the ceiling of the stopping rule (``n_iter_no_change``);
        exactly this many with ``n_iter_no_change=None`` or a decaying
        ``lr_schedule``, which are planned over it.

    lr_schedule : {None, 'cosine', 'step'} or callable, default=None
        Multiplier of ``lr`` as a function of the fractional epoch, updated at
        every step: ``None`` keeps ``lr``; ``'cosine'`` anneals it to 0 over
        ``max_epochs``; ``'step'`` divides it by 10 at 50 % and 75 % of
        ``max_epochs``; a callable ``f(epoch: float) -> float`` is used as is
        (define it at module level to keep the estimator picklable). A
        schedule is a plan over ``max_epochs`` epochs: training runs all of
        them, and the stopping rule on the training loss does not apply
        (with ``early_stopping=True`` the validation loss still stops it).

    class_weight : None, 'balanced' or dict, default=None
        Weights of the classes, multiplied into ``sample_weight``, as in
        :class:`sklearn.linear_model.LogisticRegression`. ``'balanced'`` uses
        ``n_samples / (n_classes * np.bincount(y))``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified),
        let the stopping rule watch the validation loss instead of the
        training loss, and restore the weights of the best epoch (the lowest
        validation loss, by ``tol``) when training ends, as
        :class:`~sklearn.neural_network.MLPClassifier` does.

    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out for early stopping.

    n_iter_no_change : int >= 1 or None, default=10
        The stopping rule of :class:`~sklearn.neural_network.MLPClassifier`:
        training ends once the training loss (with ``early_stopping``, the
        validation loss) has not decreased by more than ``tol`` below its
        best value for ``n_iter_no_change`` epochs, or at ``max_epochs``,
        whichever comes first; reaching ``max_epochs`` first raises a
        :class:`~sklearn.exceptions.ConvergenceWarning`.
        ``history_[-1, 'stop_reason']`` says which ended the fit. :class:`RAISClassifier`
        counts these epochs in epochs equivalent, as its ``max_epochs``. The
        training-loss rule applies to a constant learning rate only
        (``lr_schedule=None``). ``None`` turns the rule off: training runs
        exactly ``max_epochs`` epochs, without the warning (with
        ``early_stopping``, the best epoch is still restored).

    tol : float >= 0, default=1e-4
        Smallest decrease of the watched loss that counts as improvement.

    device : str or torch.device, default='auto'
        Where to train: ``'auto'`` takes CUDA when available, else the CPU;
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``, ... name a device,
        which ``fit`` checks before training (:func:`~sk_reweight.resolve_device`: a
        backend this machine lacks is a ``ValueError`` saying so).
        On a GPU the training data are copied to the device once when they
        fit into half of its free memory, and streamed per batch otherwise.

    precision : {'fp32', 'bf16', 'fp16'}, default='fp32'
        Mixed-precision training: ``'bf16'`` or ``'fp16'`` run the training
        forward pass under :func:`torch.autocast` in bfloat16 or float16
        (faster on GPUs with tensor cores; ``'bf16'`` also works on CPUs).
        Losses, the RGD and RAIS weights and RAIS's gain ratio stay in
        float32, (PT) in float64; ``'fp16'`` adds a gradient scaler.
        Prediction is in float32. Results differ from ``'fp32'`` in the
        low-order digits.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, the validation split and the
        order of minibatches. With an int, fitting twice on the CPU with the
        same number of torch threads gives identical networks; the
        classifiers leave ``torch.get_num_threads()`` as the process has it
        (joblib's workers get fewer), see :doc:`/saving`.

    verbose : int, default=0
        0 is silent; 1 prints a table row per epoch to standard output
        (losses, validation accuracy with ``early_stopping``, learning rate,
        weight statistics, duration); 2 also shows a progress bar over each
        epoch's minibatches, on the same stream, erased before the epoch's
        row. On a terminal or in a Jupyter notebook the best values are
        coloured; redirected to a file or a pipe, the table is plain text (no
        escape codes) and no bar is drawn. ``NO_COLOR=1`` in the environment
        turns the colours off everywhere.

    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (deep-copied at every fit), e.g.
        :class:`~skorch.callbacks.EpochScoring`,
        :class:`~skorch.callbacks.Checkpoint` or
        :class:`~skorch.callbacks.EarlyStopping`. They act on ``net_``, a
        :class:`skorch.NeuralNetClassifier` trained on the class indices
        ``0 .. n_classes - 1`` (positions in ``classes_``): scorers see
        those as ``y``, and ``net_`` takes inputs shaped as the network
        does (``input_shape_``). The validation split exists only with
        ``early_stopping=True``; without it, monitor training scores
        (``'train_loss'``, ``monitor=None`` for checkpoints).
        ``EpochScoring(on_train=True)`` scores the minibatches as the policy
        drew them, with the predictions made before each step: for
        :class:`RAISClassifier` after its first epoch, draws with
        replacement, in which examples repeat and others are missing
        (``use_caching=False`` scores the whole training set instead, at the
        cost of predicting it every epoch).
        :class:`~skorch.callbacks.BatchScoring` (and
        :class:`~skorch.callbacks.PassthroughScoring`) make every batch
        record its size and loss, a device synchronisation per batch that
        the default loop avoids. :class:`~skorch.callbacks.LRScheduler` is
        refused: the learning rate is set at every step from
        ``lr_schedule``. :class:`~sk_reweight.TrainingCheckpoint` makes a
        long fit resumable after a crash.

    warm_start : bool, default=False
        When refitting, start from the fitted network's weights and optimizer
        state instead of a fresh initialisation; the learning-rate schedule
        and the policy start over, and ``history_`` is extended. ``lr``,
        ``batch_size``, ``max_epochs``, ``lr_schedule``, ``augmentation``, the
        stopping rule's (``early_stopping``, ``n_iter_no_change``, ``tol``) and
        the policy's own parameters take their new values; the network,
        optimizer, device (unless moved by :meth:`to_device`) and callbacks
        stay those of the first fit.
"""

SHARED_ATTRIBUTES_DOC = """\
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    n_features_in_ : int
        Number of features (for images: size of the second axis of ``X``).

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame with string column names.

    input_shape_ : tuple of int
        Shape of one example as the network sees it: ``(n_features,)`` or
        ``(C, H, W)``.

    net_ : skorch.NeuralNetClassifier
        The fitted skorch net, on class indices (positions in ``classes_``);
        ``net_.module_`` is the trained torch module. Pickle and
        ``skops.io`` save it as state dicts (:doc:`/saving`), loading it
        on its training device if present, else on the CPU; :meth:`to_device`
        moves it.

    history_ : skorch.History
        Per-epoch records: ``train_loss`` (mean cross-entropy, not reweighted),
        ``valid_loss`` and ``valid_acc`` (with early stopping: the
        sample-weighted accuracy on the validation split, as
        :class:`~sklearn.neural_network.MLPClassifier`'s
        ``validation_scores_``), whether each is the best so far
        (``train_loss_best``, ``valid_loss_best``, ``valid_acc_best``),
        ``lr``, ``dur``, the policy's statistics and what the ``callbacks``
        record. The last epoch of every fit records why training ended,
        ``stop_reason``: ``'no_improvement'`` (the stopping rule of
        ``n_iter_no_change``), ``'max_epochs'`` or ``'callback'`` (one of
        ``callbacks``, e.g. skorch's :class:`~skorch.callbacks.EarlyStopping`).

    n_iter_ : int
        Number of epochs trained (over all warm-started fits).

    loss_curve_ : list of float
        ``train_loss`` per epoch.

    validation_loss_curve_ : list of float or None
        ``valid_loss`` per epoch with early stopping, else None.

    best_validation_loss_ : float or None
        Lowest validation loss with early stopping (its weights were
        restored), else None.
"""


def fill_shared_docs(cls: type) -> type:
    """Replace the ``{shared_parameters}`` and ``{shared_attributes}`` lines of a class docstring.

    The placeholders stand indented like the section entries, so that the
    docstring's own indentation stays uniform.
    """
    cls.__doc__ = cls.__doc__.replace(
        "    {shared_parameters}", SHARED_PARAMETERS_DOC.rstrip()
    ).replace("    {shared_attributes}", SHARED_ATTRIBUTES_DOC.rstrip())
    return cls


def private_tensor(X: NDArray[np.float32], given: Any) -> torch.Tensor:
    """A tensor of the validated inputs ``X`` that shares no memory with the caller's ``given``.

    When validation converted the caller's data (float64 to float32, a
    DataFrame or a list to an array), ``X`` is a new array that owns its
    memory, and the tensor takes it over without a copy: 4 bytes per feature
    and row less at the peak of ``fit`` (191 MiB per million rows of 50
    features). Otherwise ``X`` is the caller's array or a view of it, and is
    copied, so that training never holds a view of the caller's data.
    """
    fresh = X is not given and X.flags.owndata and X.flags.writeable
    return torch.from_numpy(X) if fresh else torch.tensor(X)


def data_device(device: torch.device, nbytes: int) -> torch.device:
    """Where the training tensors live: on a GPU when they take under half of its free memory."""
    if device.type != "cuda":
        return device
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return device if nbytes < free_bytes // 2 else torch.device("cpu")


@contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch's global generators for the duration of a fit, then restore them.

    The yielded CPU generator drives the minibatch policy. The initial weights
    are drawn in :func:`~sk_reweight._fit_context.initial_weights_drawn` and
    the default networks' dropout from the fit's own generator; a user's module
    that draws from the global generators is reproducible in the main thread,
    the only one where a fit seeds them (elsewhere fits would race on them).
    """
    if not owns_global_generator():
        yield torch.Generator().manual_seed(seed)
        return
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise every submodule that knows how (``reset_parameters``)."""
    for submodule in module.modules():
        if callable(getattr(submodule, "reset_parameters", None)):
            submodule.reset_parameters()


def _silent(*args: Any, **kwargs: Any) -> None:
    """Message sink of early stopping when ``verbose=0``."""


class BaseReweightingClassifier(ClassifierMixin, BaseEstimator):
    """Base class of the classifiers: everything but the minibatch policy.

    Subclasses implement :meth:`_make_policy`. See :class:`ERMClassifier` for
    the parameters.
    """

    _doc_link_module = "sk_reweight"
    """scikit-learn links the HTML representation of this package's estimators only."""

    @property
    def _doc_link_template(self) -> str:
        """The API page of the class, for the "?" link and the parameter tooltips of the
        HTML representation (:mod:`sk_reweight._documentation`)."""
        return api_page_template()

    _parameter_constraints: dict = {
        "module": [None, nn.Module, callable],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "augmentation": [None, StrOptions(set(AUGMENTATIONS))],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr_schedule": [None, StrOptions({"cosine", "step"}), callable],
        "class_weight": [None, dict, StrOptions({"balanced"})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [None, list],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        *,
        module: nn.Module | ModuleFactory | None = None,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        dropout: float = 0.0,
        augmentation: str | None = None,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        max_epochs: int = 100,
        lr_schedule: str | LRSchedule | None = None,
        class_weight: str | dict | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 10,
        tol: float = 1e-4,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        callbacks: list | None = None,
        warm_start: bool = False,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.augmentation = augmentation
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr_schedule = lr_schedule
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start

    @abstractmethod
    def _make_policy(self) -> MinibatchPolicy:
        """Return a fresh minibatch policy configured from the parameters."""

    # ------------------------------------------------------------------ input

    _VALIDATION_KWARGS: dict[str, Any] = dict(ensure_2d=False, allow_nd=True, dtype=np.float32)

    def _validate_training_data(self, X: ArrayLike, y: ArrayLike, *, reset: bool):
        """Validate ``X`` and ``y`` for fitting; ``X`` comes back shaped for the network."""
        X, y = self._validated_input(X, y=y, reset=reset)
        return self._shape_examples(X, reset=reset), y

    def _validate_X(self, X: ArrayLike) -> NDArray[np.float32]:
        """Validate ``X`` for prediction against what the classifier was fitted on."""
        X = self._validated_input(X, reset=False)
        return self._shape_examples(X, reset=False)

    def _validated_input(self, X: ArrayLike, **kwargs: Any):
        """``validate_data``, whose error for non-numeric columns names them and the fix."""
        try:
            return validate_data(self, X, **kwargs, **self._VALIDATION_KWARGS)
        except ValueError as exc:
            columns = non_numeric_columns(X)
            if not columns:
                raise
            raise ValueError(non_numeric_message(columns, str(exc))) from exc

    def _shape_examples(self, X: NDArray[np.float32], *, reset: bool) -> NDArray[np.float32]:
        """Check or set ``n_features_in_`` and ``input_shape_``; add a channel axis to (n, H, W).

        ``validate_data`` checks the feature count only of 2-D input, so it is
        done here for every shape. Images that look channels last, (n, H, W, C)
        with C in (1, 3, 4), are refused for the default network (which would
        read them as H channels of W x C images); a ``module`` of the user's
        reads whatever layout it is given.
        """
        if X.ndim not in (2, 3, 4):
            raise ValueError(
                f"{type(self).__name__} expects X of shape (n_samples, n_features) or images "
                f"(n_samples, H, W) / (n_samples, C, H, W); got an array with shape {X.shape}. "
                "Reshape your data, e.g. with X.reshape(-1, 1) for a single feature."
            )
        if reset and self.module is None and looks_channels_last(X.shape):
            raise ValueError(channels_last_message(X.shape))
        examples = X[:, None] if X.ndim == 3 else X
        if reset:
            self.n_features_in_ = X.shape[1]
            self.input_shape_ = tuple(examples.shape[1:])
        elif X.ndim == 2 and len(self.input_shape_) == 1:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        elif tuple(examples.shape[1:]) != self.input_shape_:
            raise ValueError(
                f"X has examples of shape {tuple(examples.shape[1:])}, but "
                f"{type(self).__name__} was fitted on examples of shape {self.input_shape_}."
            )
        return examples

    def _check_augmentation(self, X: NDArray[np.float32]) -> None:
        """Refuse ``augmentation`` for input that is not images (``X`` shaped for the network)."""
        if self.augmentation is None:
            return
        if X.ndim != 4:
            raise ValueError(
                f"augmentation={self.augmentation!r} needs images shaped (n, C, H, W) or "
                f"(n, H, W); got tabular input with shape {X.shape}; set augmentation=None."
            )

    def _encode_labels(
        self, y: NDArray, reset: bool, classes: ArrayLike | None = None
    ) -> NDArray[np.int64]:
        """Class indices of ``y``; ``reset`` sets ``classes_`` (from ``classes``, else ``y``)."""
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes, but y "
                    f"contains only one class: {self.classes_.tolist()[0]!r}."
                )
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains new classes {list(unseen)}, not among {list(self.classes_)}: "
                "the classes of the first fit (warm_start=True) or those passed as classes= "
                "to the first partial_fit."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _training_weights(self, X: NDArray, y: NDArray, sample_weight: ArrayLike | None):
        """``sample_weight`` (default ones) times the ``class_weight`` of each example."""
        weights = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if self.class_weight is not None:
            weights = weights * compute_sample_weight(self.class_weight, y)
        if not weights.sum() > 0:
            raise ValueError("sample_weight (times class_weight) must have a positive sum.")
        return weights.astype(np.float32)

    def _optimizer_kwargs(self) -> dict[str, Any]:
        optimizer = OPTIMIZERS.get(self.optimizer, self.optimizer)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise TypeError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer; got {self.optimizer!r}."
            )
        kwargs: dict[str, Any] = {
            "optimizer": optimizer,
            "optimizer__weight_decay": self.weight_decay,
        }
        if optimizer is torch.optim.SGD:
            kwargs["optimizer__momentum"] = self.momentum
        return kwargs

    def _build_module(self, X: NDArray) -> nn.Module:
        """Build the network and check that it maps ``X`` to one logit per class."""
        with initial_weights_drawn():
            module = self._new_module()
        self._check_module_output(module, X[:2], len(self.classes_))
        return module

    def _new_module(self) -> nn.Module:
        """A freshly initialised network for ``input_shape_`` and ``classes_``."""
        n_classes = len(self.classes_)
        hidden_layer_sizes = tuple(int(width) for width in np.atleast_1d(self.hidden_layer_sizes))
        if not all(width >= 1 for width in hidden_layer_sizes):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers; "
                f"got {self.hidden_layer_sizes!r}."
            )
        if self.module is None:
            module = default_module(self.input_shape_, n_classes, hidden_layer_sizes, self.dropout)
        elif isinstance(self.module, nn.Module):
            module = copy.deepcopy(self.module)
            reset_parameters(module)
        else:
            module = self.module(self.input_shape_, n_classes)
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"module(input_shape, n_classes) must return a torch.nn.Module; "
                    f"got {type(module).__name__}."
                )
        return module

    @staticmethod
    def _check_module_output(module: nn.Module, X_probe: NDArray, n_classes: int) -> None:
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                # A copy of two rows: torch warns about (and may not) view a read-only array.
                output = module(torch.tensor(X_probe))
        except Exception as exc:
            raise ValueError(
                f"module failed on input of shape {X_probe.shape}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            module.train(was_training)
        if tuple(output.shape) != (len(X_probe), n_classes):
            raise ValueError(
                f"module must return logits of shape (n_samples, n_classes) = "
                f"{(len(X_probe), n_classes)}; got {tuple(output.shape)}."
            )

    def _train_validation_split(
        self, dataset: TensorDataset, y: NDArray[np.int64], seed: int
    ) -> tuple[TensorDataset, TensorDataset | None, NDArray[np.intp]]:
        """The training set, the held-out validation set (early stopping only) and
        the positions of the training examples in ``dataset``.

        The split is stratified whenever both parts can hold every class.
        """
        if not self.early_stopping:
            return dataset, None, np.arange(len(y))
        n_valid = int(np.ceil(self.validation_fraction * len(y)))
        if n_valid >= len(y):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training data "
                f"out of {len(y)} samples."
            )
        n_classes = len(self.classes_)
        can_stratify = min(n_valid, len(y) - n_valid) >= n_classes and np.bincount(y).min() >= 2
        train, valid = train_test_split(
            np.arange(len(y)),
            test_size=n_valid,
            random_state=seed,
            stratify=y if can_stratify else None,
        )
        return dataset.subset(train), dataset.subset(valid), train

    def _stopping_rule_parameters(self) -> dict[str, Any]:
        """What :class:`~sk_reweight._convergence.StoppingRule` watches in this fit, and how.

        The validation loss with ``early_stopping`` (its best epoch restored),
        else the training loss. The rule stops nothing (``patience=None``)
        when ``n_iter_no_change`` is None, or when it watches the training
        loss under a learning-rate schedule: a schedule is a plan over
        ``max_epochs`` that the user chose, and runs to its end.
        """
        stops = self.n_iter_no_change is not None and (
            self.early_stopping or self.lr_schedule is None
        )
        return {
            "monitor": "valid_loss" if self.early_stopping else "train_loss",
            "patience": self.n_iter_no_change if stops else None,
            "threshold": self.tol,
            "load_best": self.early_stopping,
        }

    def _callbacks(self) -> list:
        sink = print if self.verbose else _silent
        callbacks: list = []
        if self.verbose >= 2:  # first: the bar is erased before anything else prints
            callbacks.append(("progress_bar", EpochProgressBar()))
        rule = StoppingRule(**self._stopping_rule_parameters(), sink=sink)
        callbacks.append(("stopping_rule", rule))
        user_callbacks = copy.deepcopy(list(self.callbacks or []))
        for entry in user_callbacks:
            callback = entry[1] if isinstance(entry, tuple) else entry
            if isinstance(callback, LRScheduler):
                raise ValueError(
                    f"{type(self).__name__} sets the learning rate at every step from its "
                    "lr_schedule parameter (None, 'cosine', 'step' or a callable of the "
                    "fractional epoch); pass the schedule as lr_schedule instead of a skorch "
                    "LRScheduler callback."
                )
        return callbacks + user_callbacks

    # -------------------------------------------------------------------- fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None):
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) or (n_samples, C, H, W)
            Training inputs, numeric (encode categorical columns first, e.g.
            with a ColumnTransformer and a OneHotEncoder in a Pipeline);
            images channels first. A DataFrame's column names are recorded.
        y : array-like of shape (n_samples,)
            Class labels (strings, integers or booleans).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights. Each minibatch minimises the weighted mean of
            its (policy-weighted) losses, ``sum(w * loss) / sum(w)``, as in
            :class:`~sklearn.neural_network.MLPClassifier`.

        Returns
        -------
        self : object
            The fitted classifier.

        Raises
        ------
        KeyboardInterrupt
            At a Ctrl-C, after the current training step. As after any error,
            the classifier is left as it was before ``fit``.
        FloatingPointError
            When the training loss of an epoch is not finite.

        Warns
        -----
        ConvergenceWarning
            When the training loss diverged (it exceeded 10 x
            ``log(n_classes)``, or ended above both where it started and
            ``log(n_classes)``, the loss of a constant uniform prediction),
            naming the likely causes (unscaled features, too large ``lr``);
            otherwise when the stopping rule was active and ``max_epochs``
            came first.
        """
        with self._unchanged_on_error(in_place=self.warm_start):
            return self._fit(X, y, sample_weight)

    @contextmanager
    def _unchanged_on_error(self, in_place: bool) -> Iterator[None]:
        """Leave the classifier as it was when the block raises (a Ctrl-C included).

        ``in_place``: the block may train the fitted ``net_`` in place (a warm
        or incremental fit), so a copy of it is kept to restore.
        """
        previous_state = self.__dict__.copy()
        if in_place and hasattr(self, "net_"):
            previous_state["net_"] = copy.deepcopy(self.net_)
            previous_state["history_"] = previous_state["net_"].history
        try:
            yield
        except BaseException:
            self.__dict__ = previous_state
            raise

    def _supports_partial_fit(self) -> bool:
        return self._incremental

    _incremental = True
    """Whether the policy supports :meth:`partial_fit` (a fresh policy per chunk)."""

    _INCREMENTAL_PARAMETERS = {
        "max_epochs": 1,
        "lr_schedule": None,
        "early_stopping": False,
        "n_iter_no_change": None,
        "warm_start": True,
    }
    """What :meth:`partial_fit` trains with, whatever the parameters say."""

    @available_if(_supports_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        classes: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ):
        """Train on one chunk of data, one pass over it, for data that arrive in chunks.

        scikit-learn's incremental learning (as
        :meth:`sklearn.neural_network.MLPClassifier.partial_fit`): the first
        call builds the network and must name every class in ``classes``;
        each call then makes one pass (one epoch, in minibatches of
        ``batch_size``) over the chunk it is given, continuing from the
        network and optimizer state of the previous call (or of ``fit``).

        A call trains at the **constant** learning rate ``lr``:
        ``lr_schedule`` applies to :meth:`fit` only, because a schedule needs
        to know the length of training. ``early_stopping`` does not apply
        either (a chunk is not split for validation), nor the stopping rule
        of ``n_iter_no_change``: a call is one epoch, and never warns that
        ``max_epochs`` was reached. Every call draws a new
        minibatch order from ``random_state`` and the number of epochs
        trained so far. A call is one epoch of a fresh policy: RGD's
        ``warmup_epochs``, if any, leaves every call unweighted.
        ``class_weight='balanced'`` is refused, since balance over one chunk
        is not balance over the data; pass a dict.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or images
            One chunk of training inputs, shaped as in ``fit``.
        y : array-like of shape (n_samples,)
            Its labels, all among ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data. Required on the first call, and
            ignored (but checked) afterwards.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the chunk's examples.

        Returns
        -------
        self : object
            The classifier, trained on one more chunk.

        Raises
        ------
        KeyboardInterrupt
            At a Ctrl-C, after the current step; the classifier is left as it
            was before the call.
        """
        first_call = not hasattr(self, "net_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not (first_call or classes is None) and not np.array_equal(
            np.unique(classes), self.classes_
        ):
            raise ValueError(
                f"classes={list(np.unique(classes))} is not the same as on the first call to "
                f"partial_fit: {list(self.classes_)}."
            )
        if isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: pass a dict of class "
                "weights computed over the whole data, e.g. with "
                "sklearn.utils.class_weight.compute_class_weight."
            )
        with self._unchanged_on_error(in_place=True), self._incremental_training():
            return self._fit(X, y, sample_weight, classes=classes if first_call else None)

    @contextmanager
    def _incremental_training(self) -> Iterator[None]:
        """Train with :attr:`_INCREMENTAL_PARAMETERS` in the block, then restore the parameters.

        The fit in the block sets the network's stopping rule from them: it
        watches the training loss of the chunk and stops nothing.
        """
        parameters = {name: getattr(self, name) for name in self._INCREMENTAL_PARAMETERS}
        self.__dict__.update(self._INCREMENTAL_PARAMETERS)
        try:
            yield
        finally:
            self.__dict__.update(parameters)

    def _fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None,
        classes: ArrayLike | None = None,
    ):
        """:meth:`fit` (and :meth:`partial_fit`), which restore the classifier when this raises.

        ``classes``, for a first fit: the classes, when ``y`` may lack some.
        """
        warm = self.warm_start and hasattr(self, "net_")
        given = X
        X, y = self._validate_training_data(X, y, reset=not warm)
        self._check_augmentation(X)
        y_encoded = self._encode_labels(y, reset=not warm, classes=classes)
        sample_weight = self._training_weights(X, y, sample_weight)
        device = resolve_device(self.device)
        base_seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        epochs_done = self.n_iter_ if warm else 0
        seed = int(np.random.SeedSequence([base_seed, epochs_done]).generate_state(1)[0] >> 1)

        dataset = TensorDataset(
            private_tensor(X, given), torch.from_numpy(y_encoded), torch.from_numpy(sample_weight)
        )
        dataset = dataset.to(data_device(device, dataset.nbytes))
        train_set, valid_set, self._training_rows = self._train_validation_split(
            dataset, y_encoded, seed
        )
        train_split = None if valid_set is None else predefined_split(valid_set)
        policy = self._make_policy()
        running = RunningFit(self, X, y_encoded, sample_weight, warm, seed)
        with seeded_torch(seed, device) as generator, fitting(running):
            policy.reset(len(train_set), generator, dataset.X.device)
            if warm:
                net = self.net_
                net.policy, net.train_split = policy, train_split
                net.lr_schedule = resolve_lr_schedule(self.lr_schedule, self.max_epochs)
                net.lr, net.batch_size, net.max_epochs = self.lr, self.batch_size, self.max_epochs
                net.augmentation = self.augmentation
                self._configure_stopping_rule(net)
            else:
                net = self._make_net(self._build_module(X), policy, device, train_split)
            if self.augmentation is not None:
                net.augmentation_generator = augmentation_generator(seed, net.device)
            train = net.partial_fit if warm else net.fit
            train(train_set)

        net.train_split = None  # the validation data are not part of the fitted model
        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self._warn_if_not_converged(net.history[epochs_done:])
        self.loss_curve_ = list(net.history[:, "train_loss"])
        self.validation_loss_curve_ = (
            [epoch["valid_loss"] for epoch in net.history if "valid_loss" in epoch]
            if self.early_stopping
            else None
        )
        self.best_validation_loss_ = (
            min(self.validation_loss_curve_) if self.early_stopping else None
        )
        return self

    def _configure_stopping_rule(self, net: ReweightingNet) -> None:
        """Set the stopping rule of a fitted ``net`` from the parameters (a warm fit)."""
        for _, callback in net.callbacks_:
            if isinstance(callback, StoppingRule):
                callback.set_params(**self._stopping_rule_parameters())

    def _warn_if_not_converged(self, epochs: list[dict[str, Any]]) -> None:
        """Warn (:class:`~sklearn.exceptions.ConvergenceWarning`) about a fit that went wrong.

        ``epochs`` are the history records of this fit. A diverged training
        loss (:func:`~sk_reweight._convergence.divergence_finding`) is named
        with its likely causes and fixes; otherwise a fit whose stopping rule
        was active but that ended at ``max_epochs`` is announced, as
        :class:`~sklearn.neural_network.MLPClassifier` does.
        """
        if not epochs:
            return
        name = type(self).__name__
        finding = divergence_finding(
            [epoch["train_loss"] for epoch in epochs],
            [epoch["epoch"] for epoch in epochs],
            len(self.classes_),
        )
        if finding:
            warnings.warn(
                f"{name} diverged: {finding}. The usual causes are features on very different "
                f"or very large scales (unscaled inputs) and a learning rate too large for the "
                f"optimizer (lr={self.lr:g}). Scale the features, e.g. "
                f"make_pipeline(StandardScaler(), {name}(...)), and/or lower lr.",
                ConvergenceWarning,
                stacklevel=5,
            )
            return
        rule = self._stopping_rule_parameters()
        if rule["patience"] is None or epochs[-1].get(STOP_REASON) != MAX_EPOCHS:
            return
        watched = "validation loss" if self.early_stopping else "training loss"
        unit = "epochs equivalent" if self._counts_epochs_equivalent else "epochs"
        warnings.warn(
            f"{name} reached max_epochs={self.max_epochs} while its {watched} was still "
            f"improving (by more than tol={self.tol:g} within n_iter_no_change="
            f"{self.n_iter_no_change} {unit}): the fit may not have converged. Raise "
            "max_epochs to train longer, or pass n_iter_no_change=None to train exactly "
            "max_epochs epochs without this warning.",
            ConvergenceWarning,
            stacklevel=5,
        )

    _counts_epochs_equivalent = False
    """Whether the policy's progress (``max_epochs``, ``n_iter_no_change``) is in epochs
    equivalent rather than epochs (RAIS)."""

    def _make_net(
        self,
        module: nn.Module,
        policy: MinibatchPolicy,
        device: torch.device,
        train_split: Callable | None = None,
    ) -> ReweightingNet:
        """The skorch net training ``module`` under ``policy``, configured by the parameters."""
        return ReweightingNet(
            module,
            policy=policy,
            lr_schedule=resolve_lr_schedule(self.lr_schedule, self.max_epochs),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            classes=list(range(len(self.classes_))),
            callbacks=self._callbacks(),
            verbose=self.verbose,
            device=device,
            precision=self.precision,
            augmentation=self.augmentation,
            **self._optimizer_kwargs(),
        )

    # ----------------------------------------------------- saving and devices

    def __getstate__(self) -> dict[str, Any]:
        """The state that ``pickle`` and ``skops.io`` save: ``net_`` as tensors and plain values.

        See :mod:`sk_reweight._persistence`: the network's and the optimizer's
        state dicts (as safetensors blobs, on the CPU) and the history; no
        training or validation data, random generator or device object.
        """
        state = dict(super().__getstate__())
        if "net_" in state:
            state["net_"] = saved_net(state["net_"])
            state.pop("history_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop("net_", None)
        super().__setstate__(state)
        if saved is not None:
            self.net_ = self._restore_net(saved)
            self.history_ = self.net_.history

    def _restore_net(self, saved: dict[str, Any]) -> ReweightingNet:
        """Rebuild ``net_`` from :func:`~sk_reweight._persistence.saved_net`.

        The net goes to the device it was trained on when that exists, else
        to the CPU. Building the network draws initial weights, which the
        saved ones replace: the caller's random state is left alone.
        """
        device = loading_device(saved["device"])
        with initial_weights_drawn():
            net = self._make_net(self._new_module(), self._make_policy(), device)
            net.initialize()
        load_net_state(net, saved)
        return net

    def to_device(self, device: str | torch.device) -> BaseReweightingClassifier:
        """Move the fitted network and its optimizer state to ``device``.

        Use it to predict on another device than the one the model was
        trained or loaded on, e.g. ``model.to_device('cpu')`` before serving a
        GPU-trained model from CPU workers, or ``model.to_device('cuda')``
        after loading. A ``warm_start`` refit then trains there. The
        ``device`` parameter, which says where ``fit`` trains from scratch,
        is left unchanged.

        Parameters
        ----------
        device : str or torch.device
            ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... or ``'auto'``.

        Returns
        -------
        self : object
            The classifier, moved.
        """
        check_is_fitted(self)
        device = resolve_device(device)
        net = self.net_
        net.module_.to(device)
        net.criterion_.to(device)
        # Loading its own state dict moves the optimizer's state to its parameters' device.
        net.optimizer_.load_state_dict(net.optimizer_.state_dict())
        net.device = device
        return self

    # ---------------------------------------------------------------- predict

    def _logits(self, X: ArrayLike) -> torch.Tensor:
        check_is_fitted(self)
        X = self._validate_X(X)
        return self.net_.forward(TensorDataset(torch.tensor(X)), training=False, device="cpu")

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities: the softmax of the network's logits.

        Parameters
        ----------
        X : array-like of the same kind and shape as in ``fit``

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.
        """
        return torch.softmax(self._logits(X).double(), dim=1).numpy()

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Logarithm of :meth:`predict_proba`, computed stably from the logits."""
        return torch.log_softmax(self._logits(X).double(), dim=1).numpy()

    def predict(self, X: ArrayLike) -> NDArray:
        """Most probable class of each example, as labels from ``classes_``."""
        logits = self._logits(X)
        return self.classes_[logits.argmax(dim=1).numpy()]
