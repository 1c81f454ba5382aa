"""ReweightingClassifier: the shared engine trained under a minibatch policy of the user's."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ._base import BaseReweightingClassifier
from ._modules import ModuleFactory
from ._policies import MinibatchPolicy
from ._schedules import LRSchedule
from ._shared_docs import fill_shared_docs


@fill_shared_docs
class ReweightingClassifier(BaseReweightingClassifier):
    """Neural-network classifier trained under any :class:`MinibatchPolicy`: the extension point.

    A new way of drawing or weighting training examples is a subclass of
    :class:`MinibatchPolicy` (often one method, :meth:`~MinibatchPolicy.loss_weights`);
    this classifier trains the network under it with everything the
    package's classifiers have: scikit-learn's estimator API, the stopping
    rule, early stopping, learning-rate schedules, sample and class weights,
    callbacks, checkpoints, devices, mixed precision and saving. With the
    default ``policy=None`` it is :class:`ERMClassifier`.

    Parameters
    ----------
    policy : MinibatchPolicy or None, default=None
        The policy, as a template: every fit trains under a deep copy of it,
        so that the object passed is never changed by training. Its own
        parameters (the arguments of its ``__init__``) are nested parameters
        of the classifier, e.g. ``policy__gamma`` in
        :class:`~sklearn.model_selection.GridSearchCV`. ``None`` is the base
        policy (uniform minibatches, unit weights).

    {shared_parameters}

    Attributes
    ----------
    {shared_attributes}

        And what the policy's :meth:`~MinibatchPolicy.fitted_attributes`
        returns; every epoch of ``history_`` holds its
        :meth:`~MinibatchPolicy.epoch_statistics`.

    See Also
    --------
    MinibatchPolicy : the protocol a policy follows, with an example.
    ERMClassifier : the same network with the base policy.

    Examples
    --------
    Hard examples weigh more as their loss grows (an exponential tilt, as in
    :func:`rgd_weights`, without its clipping):

    >>> import torch
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_reweight import MinibatchPolicy, ReweightingClassifier
    >>> class TiltPolicy(MinibatchPolicy):
    ...     def __init__(self, temperature=2.0):
    ...         self.temperature = temperature
    ...     def loss_weights(self, step):
    ...         return torch.exp(step.losses / self.temperature)
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = ReweightingClassifier(
    ...     TiltPolicy(), max_epochs=20, n_iter_no_change=None, random_state=0
    ... )
    >>> make_pipeline(StandardScaler(), model).fit(X, y).score(X, y) > 0.95
    True
    >>> model.get_params()["policy__temperature"]
    2.0
    """

    _parameter_constraints: dict = {
        **BaseReweightingClassifier._parameter_constraints,
        "policy": [None, MinibatchPolicy],
    }

    def __init__(
        self,
        policy: MinibatchPolicy | None = None,
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
        super().__init__(
            module=module,
            hidden_layer_sizes=hidden_layer_sizes,
            dropout=dropout,
            augmentation=augmentation,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            lr_schedule=lr_schedule,
            class_weight=class_weight,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            device=device,
            precision=precision,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
            warm_start=warm_start,
        )
        self.policy = policy

    def _make_policy(self) -> MinibatchPolicy:
        return MinibatchPolicy() if self.policy is None else copy.deepcopy(self.policy)
