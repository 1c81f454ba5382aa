"""RAISClassifier: the shared engine trained by RAIS-SGD."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._base import BaseReweightingClassifier
from .._modules import ModuleFactory
from .._schedules import LRSchedule
from .._shared_docs import fill_shared_docs
from ._norms import GRAD_NORMS
from ._oracle import OraclePolicy
from ._policy import REFRESH_INTERVAL, UNIFORM_FALLBACKS, RAISPolicy
from ._sampling import ImportanceSamplingPolicy
from ._uncertainty import CVXPY_SOLVERS, SOLVERS, check_conic_solver

PAPER_DEFAULTS: dict[str, object] = {"optimizer": "sgd", "lr": 0.05}
"""The shared parameters whose defaults :class:`RAISClassifier` takes from the paper.

Every other shared parameter keeps the default of
:class:`~sk_reweight._base.BaseReweightingClassifier`.
"""


@fill_shared_docs
class RAISClassifier(BaseReweightingClassifier):
    r"""Neural-network classifier trained by Robust Approximate Importance Sampling (RAIS-SGD).

    Minibatches are drawn with replacement from a distribution :math:`p`
    that favours examples with large gradients, each loss multiplied by
    :math:`1 / (n p_i)` so that the stochastic gradient stays unbiased, and
    the learning rate is multiplied by the estimated gain in progress per
    step (Algorithm 4.1 of the paper):

    - :math:`p_i \propto \langle c, s_i\rangle + k \langle d, s_i\rangle`,
      :math:`k = \sqrt{n / \sum_j \langle d, s_j\rangle}`, the minimax
      optimal distribution over an ellipsoidal uncertainty set of the
      gradient norms (Proposition 4.1), with features :math:`s_i` built from
      each example's last 16 recorded gradient norms (section 6);
    - :math:`c, d` are trained by the convex program (PT) of section 4.3 on
      the :math:`|D|` most recent recorded norms, solved by this package's
      Newton method (or cvxpy) in a background thread every
      :math:`\lceil |D|/M \rceil` steps after the first epoch, which
      visits every example once uniformly;
    - the learning rate is :math:`\hat r\, \mathrm{lr} \cdot
      \mathrm{lr\_schedule}(\hat t)`, with :math:`\hat r \in [1, M]` the
      gain ratio :math:`\mathbb E\|g_U\|^2 / \mathbb E\|g_R\|^2` estimated
      by eq. 7 and :math:`\hat t` the *epochs equivalent*, the number of
      uniform epochs the steps so far are worth. Training ends when
      :math:`\hat t` reaches ``max_epochs`` (or after ``max_epochs``
      epochs): RAIS-SGD is a drop-in replacement for SGD with the same
      schedule that needs fewer steps to complete it. With a constant
      learning rate the stopping rule may end it earlier: the loss has
      not improved by ``tol`` for ``n_iter_no_change`` epochs equivalent
      (so an epoch worth 3 uniform epochs counts as 3).

    Batch-normalisation layers of the default CNN weight their training
    statistics by :math:`1/(n p_i)` (section 4.5). The paper reports training
    at least 20 % faster than uniform SGD on image benchmarks;
    :doc:`the benchmarks </benchmarks>` record what this implementation measures.

    Parameters
    ----------
    grad_norm : {'last_layer', 'logits', 'exact'}, default='last_layer'
        How the per-example gradient norms are measured. ``'logits'`` is the
        paper's proxy, the norm of the loss's gradient with respect to the
        logits, free from the forward pass. ``'last_layer'`` is the exact
        per-example gradient norm of the output linear layer, which needs the
        layer's input and so costs one more small reduction; it requires a
        network whose logits come straight from its last ``nn.Linear``.
        ``'exact'`` computes every parameter's per-example gradient with
        ``torch.func``, with the network in evaluation mode: an extra forward
        and backward pass per step, for small networks.

    oracle : bool, default=False
        Train by O-SGD instead (section 3): before every step, measure the
        gradient norm of *every* training example and sample exactly
        proportionally to it, with the exact gain ratio. It costs a pass over
        the training set per step: a reference for small problems, which
        RAIS approximates.

    history_size : int, default=20000
        :math:`|D|`, the number of recent (features, norm, weight) records
        (PT) is trained on, capped at the training-set size. The cost of a
        solve grows linearly with it, and one solve happens every
        ``history_size / batch_size`` steps, so the amortised cost per
        training example does not depend on it.

    gain_ema : float in (0, 1], default=0.01
        Weight :math:`\alpha` of the newest minibatch in the moving averages
        of the gain-ratio estimate.

    outlier_threshold : float > 0, default=100.0
        :math:`\tau` of section 4.5: an example whose norm is so far above its
        estimate that :math:`(\langle c,s\rangle - v)^2 / \langle d,s\rangle
        > \tau` has its loss scaled down to reach :math:`\tau`.

    lr_scaling : bool, default=True
        Multiply the learning rate by the gain ratio and advance the schedule
        by epochs equivalent. ``False`` keeps uniform SGD's step sizes and
        epoch count, so only the sampling changes.

    solver : {'newton', 'cvxpy'}, default='newton'
        How (PT) is solved. ``'newton'``: this package's projected Newton
        method on an equivalent bound-constrained problem, warm-started from
        the previous set (milliseconds at :math:`|D|` = 20,000; see
        :doc:`the design notes </design>`); a solve it cannot certify optimal is redone by
        cvxpy and counted in ``history_``'s ``solver_fallbacks``.
        ``'cvxpy'``: the reference second-order cone program through cvxpy
        (seconds at :math:`|D|` = 20,000). A solve that fails (cvxpy reports
        anything but ``'optimal'``) keeps the previous sampling distribution.
        Fallbacks and failures are told once, at the end of ``fit``, in a
        :class:`~sklearn.exceptions.ConvergenceWarning` that names the solver
        that ran, why the fallback ran and, when the inputs look unscaled,
        suggests scaling them (cvxpy's own warnings are not issued).

    cvxpy_solver : str, default='CLARABEL'
        The cvxpy conic solver used by ``solver='cvxpy'`` and by the
        fallback; it must be installed and handle second-order cones
        (e.g. ``'CLARABEL'``, ``'SCS'``, ``'ECOS'``, ``'MOSEK'``).

    refresh_interval : int >= 1, default=16
        Steps between two refreshes of the recorded norms' histories,
        features and sampling scores, done for the whole block at once
        (with the one read of the device per block: the gain ratio). Within a
        block :math:`p` stays as it was at its start, which keeps sampling
        unbiased; ``1`` is the paper's step-by-step algorithm, at several
        times the bookkeeping cost per step on a CPU (:doc:`/benchmarks`).

    uniform_fallback : 'timed', float > 0 or None, default='timed'
        The speed governor, beyond the paper: importance sampling pays only
        when its gain ratio :math:`\hat r` (uniform steps of progress per
        step) exceeds its cost :math:`\kappa` (wall-clock time of a step over
        that of uniform SGD's step). At the end of every epoch that
        importance-sampled, RAIS predicts its speed-up
        :math:`\hat r / \kappa`; below 0.95 the next epoch is uniform SGD's
        (a random permutation, no gradient-norm bookkeeping, learning-rate
        factor 1), and importance sampling is tried again after 1, 2, 4, ...
        (at most 8) such epochs, the wait doubling with every try that does
        not pay. ``history_`` records every epoch's ``sampling``, the
        ``sampling_decision`` and the ``predicted_speedup``.
        ``'timed'``: :math:`\kappa` is measured (importance-sampled blocks
        against uniform steps, whose cost is timed in the governor's uniform
        epochs, or estimated from RAIS's first epoch less its bookkeeping);
        decisions then depend on the machine's speed, so two fits with the
        same ``random_state`` are identical only while the governor decides
        alike (runs too short to time, under 0.25 s of sampled steps, keep
        sampling). A number: :math:`\kappa` assumed, decisions reproducible
        (e.g. ``1.0`` stops importance sampling only where its gain ratio is
        below 0.95, never). ``None``: never fall back, the paper's algorithm.

    {shared_parameters}

        RAIS's defaults differ for two of them, following the paper:
        ``optimizer='sgd'`` (with ``momentum=0.9``) and ``lr=0.05``.

    Attributes
    ----------
    {shared_attributes}

        RAIS adds to every epoch of ``history_``: ``gain_ratio`` (mean over
        the epoch's steps), ``epochs_equivalent`` (at the epoch's end),
        ``solve_seconds`` and ``solve_status`` of the (PT) solves completed
        in the epoch (``'none'`` if there was none), ``solves`` (their
        number) and ``solver_fallbacks`` (how many of them the Newton solver
        handed to cvxpy), ``effective_sample_size``
        of the latest :math:`p` as a fraction of ``n`` (1 for uniform),
        ``outlier_fraction`` of the drawn examples, and the speed governor's
        ``sampling`` (``'importance'`` if any step of the epoch drew from
        :math:`p`, else ``'uniform'``), ``sampling_decision`` (why, and how
        the next epoch samples) and ``predicted_speedup`` (``None`` in
        epochs without a decision).

    uncertainty_set_ : UncertaintySet or None
        The last trained :math:`c, d` (``.c``, ``.d``, ordered as
        ``feature_names_uncertainty_``), with the status and duration of the
        solve; ``None`` if (PT) never succeeded or ``oracle=True``.

    feature_names_uncertainty_ : tuple of str
        Names of the RAIS features, the coordinates of ``c`` and ``d``.

    See Also
    --------
    ERMClassifier : the same network with uniform minibatches.
    RGDClassifier : reweights losses instead of resampling examples.

    References
    ----------
    T. B. Johnson and C. Guestrin. "Training Deep Models Faster with Robust,
    Approximate Importance Sampling." NeurIPS, 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_reweight import RAISClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> rais = RAISClassifier(max_epochs=10, random_state=0).fit(X / 16, y)
    >>> rais.score(X / 16, y) > 0.95
    True
    >>> bool(rais.history_[-1, "epochs_equivalent"] >= 10)
    True
    """

    _parameter_constraints: dict = {
        **BaseReweightingClassifier._parameter_constraints,
        "grad_norm": [StrOptions(set(GRAD_NORMS))],
        "oracle": ["boolean"],
        "history_size": [Interval(Integral, 1, None, closed="left")],
        "gain_ema": [Interval(Real, 0, 1, closed="right")],
        "outlier_threshold": [Interval(Real, 0, None, closed="neither")],
        "lr_scaling": ["boolean"],
        "solver": [StrOptions(set(SOLVERS))],
        "cvxpy_solver": [StrOptions(set(CVXPY_SOLVERS))],
        "refresh_interval": [Interval(Integral, 1, None, closed="left")],
        "uniform_fallback": [
            StrOptions(set(UNIFORM_FALLBACKS)),
            Interval(Real, 0, None, closed="neither"),
            None,
        ],
    }

    def __init__(
        self,
        grad_norm: str = "last_layer",
        oracle: bool = False,
        history_size: int = 20_000,
        gain_ema: float = 0.01,
        outlier_threshold: float = 100.0,
        lr_scaling: bool = True,
        solver: str = "newton",
        cvxpy_solver: str = "CLARABEL",
        refresh_interval: int = REFRESH_INTERVAL,
        uniform_fallback: str | float | None = "timed",
        *,
        module: nn.Module | ModuleFactory | None = None,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        dropout: float = 0.0,
        augmentation: str | None = None,
        optimizer: str | type[torch.optim.Optimizer] = PAPER_DEFAULTS["optimizer"],
        lr: float = PAPER_DEFAULTS["lr"],
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
        self.grad_norm = grad_norm
        self.oracle = oracle
        self.history_size = history_size
        self.gain_ema = gain_ema
        self.outlier_threshold = outlier_threshold
        self.lr_scaling = lr_scaling
        self.solver = solver
        self.cvxpy_solver = cvxpy_solver
        self.refresh_interval = refresh_interval
        self.uniform_fallback = uniform_fallback

    def _make_policy(self) -> ImportanceSamplingPolicy:
        if self.oracle:
            return OraclePolicy(grad_norm=self.grad_norm, lr_scaling=self.lr_scaling)
        return RAISPolicy(
            grad_norm=self.grad_norm,
            history_size=self.history_size,
            gain_ema=self.gain_ema,
            outlier_threshold=self.outlier_threshold,
            lr_scaling=self.lr_scaling,
            solver=self.solver,
            cvxpy_solver=self.cvxpy_solver,
            refresh_interval=self.refresh_interval,
            uniform_fallback=self.uniform_fallback,
        )

    def _check_parameters(self) -> None:
        if self.solver == "cvxpy" and not self.oracle:
            # Only this path needs cvxpy at once; the Newton solver's fallback reports a
            # missing conic solver as a failed solve.
            try:
                check_conic_solver(self.cvxpy_solver)
            except ValueError as exc:
                name = type(self).__name__
                raise ValueError(f"The 'cvxpy_solver' parameter of {name}: {exc}") from exc

    def sampling_probabilities(self) -> NDArray[np.float64]:
        """Probability with which each training example would be drawn next.

        The distribution RAIS (or the oracle) had reached when training
        ended: large values mark the examples it prioritises (the paper's
        Figure 1), small ones those it has learnt to skip.

        Returns
        -------
        probabilities : ndarray of shape (n_samples,)
            One entry per row of the ``X`` last passed to ``fit``, summing to
            1; rows held out for early stopping have probability 0.
        """
        check_is_fitted(self)
        return self.sampling_probabilities_.copy()
