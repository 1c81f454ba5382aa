"""Paired cross-validated comparison of classifiers, shared by the demo and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

METRICS = ("accuracy", "balanced_accuracy", "log_loss", "macro_f1")
"""Scores of :func:`classification_scores`; all but ``log_loss`` are better when higher."""


def with_random_state(model: BaseEstimator, seed: int) -> BaseEstimator:
    """An unfitted copy of ``model`` whose classifier (a pipeline's last step) has this seed."""
    model = clone(model)
    if isinstance(model, Pipeline):
        return model.set_params(**{f"{model.steps[-1][0]}__random_state": seed})
    return model.set_params(random_state=seed)


SPLITS_PER_HOLDOUT = 5
"""A held-out split is the first fold of a 5-fold split: 80 % training, 20 % test."""


def training_seed(seed: int, fold: int) -> int:
    """``random_state`` of every run trained on fold ``fold`` of repetition ``seed``.

    The harness's one seeding rule (``bench``, ``speed``, the demo and the
    scripts in ``benchmarks/``): repetition ``s`` shuffles its stratified folds
    with ``random_state=s`` (:func:`stratified_folds`), and every method trained
    on fold ``f`` of it gets ``random_state = 1000 s + f``. Methods on one fold
    thus start from the same weights and see the same minibatch order, so their
    differences are paired, and no two folds share a seed (up to 1000 folds).

    Examples
    --------
    >>> training_seed(0, 3), training_seed(2, 0)
    (3, 2000)
    """
    if not 0 <= fold < 1000:
        raise ValueError(f"fold must be in [0, 1000), got {fold}")
    return 1000 * seed + fold


@dataclass(frozen=True)
class Fold:
    """One training / test split of :func:`stratified_folds`.

    Attributes
    ----------
    seed : int
        The repetition, which shuffled the split.
    fold : int
        The fold's index in its repetition.
    train, test : ndarray of int
        Row indices.
    """

    seed: int
    fold: int
    train: NDArray[np.intp]
    test: NDArray[np.intp]

    @property
    def training_seed(self) -> int:
        """:func:`training_seed` of this fold."""
        return training_seed(self.seed, self.fold)


def stratified_folds(y: ArrayLike, n_splits: int, seeds: Iterable[int]) -> Iterator[Fold]:
    """Stratified ``n_splits``-fold cross-validation, once per seed, shuffled by that seed."""
    y = np.asarray(y)
    for seed in seeds:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
            yield Fold(seed, fold, train, test)


def holdout(y: ArrayLike, seed: int) -> Fold:
    """The held-out split of repetition ``seed``: fold 0 of :func:`stratified_folds` (80 / 20)."""
    return next(stratified_folds(y, SPLITS_PER_HOLDOUT, [seed]))


def cross_validate_methods(
    X: ArrayLike,
    y: ArrayLike,
    methods: dict[str, BaseEstimator],
    n_splits: int,
    seeds: Iterable[int] = (0,),
) -> pd.DataFrame:
    """Test accuracy and fit time of every method on the same folds.

    The folds are :func:`stratified_folds`; on each, every method trains with
    the fold's :func:`training_seed`, so that methods sharing a network start
    from the same weights and see the same minibatch order: their differences
    are paired.

    Returns
    -------
    results : DataFrame
        One row per fold and method: ``seed``, ``fold``, ``method``,
        ``accuracy``, ``fit_seconds``.
    """
    X, y = np.asarray(X), np.asarray(y)
    rows = []
    for split in stratified_folds(y, n_splits, seeds):
        for name, method in methods.items():
            model = with_random_state(method, split.training_seed)
            start = time.perf_counter()
            model.fit(X[split.train], y[split.train])
            fit_seconds = time.perf_counter() - start
            accuracy = model.score(X[split.test], y[split.test])
            rows.append(
                {
                    "seed": split.seed,
                    "fold": split.fold,
                    "method": name,
                    "accuracy": accuracy,
                    "fit_seconds": fit_seconds,
                }
            )
    return pd.DataFrame(rows)


def classification_scores(
    y_true: ArrayLike, proba: NDArray[np.floating], labels: ArrayLike
) -> dict[str, float]:
    """Accuracy, balanced accuracy, log-loss and macro-F1 of predicted probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities, columns ordered as ``labels``.
    labels : array-like of shape (n_classes,)
        Every class of the dataset, so that the log-loss is defined on a test
        set that lacks some of them.
    """
    labels = np.asarray(labels)
    y_pred = labels[np.argmax(proba, axis=1)]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "log_loss": float(log_loss(y_true, proba, labels=labels)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }


def corrected_ttest(differences: ArrayLike, test_over_train: float) -> float:
    r"""Two-sided p-value of the Nadeau-Bengio corrected resampled t-test of a zero mean.

    Folds of (repeated) cross-validation share training data, so their score
    differences are correlated and the paired t-test is optimistic. The
    correction (Nadeau & Bengio, 2003) inflates the variance of the mean:

    .. math::

        t = \bar d \Big/ \sqrt{\left(\tfrac1J + \tfrac{n_\text{test}}{n_\text{train}}\right) s_d^2}

    over :math:`J` folds, with :math:`J - 1` degrees of freedom. With
    ``test_over_train=0`` it is the ordinary one-sample t-test.

    Parameters
    ----------
    differences : array-like of shape (n_folds,)
        Per-fold score differences between two methods.
    test_over_train : float
        Size of a test fold over its training set, ``1 / (k - 1)`` for k-fold.
    """
    differences = np.asarray(differences, dtype=np.float64)
    variance = (1 / len(differences) + test_over_train) * differences.var(ddof=1)
    if variance == 0:
        return 1.0 if differences.mean() == 0 else 0.0
    t = differences.mean() / np.sqrt(variance)
    return float(2 * stats.t.sf(abs(t), df=len(differences) - 1))


@dataclass(frozen=True)
class PairedComparison:
    """A method's fold scores summarised and compared with a baseline's, fold by fold."""

    mean: float
    std: float
    difference: float
    wins: int
    ties: int
    losses: int
    p_ttest: float
    p_corrected: float


def compare_to_baseline(
    scores: NDArray[np.float64], baseline: NDArray[np.float64], test_over_train: float
) -> PairedComparison:
    """Mean, spread, paired difference, wins/ties/losses and both p-values against ``baseline``.

    With fewer than two folds the spread and the p-values are NaN.
    """
    differences = scores - baseline
    if len(differences) < 2:
        std = p_ttest = p_corrected = float("nan")
    else:
        std = float(scores.std(ddof=1))
        p_ttest = float(stats.ttest_rel(scores, baseline).pvalue) if differences.any() else 1.0
        p_corrected = corrected_ttest(differences, test_over_train)
    return PairedComparison(
        mean=float(scores.mean()),
        std=std,
        difference=float(differences.mean()),
        wins=int((differences > 0).sum()),
        ties=int((differences == 0).sum()),
        losses=int((differences < 0).sum()),
        p_ttest=p_ttest,
        p_corrected=p_corrected,
    )


def compare_methods(
    results: pd.DataFrame,
    baseline: str,
    test_over_train: float,
    metric: str = "accuracy",
    fold_columns: Sequence[str] = ("seed", "fold"),
) -> dict[str, PairedComparison]:
    """:func:`compare_to_baseline` for every method of :func:`cross_validate_methods`'s results.

    Folds are identified by ``fold_columns`` (a repetition's seed and the fold
    in it); only folds that every method finished count.
    """
    scores = results.pivot_table(
        index=list(fold_columns), columns="method", values=metric, aggfunc="first"
    ).dropna()
    reference = scores[baseline].to_numpy()
    return {
        method: compare_to_baseline(scores[method].to_numpy(), reference, test_over_train)
        for method in results["method"].unique()
    }


def markdown_table(frame: pd.DataFrame) -> str:
    """Render a DataFrame (without its index) as a GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(map(str, frame.columns)) + " |",
        "|" + "|".join("---" for _ in frame.columns) + "|",
        *("| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)),
    ]
    return "\n".join(lines)
