"""InfoBatch: unbiased dynamic data pruning by the most recent training loss.

Qin, Wang, Zheng, Gu, Peng, Xu, Zhou, Shang, Sun, Xie & You, "InfoBatch:
Lossless Training Speed Up by Unbiased Dynamic Data Pruning", ICLR 2024
(arXiv:2303.04947), section 3: soft pruning, expectation rescaling, annealing.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from torch import Tensor, nn

from ._base import BaseReweightingClassifier
from ._modules import ModuleFactory
from ._policies import MinibatchPolicy, TrainingStep
from ._schedules import LRSchedule
from ._shared_docs import fill_shared_docs

if TYPE_CHECKING:
    from ._data import TensorDataset


def below_mean(scores: Tensor, sample_weight: Tensor) -> Tensor:
    r"""Which examples are "well learned": their score is below the weighted mean score.

    .. math:: \mathcal D_1 = \{\, i : H_i < \bar H \,\}, \qquad
              \bar H = \frac{\sum_j u_j H_j}{\sum_j u_j}

    The paper's adaptive threshold is the mean score of the training set
    (section 3, soft pruning); with sample weights :math:`u` it is the mean of
    the weighted training objective, the plain mean when every weight is 1.
    When every weight is 0 the threshold is the plain mean.

    Parameters
    ----------
    scores : Tensor of shape (n_samples,)
        Each example's score :math:`H_i`, its most recent training loss.
    sample_weight : Tensor of shape (n_samples,)
        The user's sample weights (times class weights).

    Returns
    -------
    mask : Tensor of shape (n_samples,), dtype bool
        True for the examples strictly below the mean: never all of them, so
        an epoch always keeps an example.
    """
    total = sample_weight.sum()
    threshold = torch.dot(sample_weight, scores) / total if total > 0 else scores.mean()
    return scores < threshold


def pruning_weights(below: Tensor, prune_ratio: float, uniform: Tensor) -> Tensor:
    r"""Soft pruning and expectation rescaling: each example's loss multiplier for an epoch.

    .. math:: w_i = \begin{cases}
                  0 & i \in \mathcal D_1,\ U_i < r \quad\text{(pruned)}\\
                  1 / (1 - r) & i \in \mathcal D_1,\ U_i \ge r\\
                  1 & i \notin \mathcal D_1
              \end{cases}

    with :math:`U_i` uniform on :math:`[0, 1)` and :math:`r` the prune ratio
    (section 3 of the paper: soft pruning drops a well-learned example with
    probability :math:`r`; expectation rescaling multiplies the kept ones'
    losses by :math:`1 / (1 - r)`). Every example's expected multiplier is
    exactly 1, :math:`(1 - r) / (1 - r)` for a well-learned one, so the
    expected gradient of an epoch is that of the full data. Each example is
    pruned independently (the paper's code draws exactly
    :math:`\lfloor (1 - r) |\mathcal D_1| \rfloor` examples to keep, whose
    expectation falls short of 1 by the rounding).

    Parameters
    ----------
    below : Tensor of shape (n_samples,), dtype bool
        :func:`below_mean` of the scores.
    prune_ratio : float in [0, 1)
        :math:`r`, the probability of pruning a below-mean example.
    uniform : Tensor of shape (n_samples,)
        Draws :math:`U_i` from the uniform distribution on :math:`[0, 1)`.

    Returns
    -------
    weights : Tensor of shape (n_samples,)
        The multipliers :math:`w_i`; the epoch trains on the examples whose
        multiplier is positive.
    """
    kept_below = below & (uniform >= prune_ratio)
    weights = torch.where(kept_below, 1.0 / (1.0 - prune_ratio), 1.0)
    return weights.masked_fill_(below & ~kept_below, 0.0)


def prunes_in_epoch(epoch: int, max_epochs: float, anneal: float) -> bool:
    r"""Whether 1-based ``epoch`` of ``max_epochs`` prunes, or trains on all the data.

    The first epoch trains on all the data: before it, no example has a
    loss to be scored by. Annealing (section 3 of the paper) trains the last
    ``anneal`` fraction of the epochs on all the data, so that the bias the
    rescaling leaves (the scores are losses of an earlier network) does not
    remain in the final weights: epoch :math:`e` prunes when

    .. math:: e > 1 \quad\text{and}\quad e - 1 < (1 - a)\, E

    (the paper's code's rule, :math:`a` the anneal fraction, :math:`E` the
    epochs): with :math:`E = 20` and :math:`a = 0.125`, epochs 2 to 18
    prune and the last 2 do not.

    Parameters
    ----------
    epoch : int >= 1
        The epoch about to start.
    max_epochs : float
        The length of training, :math:`E` (infinite: no annealing).
    anneal : float in [0, 1]
        The fraction :math:`a` of the epochs trained on all the data at the end.

    Returns
    -------
    prunes : bool
    """
    return epoch > 1 and epoch - 1 < (1.0 - anneal) * max_epochs


class InfoBatchPolicy(MinibatchPolicy):
    """Each epoch a random permutation of the examples that :func:`pruning_weights` keeps.

    Each example's score is its most recent training loss, recorded at every
    step. At the start of each pruning epoch (:func:`prunes_in_epoch`), the
    examples below the mean score (:func:`below_mean`) are pruned with
    probability ``prune_ratio``, drawn from the fit's seeded generator, and
    the kept ones' losses are multiplied by ``1 / (1 - prune_ratio)``; other
    epochs are plain ERM epochs. :attr:`progress` counts epochs (an epoch of
    fewer steps is still one epoch of the learning-rate schedule), so the
    schedule and the engine's stop run on epochs.

    Parameters
    ----------
    prune_ratio : float in [0, 1)
        Probability of pruning a below-mean example.
    anneal : float in [0, 1]
        Fraction of the epochs, at the end, trained on all the data.
    """

    def __init__(self, prune_ratio: float, anneal: float) -> None:
        self.prune_ratio = prune_ratio
        self.anneal = anneal

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.scores = torch.zeros(n_samples, device=device)
        self.epoch_weights: Tensor | None = None
        self.sample_weight: Tensor | None = None
        self._epoch_size = 0
        self._epoch_drawn = 0
        self._statistics = {"kept_fraction": 1.0, "below_mean_fraction": 0.0}

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        self.sample_weight = dataset.sample_weight

    def end_training(self) -> None:
        super().end_training()
        # Per-example state of the training set is not part of the fitted model.
        self.scores = self.epoch_weights = self.sample_weight = None

    def state_dict(self) -> dict[str, Any]:
        """The base's keys and ``scores``, (n,) float32: each example's latest loss."""
        return {**super().state_dict(), "scores": self.scores.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # refuses another n
        self.scores.copy_(state["scores"])

    @property
    def progress(self) -> float:
        """Training progress in epochs: finished epochs plus the drawn fraction of this one."""
        if self._epoch_size == 0:  # between epochs, or after a resume
            return float(self.epochs_started)
        return self.epochs_started - 1 + self._epoch_drawn / self._epoch_size

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        self.epochs_started += 1
        if prunes_in_epoch(self.epochs_started, self.progress_limit, self.anneal):
            below = below_mean(self.scores, self.sample_weight)
            uniform = torch.rand(self.n_samples, generator=self.generator).to(self.device)
            self.epoch_weights = pruning_weights(below, self.prune_ratio, uniform)
            kept = torch.nonzero(self.epoch_weights).squeeze(1)
            below_fraction = below.float().mean().item()
        else:
            self.epoch_weights = kept = None
            below_fraction = 0.0
        n_kept = self.n_samples if kept is None else len(kept)
        order = torch.randperm(n_kept, generator=self.generator).to(self.device)
        if kept is not None:
            order = kept[order]
        self._statistics = {
            "kept_fraction": n_kept / self.n_samples,
            "below_mean_fraction": below_fraction,
        }
        self._epoch_size, self._epoch_drawn = n_kept, 0
        for start in range(0, n_kept, batch_size):
            indices = order[start : start + batch_size]
            yield indices
            self._advance(len(indices))
        self._epoch_size = 0

    def _advance(self, n_drawn: int) -> None:
        super()._advance(n_drawn)
        self._epoch_drawn += n_drawn

    def loss_weights(self, step: TrainingStep) -> Tensor | None:
        self.scores[step.indices] = step.losses
        if self.epoch_weights is None:
            return None
        return self.epoch_weights[step.indices]

    def epoch_statistics(self) -> dict[str, float]:
        return dict(self._statistics)


@fill_shared_docs
class InfoBatchClassifier(BaseReweightingClassifier):
    r"""Neural-network classifier trained faster by InfoBatch's unbiased dynamic data pruning.

    Each example's score :math:`H_i` is its most recent training loss. At
    the start of every epoch but the first (which has no scores yet) and the
    annealing ones, each example whose score is below the mean is left out
    of the epoch with probability :math:`r` (``prune_ratio``), drawn from the
    fit's seeded generator, and the losses of the below-mean examples that
    are kept are multiplied by :math:`1 / (1 - r)`, so that every example's
    expected weight, and the epoch's expected gradient, stay those of the
    full data (section 3 of the paper: soft pruning and expectation
    rescaling). The last ``anneal`` fraction of the epochs trains on all the
    data (annealing). An epoch prunes about :math:`r` times the fraction of
    below-mean examples, and costs that many fewer steps.

    The learning-rate schedule and ``max_epochs`` count epochs: a pruned
    epoch is one epoch of the schedule with fewer steps, so a fit runs the
    schedule of ``max_epochs`` epochs in fewer steps than
    :class:`ERMClassifier`. The user's sample (and class) weights :math:`u`
    multiply the pruning weights :math:`w`, each minibatch minimising
    :math:`\sum_i u_i w_i \ell_i / \sum_i u_i`, and the mean score that
    decides which examples are below it is :math:`u`-weighted.

    Parameters
    ----------
    prune_ratio : float in [0, 1), default=0.5
        Probability :math:`r` of leaving a below-mean example out of an
        epoch. 0 trains on all the data (ERM with other minibatches); close
        to 1 leaves out nearly every well-learned example and weights the
        few kept ones by :math:`1 / (1 - r)`, a noisy estimate of their
        gradient. The default is the paper's.

    anneal : float in [0, 1], default=0.125
        Fraction of the epochs, at the end of training, that use all the
        data (the paper's :math:`1 - \delta`, :math:`\delta = 0.875`).
        Epoch :math:`e` of :math:`E` prunes when :math:`1 < e` and
        :math:`e - 1 < (1 - a) E`: with the defaults and 20 epochs, epochs 2
        to 18. 1 never prunes (ERM).

    {shared_parameters}

    Attributes
    ----------
    {shared_attributes}

        InfoBatch adds ``kept_fraction`` (the fraction of the training set
        the epoch trained on, 1 in unpruned epochs) and
        ``below_mean_fraction`` (the fraction whose score was below the
        mean, 0 in unpruned epochs) to every epoch of ``history_``;
        ``train_batch_count`` is the number of steps the epoch ran.

    See Also
    --------
    ERMClassifier : the same network and engine on all the data every epoch.
    RAISClassifier : trains faster by importance sampling instead.

    Notes
    -----
    :meth:`partial_fit` trains one epoch of a fresh policy, which has no
    scores yet: every call trains on its whole chunk, as ERM does.

    References
    ----------
    Z. Qin, K. Wang, Z. Zheng, J. Gu, X. Peng, Z. Xu, D. Zhou, L. Shang,
    B. Sun, X. Xie, Y. You. "InfoBatch: Lossless Training Speed Up by
    Unbiased Dynamic Data Pruning." ICLR, 2024.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_reweight import InfoBatchClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> model = InfoBatchClassifier(lr=3e-3, max_epochs=16, random_state=0).fit(X / 16, y)
    >>> model.score(X / 16, y) > 0.95
    True
    >>> bool(min(model.history_[:, "kept_fraction"]) < 1)
    True
    """

    _parameter_constraints: dict = {
        **BaseReweightingClassifier._parameter_constraints,
        "prune_ratio": [Interval(Real, 0, 1, closed="left")],
        "anneal": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        prune_ratio: float = 0.5,
        anneal: float = 0.125,
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
        self.prune_ratio = prune_ratio
        self.anneal = anneal

    def _make_policy(self) -> InfoBatchPolicy:
        return InfoBatchPolicy(self.prune_ratio, self.anneal)
