"""RAIS-SGD (Algorithm 4.1) and the oracle O-SGD (section 3) as minibatch policies."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor, nn

from .._engine import TensorDataset
from .._policies import MinibatchPolicy, TrainingStep
from ._gain import GainRatioEstimator, exact_gain_ratio
from ._history import FEATURE_NAMES, NormHistory, RecentRecords
from ._norms import GradientProbe, PerExampleGradients
from ._uncertainty import (
    SolverError,
    UncertaintySet,
    effective_sample_size,
    outlier_scale,
    robust_scores,
    sampling_distribution,
    solve_uncertainty_set,
)

ORACLE_CHUNK = 1024
"""Examples per forward pass when the oracle measures the whole training set."""


def draw_minibatch(scores: Tensor, batch_size: int, generator: torch.Generator) -> Tensor:
    """Indices of ``batch_size`` examples drawn independently, with replacement, from ``p``.

    ``scores`` are non-negative and proportional to ``p``; they need not sum to 1.
    """
    return torch.multinomial(scores, batch_size, replacement=True, generator=generator)


class RAISPolicy(MinibatchPolicy):
    r"""Minibatches importance-sampled from a robust uncertainty set, with gain-ratio steps.

    Every step of RAIS-SGD (Algorithm 4.1):

    1. scores :math:`v_i = \langle c, s_i\rangle + k\langle d, s_i\rangle`
       (:func:`robust_scores`, Proposition 4.1) give :math:`p \propto v`;
    2. a minibatch of :math:`M` examples is drawn from :math:`p` with
       replacement and each loss is multiplied by :math:`1 / (n p_i)`
       (:meth:`sampling_weights`), so the gradient stays unbiased (eq. 4);
    3. the drawn examples' gradient norms are recorded: into their
       histories, whose features :math:`s_i` feed the scores, and into the
       records on which (PT) trains :math:`c, d`;
    4. the gain ratio :math:`\hat r` is re-estimated (eq. 7) and the learning
       rate becomes :math:`\hat r \cdot \mathrm{lr\_sched}(\hat t)`, the
       schedule driven by epochs equivalent :math:`\hat t`.

    The first epoch visits every example once in random order, uniformly, to
    fill the histories (section 4.5); sampling stays uniform (with replacement)
    until :math:`|D|` more draws have been recorded with features. (PT) is
    then solved synchronously, and afterwards every
    :math:`\lceil |D| / M \rceil` steps in a background thread while training
    continues: a solve started at step :math:`t` is installed at step
    :math:`t + \lceil |D|/M \rceil`, waiting for it if needed. Fixing the step
    at which new parameters take effect keeps training reproducible. A failed
    solve keeps the previous :math:`c, d` (or uniform sampling) and warns.

    With ``oracle=True`` the policy is O-SGD instead: before every step it
    measures the gradient norm of every training example and samples
    :math:`p \propto v` exactly (Proposition 3.1), with the exact gain ratio
    (eq. 6); no history, no (PT).

    Parameters
    ----------
    grad_norm : {'logits', 'last_layer', 'exact'}
        Space of the per-example gradients (see ``_norms``).
    history_size : int
        :math:`|D|`, records (PT) is trained on (at most ``n``).
    gain_ema : float
        Moving-average parameter :math:`\alpha` of the gain-ratio estimate.
    outlier_threshold : float
        :math:`\tau` of the outlier protection of section 4.5.
    lr_scaling : bool
        Multiply the learning rate by the gain ratio and drive the schedule
        by epochs equivalent; ``False`` keeps uniform SGD's step sizes.
    oracle : bool
        Sample with exact norms of the whole training set (O-SGD).
    solver : str
        cvxpy solver of (PT).
    """

    def __init__(
        self,
        grad_norm: str = "last_layer",
        history_size: int = 20_000,
        gain_ema: float = 0.01,
        outlier_threshold: float = 100.0,
        lr_scaling: bool = True,
        oracle: bool = False,
        solver: str = "CLARABEL",
    ) -> None:
        self.grad_norm = grad_norm
        self.history_size = history_size
        self.gain_ema = gain_ema
        self.outlier_threshold = outlier_threshold
        self.lr_scaling = lr_scaling
        self.oracle = oracle
        self.solver = solver
        self.uncertainty_set: UncertaintySet | None = None

    # ------------------------------------------------------------ lifecycle

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.samples_equivalent = 0.0
        self.uncertainty_set = None
        self.history = NormHistory(n_samples, device)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        self.sampler = torch.Generator(device).manual_seed(seed)
        self._c = self._d = None
        self._gain: GainRatioEstimator | None = None
        self._ratio = 1.0
        self._batch_weights: Tensor | None = None
        self._scores: Tensor | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._steps_since_solve = 0
        self._solve_attempted = False
        self._records_with_features = 0
        self.final_probabilities: Tensor | None = None
        self._reset_epoch_statistics()

    def _reset_epoch_statistics(self) -> None:
        self._ratios: list[float] = []
        self._outliers = torch.zeros((), dtype=torch.long, device=self.device)
        self._drawn = 0
        self._solve_seconds = 0.0
        self._solve_status = "none"

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        self.module = module
        self.dataset = dataset
        self.probe = GradientProbe(self.grad_norm, module)
        sample_weight = dataset.sample_weight
        mean_weight = sample_weight.mean()
        self.relative_weight = sample_weight / mean_weight if mean_weight > 0 else sample_weight
        self.records = RecentRecords(
            min(self.history_size, self.n_samples), len(FEATURE_NAMES), self.device
        )

    def end_training(self) -> None:
        if self._pending is not None:
            self._install(self._pending)
        if self._executor is not None:
            self._executor.shutdown()
        self.final_probabilities = self.probabilities()
        self.probe.release()
        # Training data, histories, scores and (PT) records are not part of the fitted model.
        self.module = self.dataset = self.records = self.probe = self.history = None
        self.relative_weight = self._estimate = self._uncertainty = self._scores = None
        self._batch_weights = self._executor = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_executor"] = state["_pending"] = None
        return state

    # ------------------------------------------------------------- sampling

    @property
    def progress(self) -> float:
        """Epochs equivalent :math:`\\hat t M / n`: steps weighted by their gain ratio."""
        return self.samples_equivalent / self.n_samples

    def lr_factor(self) -> float:
        return self._ratio if self.lr_scaling else 1.0

    def sampling_weights(self) -> Tensor | None:
        return self._batch_weights

    def probabilities(self) -> Tensor:
        """The sampling distribution over the training set for the next minibatch.

        Uniform until the first (PT) solve; the oracle measures every example.
        """
        if self.oracle:
            return self._oracle_probabilities()
        if self._c is None:
            return torch.full((self.n_samples,), 1.0 / self.n_samples, device=self.device)
        return sampling_distribution(robust_scores(self.history.features, self._c, self._d))

    def _current_scores(self) -> Tensor:
        """Scores proportional to the next minibatch's sampling distribution.

        The robust scores of Proposition 4.1 are kept up to date row by row as
        the histories change (:meth:`_update_scores`), so a step costs two
        length-``n`` operations instead of two ``n x d`` products.
        """
        if self.oracle:
            return self._oracle_probabilities()
        if self._c is None:
            return torch.ones(self.n_samples, device=self.device)
        k = torch.sqrt(self.n_samples / self._uncertainty_total.clamp_min(1e-30))
        return torch.add(self._estimate, self._uncertainty * k)

    def _refresh_scores(self) -> None:
        features = self.history.features
        self._estimate = features @ self._c
        self._uncertainty = features @ self._d
        self._uncertainty_total = self._uncertainty.sum()

    def _update_scores(self, rows: Tensor) -> None:
        if self._c is None:
            return
        features = self.history.features[rows]
        uncertainty = features @ self._d
        self._uncertainty_total += (uncertainty - self._uncertainty[rows]).sum()
        self._uncertainty[rows] = uncertainty
        self._estimate[rows] = features @ self._c

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        self.epochs_started += 1
        if self._gain is None:
            self._gain = GainRatioEstimator(self.gain_ema, batch_size, self.device)
        if self.epochs_started == 1 and not self.oracle:
            yield from self._uniform_batches(batch_size)
            return
        for start in range(0, self.n_samples, batch_size):
            n_drawn = min(batch_size, self.n_samples - start)
            if not self.oracle:
                self._refresh_uncertainty_set(batch_size)
            scores = self._current_scores()
            total = scores.sum()
            if not torch.isfinite(total):
                raise FloatingPointError(
                    "RAIS recorded non-finite gradient norms: training diverged. Lower lr "
                    "(with lr_scaling=True the step is lr times the gain ratio, up to "
                    "batch_size times lr)."
                )
            indices = draw_minibatch(scores, n_drawn, self.sampler)
            self._scores = scores
            self._batch_weights = total / (self.n_samples * scores[indices])
            yield indices
            self._advance(n_drawn)

    def _uniform_batches(self, batch_size: int) -> Iterator[Tensor]:
        """The first epoch: every example once, in random order, with unit weights."""
        self._batch_weights = None
        order = torch.randperm(self.n_samples, generator=self.generator).to(self.device)
        for start in range(0, self.n_samples, batch_size):
            yield order[start : start + batch_size]
            self._advance(min(batch_size, self.n_samples - start))

    def _advance(self, n_drawn: int) -> None:
        self.samples_seen += n_drawn
        self.samples_equivalent += self.lr_factor() * n_drawn

    # -------------------------------------------------------------- a step

    def loss_weights(self, step: TrainingStep) -> Tensor | None:
        relative_weight = self.relative_weight[step.indices]
        n_drawn = len(step.indices)
        self._drawn += n_drawn
        # The engine divides by the batch's summed sample weights; this factor makes the step
        # (1/M) sum_i (u_i / mean u) l_i / (n p_i), unbiased for the weighted mean loss.
        unbiased = relative_weight.sum() / n_drawn
        if self.oracle:
            # The oracle measured every example before drawing: nothing to record.
            return self._batch_weights * unbiased
        gradients = self.probe.gradients(step.inputs, step.logits, step.targets)
        norms = gradients.norms * relative_weight
        if self._batch_weights is None:
            coefficients = relative_weight / relative_weight.sum().clamp_min(1e-30)
            self._record(step.indices, norms, torch.ones_like(norms))
            self._update_gain(gradients, norms, torch.ones_like(norms), coefficients)
            return None
        importance = self._batch_weights
        scale = torch.ones_like(norms)
        if self._c is not None:
            features = self.history.features[step.indices]
            scale = outlier_scale(features, norms, self._c, self._d, self.outlier_threshold)
            self._outliers += (scale < 1).sum()
        self._record(step.indices, norms, importance)
        multipliers = importance * scale
        coefficients = relative_weight * multipliers / n_drawn
        self._update_gain(gradients, norms * scale, importance, coefficients)
        return multipliers * unbiased

    def _record(self, indices: Tensor, norms: Tensor, importance: Tensor) -> None:
        """Keep the draws for (PT) with their current features, then update the histories."""
        self.records.add(self.history.features[indices], norms, importance)
        self._update_scores(self.history.record(indices, norms))
        self._steps_since_solve += 1
        if self.epochs_started > 1:
            self._records_with_features += len(indices)

    def _update_gain(
        self,
        gradients: PerExampleGradients,
        norms: Tensor,
        importance: Tensor,
        coefficients: Tensor,
    ) -> None:
        batch_gradient = gradients.weighted_sum(coefficients)
        self._gain.update(norms, importance, batch_gradient.square().sum())
        self._ratio = self._gain.ratio
        self._ratios.append(self._ratio)

    # --------------------------------------------------------------- oracle

    def _oracle_probabilities(self) -> Tensor:
        """Exact norms of every example (O-SGD); also sets the exact gain ratio."""
        norms, mean_gradient = [], 0.0
        was_training = self.module.training
        self.module.eval()
        try:
            for start in range(0, self.n_samples, ORACLE_CHUNK):
                X, (y, _, index) = self.dataset[slice(start, start + ORACLE_CHUNK)]
                relative_weight = self.relative_weight[index]
                with torch.no_grad():
                    logits = self.module(X)
                gradients = self.probe.gradients(X, logits, y)
                norms.append(gradients.norms * relative_weight)
                mean_gradient = mean_gradient + gradients.weighted_sum(
                    relative_weight / self.n_samples
                )
        finally:
            self.module.train(was_training)
        norms = torch.cat(norms)
        probabilities = sampling_distribution(norms)
        if self._gain is not None:
            ratio = exact_gain_ratio(
                norms, probabilities, mean_gradient.square().sum().item(), self._gain.batch_size
            )
            self._ratio = min(max(ratio, 1.0), float(self._gain.batch_size))
            self._ratios.append(self._ratio)
        return probabilities

    # ------------------------------------------------- the uncertainty set

    def _refresh_uncertainty_set(self, batch_size: int) -> None:
        """Solve (PT) on schedule: first synchronously, then one interval in the background.

        The first solve waits until the records hold :math:`|D|` draws made
        after the first epoch (the paper's :math:`t \\geq (n + |D|)/M`): the
        first epoch's records carry no features yet (nothing was recorded
        before them), and would leave the feature coefficients unidentified.
        """
        interval = math.ceil(self.records.capacity / batch_size)
        if not self._solve_attempted:
            if self._records_with_features < self.records.capacity:
                return
            self._solve_attempted = True
            self._install(self._submit())
            return
        if self._steps_since_solve < interval:
            return
        if self._pending is not None:
            self._install(self._pending)
        self._pending = self._submit()

    def _submit(self) -> Future:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rais-pt")
        features, norms, weights = self.records.snapshot()
        mean_features = self.history.features.mean(dim=0).to("cpu", torch.float64).numpy()
        self._steps_since_solve = 0
        return self._executor.submit(
            solve_uncertainty_set, features, norms, weights, mean_features, self.solver
        )

    def _install(self, pending: Future) -> None:
        """Wait for a solve and use its result; keep the previous set if it failed."""
        self._pending = None
        try:
            result = pending.result()
        except (SolverError, ValueError, ArithmeticError) as exc:
            warnings.warn(
                f"RAIS could not train its uncertainty set ({exc}); keeping the previous "
                "sampling distribution.",
                ConvergenceWarning,
                stacklevel=2,
            )
            self._solve_status = "failed"
            return
        self.uncertainty_set = result
        self._c = torch.as_tensor(result.c, dtype=torch.float32, device=self.device)
        self._d = torch.as_tensor(result.d, dtype=torch.float32, device=self.device)
        self._refresh_scores()
        if self._current_scores().sum() <= 0:
            warnings.warn(
                "RAIS's uncertainty set gives every example a zero score (all recorded "
                "gradient norms are zero); sampling uniformly.",
                ConvergenceWarning,
                stacklevel=2,
            )
            self._c = self._d = None
        self._solve_seconds += result.solve_seconds
        self._solve_status = result.status

    # ----------------------------------------------------------- statistics

    def epoch_statistics(self) -> dict[str, float | str]:
        probabilities = None if self._scores is None else sampling_distribution(self._scores)
        statistics = {
            "gain_ratio": sum(self._ratios) / len(self._ratios) if self._ratios else 1.0,
            "epochs_equivalent": self.progress,
            "solve_seconds": self._solve_seconds,
            "solve_status": self._solve_status,
            "effective_sample_size": (
                1.0 if probabilities is None else effective_sample_size(probabilities)
            ),
            "outlier_fraction": self._outliers.item() / max(self._drawn, 1),
        }
        self._reset_epoch_statistics()
        return statistics
