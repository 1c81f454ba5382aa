"""RAIS-SGD (Algorithm 4.1) as a minibatch policy."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor, nn

from .._data import TensorDataset, largest_feature_scale
from .._policies import TrainingStep
from ._block import BlockDraws, BlockStep
from ._epoch_record import EpochRecord
from ._gain import GAIN_STATE_KEYS, GainRatioEstimator
from ._governor import BlockClock, SamplingGovernor
from ._history import FEATURE_NAMES, NormHistory, RecentRecords
from ._sampling import ImportanceSamplingPolicy
from ._sampling_state import SamplingState
from ._solve_schedule import BackgroundSolves
from ._solver_report import SolverReport, solver_message
from ._state_dict import checked_keys
from ._uncertainty import SolverError, UncertaintySet, outlier_scale, solve_uncertainty_set

DIVERGENCE_MESSAGE = (
    "training diverged in epoch {epoch}: RAIS recorded non-finite gradient norms. Lower lr "
    "(with lr_scaling=True the step is lr times the gain ratio, up to batch_size times lr)."
)

REFRESH_INTERVAL = 16
"""Default steps between two refreshes of the histories, features and scores (see RAISPolicy)."""

WAITING_FOR_FIRST_SOLVE = "uniform: waiting for |D| recorded draws before the first (PT) solve"
"""``history_``'s ``sampling_decision`` of the epochs before the first (PT) solve."""

UNIFORM_FALLBACKS = ("timed",)
"""The string option of ``uniform_fallback``; a number or ``None`` are the others."""


class RAISPolicy(ImportanceSamplingPolicy):
    r"""Minibatches importance-sampled from a robust uncertainty set, with gain-ratio steps.

    Every step of RAIS-SGD (Algorithm 4.1):

    1. scores :math:`v_i = \langle c, s_i\rangle + k\langle d, s_i\rangle`
       (Proposition 4.1) give :math:`p \propto v`;
    2. a minibatch of :math:`M` examples is drawn from :math:`p` with
       replacement and each loss is multiplied by :math:`1 / (n p_i)`
       (:meth:`sampling_weights`), so the gradient stays unbiased (eq. 4);
       outliers' losses are capped (:func:`outlier_scale`, section 4.5);
    3. the drawn examples' gradient norms are recorded: into their
       histories, whose features :math:`s_i` feed the scores, and into the
       records on which (PT) trains :math:`c, d`;
    4. the gain ratio :math:`\hat r` is re-estimated (eq. 7) and the learning
       rate becomes :math:`\hat r \cdot \mathrm{lr\_sched}(\hat t)`, the
       schedule driven by epochs equivalent :math:`\hat t`.

    The first epoch is the uniform permutation of
    :class:`~sk_reweight._policies.MinibatchPolicy`, which fills the histories
    (section 4.5); sampling stays uniform (with replacement) until
    :math:`|D|` more draws have been recorded with features. (PT) is then
    solved synchronously, and afterwards on the clock of
    :class:`~sk_reweight._rais._solve_schedule.BackgroundSolves`, each solve
    warm-started from the set in use. A failed solve keeps the previous
    :math:`c, d` (or uniform sampling). Fallbacks to cvxpy and failures are
    told in one :class:`~sklearn.exceptions.ConvergenceWarning` at the end
    of training (``_solver_report``).

    **Bookkeeping in blocks** (``_block``). A step only draws from the
    :class:`~sk_reweight._rais._sampling_state.SamplingState` of the set in
    use (its table and outlier bounds) and measures the drawn norms; steps 3
    and 4, the refresh of the drawn rows' scores and the one read of the
    device are done every ``refresh_interval`` steps, at the end of each
    block and of each epoch. ``refresh_interval=1`` is the paper's
    step-by-step algorithm.

    **The speed governor.** Unless ``uniform_fallback`` is ``None``, a
    :class:`~sk_reweight._rais._governor.SamplingGovernor` predicts at the
    end of every epoch whether importance sampling trains faster per second
    than uniform sampling (its gain ratio over its relative step cost) and,
    while it does not, the next epochs are uniform SGD's: a random
    permutation without bookkeeping, gain ratio 1, the (PT) clock paused.
    Importance sampling is tried again after a growing wait; the histories
    and the uncertainty set are kept meanwhile.

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
    solver : {'newton', 'cvxpy'}
        Solver of (PT) (see :func:`solve_uncertainty_set`).
    cvxpy_solver : str
        cvxpy's conic solver, for ``solver='cvxpy'`` and the fallback.
    refresh_interval : int
        Steps per bookkeeping block.
    uniform_fallback : 'timed', float or None
        The governor's cost ratio: ``'timed'`` measures it, a number assumes
        it, ``None`` turns the governor off (the paper's algorithm).
    """

    def __init__(
        self,
        grad_norm: str = "last_layer",
        history_size: int = 20_000,
        gain_ema: float = 0.01,
        outlier_threshold: float = 100.0,
        lr_scaling: bool = True,
        solver: str = "newton",
        cvxpy_solver: str = "CLARABEL",
        refresh_interval: int = REFRESH_INTERVAL,
        uniform_fallback: str | float | None = "timed",
    ) -> None:
        super().__init__(grad_norm=grad_norm, lr_scaling=lr_scaling)
        self.history_size = history_size
        self.gain_ema = gain_ema
        self.outlier_threshold = outlier_threshold
        self.solver = solver
        self.cvxpy_solver = cvxpy_solver
        self.refresh_interval = refresh_interval
        self.uniform_fallback = uniform_fallback
        self.uncertainty_set: UncertaintySet | None = None

    # ------------------------------------------------------------ lifecycle

    def reset(self, n_samples: int, generator: torch.Generator, device: torch.device) -> None:
        super().reset(n_samples, generator, device)
        self.uncertainty_set = None
        self.norm_history = NormHistory(n_samples, device)
        self._sampling: SamplingState | None = None  # None: uniform draws
        self._block: list[BlockStep] = []
        self._gain: GainRatioEstimator | None = None
        self._steps = 0
        self._draws_with_features = 0
        self._solves: BackgroundSolves | None = None
        self.solver_report = SolverReport()
        self.governor = SamplingGovernor.for_fallback(self.uniform_fallback)
        self._bookkeeping = True  # False in the governor's uniform epochs
        self._clock = BlockClock(self.governor)

    def _reset_epoch_statistics(self) -> None:
        super()._reset_epoch_statistics()
        self._epoch = EpochRecord()

    def begin_training(self, module: nn.Module, dataset: TensorDataset) -> None:
        super().begin_training(module, dataset)
        self.records = RecentRecords(
            min(self.history_size, self.n_samples), len(FEATURE_NAMES), self.device
        )

    def end_training(self) -> None:
        if self._solves is not None:
            self._end_block()
            self._install(self._solves.shutdown())
        if self.solver_report.eventful:
            scale = largest_feature_scale(self.dataset.X)
            warnings.warn(
                solver_message(self.solver_report, self.cvxpy_solver, scale),
                ConvergenceWarning,
                stacklevel=2,
            )
        super().end_training()
        # Histories, scores and (PT) records are not part of the fitted model.
        self.records = self.norm_history = self._sampling = None

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed fit needs to go on exactly, at the end of an epoch.

        Checkpoint format 4: tensors and plain values under fixed keys (the
        schema, with dtypes, is in ``docs/saving.md``). Besides the base's
        (``n_samples``, ``samples_seen``, ``epochs_started``, ``generator``,
        ``samples_equivalent``, ``ratio``, ``sampler``), the ``state_dict()``
        of each part, ``None`` where it is absent; ``n`` examples, ``|D|``
        (PT) records, 12 features:

        - ``norm_history``: ``history`` (n, 16), ``counts`` (n,), ``features`` (n, 12);
        - ``records``: ``features`` (|D|, 12), ``norms`` and ``weights`` (|D|,), ``size``,
          ``next``;
        - ``gain`` (``None`` before the first epoch): ``batch_size``, ``moments`` (3,),
          ``level`` (), ``steps``;
        - ``solves`` (idem): ``submitted_at``, ``pending`` (``None``, ``{"set": ...}`` or
          ``{"error": message}``; waited for);
        - ``uncertainty_set`` (``None`` before the first (PT) solve): ``c`` and ``d`` (12,),
          ``status``, ``solve_seconds``, ``solver``, ``iterations``, ``fallback_reason``;
        - ``sampling`` (``None`` while sampling is uniform): ``coefficients`` (2, 12),
          ``projections`` (2, n);
        - ``steps`` (the (PT) clock), ``draws_with_features`` (the first solve waits for |D|);
        - ``governor`` (``None`` for ``uniform_fallback=None``):
          :meth:`~sk_reweight._rais._governor.SamplingGovernor.state_dict`;
        - ``solver_report``: ``solves``, ``fallbacks``, ``failures`` and the first reasons.

        A state of another shape or without these keys is refused by :meth:`load_state_dict`.
        """
        return {
            **super().state_dict(),
            "norm_history": self.norm_history.state_dict(),
            "records": self.records.state_dict(),
            "gain": _state_dict(self._gain),
            "solves": _state_dict(self._solves),
            "uncertainty_set": _state_dict(self.uncertainty_set),
            "sampling": _state_dict(self._sampling),
            "steps": self._steps,
            "draws_with_features": self._draws_with_features,
            "governor": _state_dict(self.governor),
            "solver_report": self.solver_report.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.norm_history.load_state_dict(state["norm_history"])
        self.records.load_state_dict(state["records"])
        if state["gain"] is not None:
            self._start(checked_keys(state["gain"], GAIN_STATE_KEYS, "gain")["batch_size"])
            self._gain.load_state_dict(state["gain"])
            self._solves.load_state_dict(state["solves"])
        self._steps = state["steps"]
        self._draws_with_features = state["draws_with_features"]
        self.solver_report.load_state_dict(state["solver_report"])
        if state["governor"] is not None and self.governor is not None:
            self.governor.load_state_dict(state["governor"])
            self._clock.resume()
        if state["uncertainty_set"] is not None:
            self.uncertainty_set = UncertaintySet.from_state_dict(state["uncertainty_set"])
        if state["sampling"] is not None:
            self._sampling = SamplingState.from_state_dict(
                state["sampling"], self.n_samples, self.device, self.outlier_threshold
            )

    # ------------------------------------------------------------- sampling

    def probabilities(self) -> Tensor:
        """The sampling distribution over the training set for the next minibatch.

        Uniform until the first (PT) solve.
        """
        if self._sampling is None:
            return torch.full((self.n_samples,), 1.0 / self.n_samples, device=self.device)
        return self._sampling.probabilities()

    def epoch_batches(self, batch_size: int) -> Iterator[Tensor]:
        if self._gain is None:
            self._start(batch_size)
        self._clock.restart()
        if self.epochs_started == 0:
            self._epoch.decision = "uniform: the first epoch fills the norm histories"
            yield from self._uniform_batches(batch_size)
        elif self.governor is not None and not self.governor.sampling:
            self._bookkeeping = False
            try:
                yield from self._uniform_batches(batch_size)
            finally:
                self._bookkeeping = True
            self._clock.end_uniform_epoch(self._steps_in_epoch, self.device)
        else:
            yield from self._importance_sampled_batches(batch_size)
        self._end_block()
        if self.governor is not None and (self._epoch.sampled_steps or not self.governor.sampling):
            self._epoch.decision = self.governor.end_epoch()
            prediction = self.governor.last_prediction
            self._epoch.prediction = None if math.isnan(prediction) else prediction

    def step_ratio(self) -> float:
        return self._ratio if self._bookkeeping else 1.0

    def _uniform_batches(self, batch_size: int) -> Iterator[Tensor]:
        """Uniform SGD's epoch: a random permutation, up to the end of the schedule."""
        self._batch_weights = None
        self.epochs_started += 1
        order = torch.randperm(self.n_samples, generator=self.generator).to(self.device)
        for start in range(0, self.n_samples, batch_size):
            if self.progress >= self.progress_limit:
                return
            indices = order[start : start + batch_size]
            yield indices
            self._advance(len(indices))

    def _start(self, batch_size: int) -> None:
        """The gain estimator and the (PT) clock, for minibatches of ``batch_size``."""
        self._gain = GainRatioEstimator(self.gain_ema, batch_size, self.device)
        interval = math.ceil(self.records.capacity / batch_size)
        self._solves = BackgroundSolves(solve_uncertainty_set, interval)

    def _importance_sampled_batches(self, batch_size: int) -> Iterator[Tensor]:
        self.epochs_started += 1
        for start in range(0, self.n_samples, batch_size):
            if self.progress >= self.progress_limit:
                return  # the schedule is complete: the engine stops before the next epoch
            n_drawn = min(batch_size, self.n_samples - start)
            self._update_uncertainty_set()
            if self._sampling is None:
                self._batch_weights = None
                self._epoch.decision = WAITING_FOR_FIRST_SOLVE
                indices = torch.randint(
                    self.n_samples, (n_drawn,), generator=self.sampler, device=self.device
                )
            else:
                indices = self._draw(self._sampling.table, n_drawn)
                self._epoch.sampled_steps += 1
            yield indices
            self._advance(n_drawn)

    def _advance(self, n_drawn: int) -> None:
        super()._advance(n_drawn)
        if not self._bookkeeping:
            return  # the governor's uniform steps: no records, the (PT) clock paused
        self._steps += 1
        if self.epochs_started > 1:  # the first epoch's draws have no features yet
            self._draws_with_features += n_drawn
        if len(self._block) >= self.refresh_interval:
            self._end_block()

    # -------------------------------------------------------------- a step

    def loss_weights(self, step: TrainingStep) -> Tensor | None:
        if not self._bookkeeping:
            return None
        return self._clock.bookkeeping(self._measured_loss_weights, step)

    def _measured_loss_weights(self, step: TrainingStep) -> Tensor | None:
        indices = step.indices
        self._epoch.drawn += len(indices)
        relative_weight = self._relative_weight(indices)
        gradients = self.probe.gradients(step.inputs, step.output, step.targets)
        norms = gradients.norms
        if relative_weight is not None:
            norms = norms * relative_weight
        importance = self._batch_weights
        if importance is None:  # uniform draws: the engine's plain weighted mean
            self._block.append(BlockStep.uniform(indices, norms, gradients, relative_weight))
            return None
        # The minibatch was drawn from self._sampling, which changes only between steps.
        scale = outlier_scale(norms, self._sampling.bounds.index_select(0, indices))
        multipliers = importance * scale
        self._block.append(
            BlockStep.sampled(
                indices, norms, importance, scale, multipliers, gradients, relative_weight
            )
        )
        return self._unbiased(multipliers, relative_weight)

    def _end_block(self) -> None:
        """Record the block's draws, refresh what the next block samples from, time the block."""
        block, self._block = self._block, []
        started, ratio_used = time.perf_counter(), self._ratio
        self._refresh(block)
        sampled = bool(block) and block[0].importance is not None
        self._clock.end_block(len(block), sampled, ratio_used * len(block), started)

    def _refresh(self, block: list[BlockStep]) -> None:
        """End a bookkeeping block: record its draws, refresh scores, read the gain ratio.

        The records keep each draw's features as they were during the block
        (when it was drawn); the histories then take the block's norms in
        order, the drawn examples' features and scores are refreshed, and the
        gain estimate takes the block's minibatches in order. All minibatches
        of a block but its last have the same size.
        """
        if block:
            draws = BlockDraws.of(block)
            self.records.add(
                self.norm_history.features.index_select(0, draws.examples),
                draws.norms,
                draws.importance,
            )
            rows, features = self.norm_history.record(
                draws.examples, draws.norms, draws.minibatches, draws.n_minibatches
            )
            if self._sampling is not None:
                self._sampling = self._sampling.refreshed(rows, features)
            if draws.scales is not None:
                self._epoch.outlier_scales.append(draws.scales)
            # The gain sees the capped norms the steps used.
            self._gain.update_in_order(
                draws.capped_norms, draws.importance, draws.batch_gradient_sq_norms, draws.size
            )
        ratio, finite = self._gain.read()
        if not finite:
            raise FloatingPointError(DIVERGENCE_MESSAGE.format(epoch=self.epochs_started))
        self._ratio = ratio

    # ------------------------------------------------- the uncertainty set

    def _update_uncertainty_set(self) -> None:
        """Solve (PT) on schedule: first synchronously, then one interval in the background.

        The first solve waits until the records hold :math:`|D|` draws made
        after the first epoch (the paper's :math:`t \\geq (n + |D|)/M`): the
        first epoch's records carry no features yet (nothing was recorded
        before them), and would leave the feature coefficients unidentified.
        """
        if not self._solves.started:
            if self._draws_with_features < self.records.capacity:
                return
            self._submit()
            self._install(self._solves.collect())
        elif self._solves.due(self._steps):
            self._install(self._solves.collect())
            self._submit()

    def _submit(self) -> None:
        self._end_block()  # the records must hold every draw so far
        features, norms, weights = self.records.snapshot()
        mean_features = self.norm_history.features.mean(dim=0).to("cpu", torch.float64).numpy()
        self._solves.submit(
            self._steps,
            features,
            norms,
            weights,
            mean_features,
            solver=self.solver,
            cvxpy_solver=self.cvxpy_solver,
            initial=self.uncertainty_set,
        )

    def _install(self, finished: Future | None) -> None:
        """Use a finished solve's set; keep the previous one if it failed (reported at the end)."""
        if finished is None:
            return
        self._end_block()  # a block is drawn from one distribution
        try:
            result = finished.result()
        except (SolverError, ValueError, ArithmeticError) as exc:
            self.solver_report.record_failure(str(exc))  # told at the end of training
            self._epoch.solve_status = "failed"
            return
        self.solver_report.record_set(result.fallback_reason)
        self.uncertainty_set = result
        self._epoch.record_set(result)
        self._sampling = SamplingState.from_set(
            result, self.norm_history.features, self.outlier_threshold
        )
        if self._sampling.scores_all_zero:
            warnings.warn(
                "RAIS's uncertainty set gives every example a zero score (all recorded "
                "gradient norms are zero); sampling uniformly.",
                ConvergenceWarning,
                stacklevel=2,
            )
            self._sampling = None

    # ----------------------------------------------------------- statistics

    def epoch_statistics(self) -> dict[str, float | str]:
        statistics = self._epoch.statistics()  # before the base resets the epoch's record
        return {**super().epoch_statistics(), **statistics}


def _state_dict(bookkeeping: Any) -> dict[str, Any] | None:
    """``bookkeeping.state_dict()``, ``None`` for ``None`` (not started, or switched off)."""
    return None if bookkeeping is None else bookkeeping.state_dict()
