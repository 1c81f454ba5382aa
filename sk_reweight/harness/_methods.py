"""The methods a benchmark compares: a registry of unfitted scikit-learn models.

Each entry builds, for one dataset, the classifier a user would fit: the
package's ERM / RGD / RAIS / InfoBatch estimators, and the choices a tabular user would
make instead (plain skorch, scikit-learn's MLPClassifier, histogram gradient
boosting). Every neural network gets the same architecture, optimizer,
minibatch size and epoch budget (a :class:`Budget`), so that their differences
come from the training method. With tuning, the paper's protocol is applied:
a small grid (the learning rate of every network, RGD's clip level ``tau``) is
searched on an inner stratified validation split of the training data, and the
best configuration is refit on all of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from skorch import NeuralNetClassifier

from sk_reweight import (
    ERMClassifier,
    InfoBatchClassifier,
    RAISClassifier,
    RGDClassifier,
    default_module,
    sigint_recorded,
)

CLASSIFIER_STEP = "classifier"
"""Name of the classifier step in every model's Pipeline (the prefix of the tuning grids)."""


@dataclass(frozen=True)
class Budget:
    """What every neural network of a benchmark shares.

    The defaults are a two-layer MLP of 256 units (for images: the package's
    compact VGG-style CNN with a 256-unit head), Adam at learning rate 1e-3 (the methods
    trained by SGD with momentum 0.9, RAIS, InfoBatch and ERM-SGD, at ``sgd_lr``),
    minibatches of 256 examples and 50 epochs without early stopping: every one of them
    is trained (the package's classifiers get ``n_iter_no_change=None``, which turns
    their default stopping rule off).
    """

    hidden_layer_sizes: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    sgd_lr: float = 0.03
    batch_size: int = 256
    max_epochs: int = 50
    device: str = "cpu"
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    sgd_lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1)
    tau_grid: tuple[float, ...] = (0.5, 1.0, 3.0)


def as_dense_float32(X: ArrayLike) -> NDArray[np.float32]:
    """A dense float32 array: what a torch network (and gradient boosting) is fed."""
    if sparse.issparse(X):
        X = X.toarray()
    return np.asarray(X, dtype=np.float32)


def flatten_images(X: ArrayLike) -> NDArray[np.float32]:
    """Images ``(n, ...)`` as rows of pixels ``(n, n_pixels)`` for models without convolutions."""
    X = np.asarray(X, dtype=np.float32)
    return X.reshape(len(X), -1)


def add_channel_axis(X: ArrayLike) -> NDArray[np.float32]:
    """Grey images ``(n, H, W)`` as ``(n, 1, H, W)``, the layout of a torch convolution."""
    X = np.asarray(X, dtype=np.float32)
    return X[:, None] if X.ndim == 3 else X


class PlainSkorchClassifier(NeuralNetClassifier):
    """skorch's NeuralNetClassifier as a tabular user would set it up.

    The network is the package's default one (``module__hidden_layer_sizes``,
    ``module__n_classes``); its input shape is read from ``X`` at every fit.
    Labels must be ``0 .. n_classes - 1``: skorch predicts class indices.
    """

    def fit(self, X: ArrayLike, y: ArrayLike | None = None, **fit_params):
        self.set_params(module__input_shape=tuple(np.shape(X)[1:]))
        return super().fit(X, y, **fit_params)

    def partial_fit(self, X: ArrayLike, y: ArrayLike | None = None, classes=None, **fit_params):
        """skorch's ``partial_fit``, except that a Ctrl-C raises :class:`KeyboardInterrupt`.

        skorch would swallow it and return a half-trained net, to be scored.
        """
        with sigint_recorded(stop_at_once=True) as sigint:
            super().partial_fit(X, y, classes, **fit_params)
        if sigint.received:
            raise KeyboardInterrupt
        return self


def _package_parameters(optimizer: str) -> Callable[[int, Budget], dict[str, Any]]:
    """Parameters of one of the package's classifiers: the shared budget and ``optimizer``."""

    def parameters(n_classes: int, budget: Budget) -> dict[str, Any]:
        return {
            "hidden_layer_sizes": budget.hidden_layer_sizes,
            "optimizer": optimizer,
            "lr": budget.sgd_lr if optimizer == "sgd" else budget.lr,
            "momentum": 0.9,
            "batch_size": budget.batch_size,
            "max_epochs": budget.max_epochs,
            "n_iter_no_change": None,  # the budget is a fixed number of epochs
            "device": budget.device,
        }

    return parameters


def _skorch_parameters(n_classes: int, budget: Budget) -> dict[str, Any]:
    return {
        "module": default_module,
        "module__n_classes": n_classes,
        "module__hidden_layer_sizes": budget.hidden_layer_sizes,
        "module__dropout": 0.0,
        "criterion": torch.nn.CrossEntropyLoss,
        "optimizer": torch.optim.Adam,
        "lr": budget.lr,
        "batch_size": budget.batch_size,
        "max_epochs": budget.max_epochs,
        "train_split": None,
        "iterator_train__shuffle": True,
        "device": budget.device,
        "verbose": 0,
    }


def _mlp_parameters(n_classes: int, budget: Budget) -> dict[str, Any]:
    # n_iter_no_change = max_iter: the full epoch budget, as for the other networks.
    return {
        "hidden_layer_sizes": budget.hidden_layer_sizes,
        "solver": "adam",
        "learning_rate_init": budget.lr,
        "batch_size": budget.batch_size,
        "max_iter": budget.max_epochs,
        "n_iter_no_change": budget.max_epochs,
    }


def _defaults(n_classes: int, budget: Budget) -> dict[str, Any]:
    return {}


def _no_grid(budget: Budget) -> dict[str, list]:
    return {}


@dataclass(frozen=True)
class BenchmarkMethod:
    """A method that the benchmark commands compare: an estimator class and its settings.

    ``bench`` cross-validates any of them, ``speed`` races those marked
    ``raced`` against uniform SGD, and the demo builds ERM and RGD from theirs.

    Attributes
    ----------
    label : str
        Name in tables and plots.
    classifier : type
        The scikit-learn classifier class.
    parameters : callable
        ``parameters(n_classes, budget)``: the classifier's parameters for a
        dataset of ``n_classes`` classes under the shared ``budget``.
    grid : callable
        ``grid(budget)``: the classifier's tuning grid (parameter names
        without the pipeline prefix); empty for untuned methods.
    seed_parameter : str or None
        The classifier's seed parameter; None when it has none (plain skorch
        draws from torch's global generator, which the benchmark seeds).
    convolutional : bool
        Whether the classifier takes images ``(n, H, W)`` as they are (else
        they are flattened to rows of pixels).
    raced : bool
        Whether ``sk-reweight speed`` can race it against uniform SGD: one of
        the package's classifiers, whose optimizer ``speed`` sets.
    """

    label: str
    classifier: type[BaseEstimator]
    parameters: Callable[[int, Budget], dict[str, Any]] = _defaults
    grid: Callable[[Budget], dict[str, list]] = _no_grid
    seed_parameter: str | None = "random_state"
    convolutional: bool = False
    raced: bool = False

    def build(self, n_classes: int, budget: Budget) -> BaseEstimator:
        """The unfitted classifier (without preprocessing) for ``n_classes`` classes."""
        return self.classifier(**self.parameters(n_classes, budget))


def _lr_grid(budget: Budget) -> dict[str, list]:
    return {"lr": list(budget.lr_grid)}


def _sgd_lr_grid(budget: Budget) -> dict[str, list]:
    return {"lr": list(budget.sgd_lr_grid)}


def _rgd_grid(budget: Budget) -> dict[str, list]:
    return {"lr": list(budget.lr_grid), "tau": list(budget.tau_grid)}


def _mlp_grid(budget: Budget) -> dict[str, list]:
    return {"learning_rate_init": list(budget.lr_grid)}


_ADAM, _SGD = _package_parameters("adam"), _package_parameters("sgd")

METHODS: dict[str, BenchmarkMethod] = {
    "erm": BenchmarkMethod("ERM", ERMClassifier, _ADAM, _lr_grid, convolutional=True, raced=True),
    "rgd": BenchmarkMethod("RGD", RGDClassifier, _ADAM, _rgd_grid, convolutional=True, raced=True),
    "rais": BenchmarkMethod(
        "RAIS", RAISClassifier, _SGD, _sgd_lr_grid, convolutional=True, raced=True
    ),
    "infobatch": BenchmarkMethod(
        "InfoBatch", InfoBatchClassifier, _SGD, _sgd_lr_grid, convolutional=True, raced=True
    ),
    "erm_sgd": BenchmarkMethod("ERM (SGD)", ERMClassifier, _SGD, _sgd_lr_grid, convolutional=True),
    "skorch": BenchmarkMethod(
        "skorch",
        PlainSkorchClassifier,
        _skorch_parameters,
        _lr_grid,
        seed_parameter=None,
        convolutional=True,
    ),
    "mlp": BenchmarkMethod("sklearn MLP", MLPClassifier, _mlp_parameters, _mlp_grid),
    "hgb": BenchmarkMethod("HistGradientBoosting", HistGradientBoostingClassifier),
}
"""The one registry of methods, by command-line name (``bench --methods``, ``speed --method``)."""

RACED_METHODS = tuple(name for name, method in METHODS.items() if method.raced)
"""The methods ``sk-reweight speed`` can race against uniform SGD (ERM with SGD)."""

BASELINES = ("erm", "erm_sgd")
"""The methods every other one is tested against, when they are part of a run: ERM with Adam,
and ERM with SGD (momentum 0.9), the like-for-like baseline of RAIS and InfoBatch."""


def make_model(
    name: str,
    kind: str,
    n_classes: int,
    preprocessor: BaseEstimator | None,
    budget: Budget,
    seed: int,
    tune: bool,
) -> BaseEstimator:
    """The unfitted model of method ``name`` for one dataset and fold.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    kind : {'tabular', 'image'}
        The dataset's kind.
    n_classes : int
        Number of classes; labels must be encoded as ``0 .. n_classes - 1``.
    preprocessor : transformer or None
        Fresh, unfitted preprocessing (tabular data), fitted inside the model
        on each training set.
    budget : Budget
        Network, optimizer and epochs shared by the neural networks.
    seed : int
        The classifier's ``random_state`` (and the inner split's).
    tune : bool
        Wrap the pipeline in a GridSearchCV over the method's grid on one
        stratified 80/20 split of the training data.

    Returns
    -------
    model : Pipeline or GridSearchCV
    """
    method = METHODS[name]
    classifier = method.build(n_classes, budget)
    if method.seed_parameter is not None:
        classifier.set_params(**{method.seed_parameter: seed})
    steps: list[tuple[str, BaseEstimator]] = []
    if preprocessor is not None:
        steps.append(("preprocess", preprocessor))
    if kind == "image":
        reshape = add_channel_axis if method.convolutional else flatten_images
        steps.append(("reshape", FunctionTransformer(reshape)))
    else:
        steps.append(("dense", FunctionTransformer(as_dense_float32)))
    steps.append((CLASSIFIER_STEP, classifier))
    model = Pipeline(steps)
    grid = method.grid(budget)
    if not (tune and grid):
        return model
    return GridSearchCV(
        model,
        {f"{CLASSIFIER_STEP}__{key}": values for key, values in grid.items()},
        cv=StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=seed),
        error_score="raise",
    )


def chosen_parameters(model: BaseEstimator) -> dict:
    """The tuned parameters of a fitted :func:`make_model` (without prefixes); empty if untuned."""
    if not isinstance(model, GridSearchCV):
        return {}
    prefix = f"{CLASSIFIER_STEP}__"
    return {key.removeprefix(prefix): value for key, value in model.best_params_.items()}


def fitted_classifier(model: BaseEstimator) -> BaseEstimator:
    """The fitted classifier inside a fitted :func:`make_model`."""
    if isinstance(model, GridSearchCV):
        model = model.best_estimator_
    return model[-1]


def refit_seconds(model: BaseEstimator, fit_seconds: float) -> float:
    """Seconds the final model took to train: GridSearchCV's refit time, or the whole fit."""
    return float(model.refit_time_) if isinstance(model, GridSearchCV) else fit_seconds


def quiet_fit(model: BaseEstimator, X: ArrayLike, y: ArrayLike) -> BaseEstimator:
    """Fit ``model`` without the MLPClassifier warnings that the shared budget makes expected.

    They say that it used its whole epoch budget (ConvergenceWarning) and that
    it clipped a batch size larger than the training set, as the package's
    classifiers do silently.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "Got `batch_size` less than 1 or larger", UserWarning)
        return model.fit(X, y)
