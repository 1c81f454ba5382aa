"""The scikit-learn facade shared by every classifier of the package.

:class:`BaseReweightingClassifier` reads top-down as a fit does: validate the
parameters into a :class:`~sk_reweight._fit_plan.FitPlan`, validate the data,
build the network (which the policy checks), hold the data as tensors, build
or configure the :class:`~sk_reweight._engine.ReweightingNet` from the plan,
train it, set the fitted attributes. Subclasses only say which
:class:`~sk_reweight.MinibatchPolicy` trains the network (``_make_policy``).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from skorch.helper import predefined_split
from torch import nn

from ._augmentation import AUGMENTATIONS
from ._convergence import StoppingRule, not_converged_message
from ._data import TensorDataset, data_device, private_tensor, train_validation_split
from ._devices import resolve_device
from ._documentation import api_page_template
from ._engine import PRECISIONS, ReweightingNet
from ._fit_context import RunningFit, fitting, initial_weights_drawn, seeded_torch
from ._fit_plan import OPTIMIZERS, FitPlan, plan_fit
from ._inputs import (
    check_augmentation,
    encoded_labels,
    training_weights,
    validated_examples,
)
from ._modules import ModuleFactory, build_module, check_module_output
from ._persistence import load_net_state, loading_device, saved_net, unchanged_on_error
from ._policies import MinibatchPolicy
from ._schedules import LRSchedule


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

    # ------------------------------------------------------ parameters: the plan

    def _check_parameters(self) -> None:
        """Checks of the parameters beyond their declared constraints (a subclass's hook).

        Called by :meth:`_plan`, after scikit-learn's declarative validation
        and before anything else of the fit.
        """

    def _plan(self, *, warm: bool, incremental: bool = False, classes: Any = None) -> FitPlan:
        """Validate every parameter and resolve them into the plan of this fit."""
        self._check_parameters()
        return plan_fit(
            self, self._make_policy(), warm=warm, incremental=incremental, classes=classes
        )

    # ----------------------------------------------------------------- module

    def _build_module(self, X: NDArray, plan: FitPlan) -> nn.Module:
        """Build the network (its weights drawn from the plan's seed) and check that it maps
        ``X`` to one logit per class."""
        with initial_weights_drawn(plan.seed):
            module = self._new_module(plan)
        check_module_output(module, X[:2], len(self.classes_))
        return module

    def _new_module(self, plan: FitPlan) -> nn.Module:
        """A freshly initialised network for ``input_shape_`` and ``classes_``."""
        return build_module(
            self.module,
            self.input_shape_,
            len(self.classes_),
            plan.hidden_layer_sizes,
            self.dropout,
        )

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
        plan = self._plan(warm=self.warm_start and hasattr(self, "net_"))
        with unchanged_on_error(self, in_place=plan.warm):
            return self._fit(plan, X, y, sample_weight)

    def _supports_partial_fit(self) -> bool:
        return self._make_policy().supports_partial_fit

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
        plan = self._plan(
            warm=not first_call, incremental=True, classes=classes if first_call else None
        )
        with unchanged_on_error(self, in_place=True):
            return self._fit(plan, X, y, sample_weight)

    def _fit(
        self, plan: FitPlan, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None
    ) -> BaseReweightingClassifier:
        """Train as ``plan`` says: :meth:`fit` and :meth:`partial_fit` restore the classifier
        when this raises."""
        given = X
        X, y = validated_examples(self, X, y, reset=not plan.warm)
        check_augmentation(plan.augmentation, X)
        y_encoded = encoded_labels(self, y, reset=not plan.warm, classes=plan.classes)
        sample_weight = training_weights(X, y, sample_weight, self.class_weight)
        device = torch.device(self.net_.device) if plan.warm else plan.device
        module = self.net_.module_ if plan.warm else self._build_module(X, plan)
        on_module_device = device if plan.warm else torch.device("cpu")  # built on the CPU
        plan.policy.check_module(module, torch.tensor(X[:2], device=on_module_device))

        dataset = TensorDataset(
            private_tensor(X, given), torch.from_numpy(y_encoded), torch.from_numpy(sample_weight)
        )
        dataset = dataset.to(data_device(device, dataset.nbytes))
        train_set, valid_set, training_rows = train_validation_split(
            dataset, y_encoded, plan.validation_fraction, plan.seed
        )
        train_split = None if valid_set is None else predefined_split(valid_set)
        net = self._training_net(plan, module, train_split)
        epochs_before = self.n_iter_ if plan.warm else 0
        running = RunningFit(self, X, y_encoded, sample_weight, plan.warm, plan.seed)
        with seeded_torch(plan.seed, device), fitting(running):
            (net.partial_fit if plan.warm else net.fit)(train_set)
        net.train_split = None  # the validation data are not part of the fitted model

        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        message = not_converged_message(
            type(self).__name__,
            net.history[epochs_before:],
            len(self.classes_),
            self.lr,
            plan.stopping,
            plan.max_epochs,
            plan.policy.progress_unit,
        )
        if message:
            warnings.warn(message, ConvergenceWarning, stacklevel=4)
        self.loss_curve_ = list(net.history[:, "train_loss"])
        validated = valid_set is not None
        self.validation_loss_curve_ = (
            [epoch["valid_loss"] for epoch in net.history if "valid_loss" in epoch]
            if validated
            else None
        )
        self.best_validation_loss_ = min(self.validation_loss_curve_) if validated else None
        self.__dict__.update(net.policy.fitted_attributes(training_rows, len(X)))
        return self

    def _training_net(
        self, plan: FitPlan, module: nn.Module, train_split: Any
    ) -> ReweightingNet:
        """The net that trains this fit: a new one on ``module``, or the fitted ``net_``
        (a warm fit), given the plan's settings either way."""
        settings = plan.net_settings(train_split)
        if not plan.warm:
            return ReweightingNet(
                module,
                **settings,
                classes=list(range(len(self.classes_))),
                callbacks=plan.callbacks,
                verbose=self.verbose,
                device=plan.device,
                precision=self.precision,
                optimizer=plan.optimizer,
                **plan.optimizer_kwargs,
            )
        net = self.net_
        for name, value in settings.items():
            setattr(net, name, value)
        for _, callback in net.callbacks_:
            if isinstance(callback, StoppingRule):
                callback.set_params(**plan.stopping.as_parameters())
        return net

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
        plan = plan_fit(
            self, self._make_policy(), warm=False, device=loading_device(saved["device"]), seed=0
        )
        with initial_weights_drawn():
            net = self._training_net(plan, self._new_module(plan), None)
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
        X = validated_examples(self, X, reset=False)
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
