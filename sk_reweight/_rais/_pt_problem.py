r"""Problem (PT) of section 4.3 as every solver receives it: checked, rescaled, identifiable.

.. math::

    \min_{c, d \ge 0} \langle m, d \rangle
    \quad\text{s.t.}\quad
    G(c, d) = \frac{1}{|D|} \sum_{j \in D} w_j
    \frac{(\langle c, s_j\rangle - v_j)^2}{\langle d, s_j\rangle} \le 1,

with :math:`m` the mean features of the training set now (the paper's
objective :math:`\sum_i \langle d, s_i\rangle` divided by :math:`n`) and
:math:`(s_j, v_j, w_j)` the records. The solvers (``_newton``, ``_cvxpy``)
work on a :class:`PTProblem`, in which

- every array is finite (else :class:`SolverError`);
- the feature columns are divided by their mean and the norms by their
  weighted root mean square :math:`\sqrt{\frac1{|D|}\sum_j w_j v_j^2}`,
  which leaves the solution unchanged up to units (:math:`c` scales like
  :math:`v`, :math:`d` like :math:`v^2`) and keeps both solvers well
  conditioned at any loss scale;
- only identifiable coefficients are variables. A column that is zero in
  every record does not enter the constraint: nothing bounds its coefficient
  in :math:`c`, and its coefficient in :math:`d` only costs objective, so
  both are 0. Columns equal in every record, up to rounding (``var_4``,
  ``var_8`` and ``var_16`` while no example has more than 4 recorded norms),
  enter the constraint only through the sum of their coefficients: :math:`c`
  keeps the first of them (the split is arbitrary, :math:`c` is not in the
  objective) and :math:`d` keeps the one with the smallest objective
  coefficient :math:`m_i` (the first among equal ones), where an optimum may
  put the whole sum. Both restrictions keep the optimal value of (PT) (up to
  the rounding tolerance) and make its solution unique in the generic case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

EQUALITY_TOLERANCE = 1e-6
"""Relative difference below which two feature values count as equal (float32 rounding)."""


class SolverError(RuntimeError):
    """(PT) could not be solved to optimality; the message says why."""


@dataclass(frozen=True)
class PTProblem:
    """The rescaled, identifiable form of (PT) that the solvers receive.

    Attributes
    ----------
    estimate_features : ndarray of shape (n_records, n_estimate)
        Rescaled feature columns on which :math:`c` acts. Both feature
        matrices are column-major, so that a block of columns is contiguous.
    uncertainty_features : ndarray of shape (n_records, n_uncertainty)
        Rescaled feature columns on which :math:`d` acts.
    norms : ndarray of shape (n_records,)
        Rescaled gradient norms :math:`v_j`.
    weights : ndarray of shape (n_records,)
        Importance weights :math:`w_j`.
    objective : ndarray of shape (n_uncertainty,)
        Rescaled mean features :math:`m` of the columns of ``d``.
    estimate_columns, uncertainty_columns : ndarray of int
        Positions of those columns among the original features.
    column_scale : ndarray of shape (n_features,)
        What each original feature column was divided by.
    norm_scale : float
        What the norms were divided by.
    """

    estimate_features: NDArray[np.float64]
    uncertainty_features: NDArray[np.float64]
    norms: NDArray[np.float64]
    weights: NDArray[np.float64]
    objective: NDArray[np.float64]
    estimate_columns: NDArray[np.intp]
    uncertainty_columns: NDArray[np.intp]
    column_scale: NDArray[np.float64]
    norm_scale: float


def identifiable_columns(
    features: NDArray, mean_features: NDArray
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Columns whose coefficients in ``c`` and in ``d`` stay variables of (PT).

    Columns are grouped by equality over all records
    (:func:`equal_column_groups`); an all-zero group is dropped, every other
    group keeps its first column for ``c`` and its column of smallest
    ``mean_features`` (first among ties) for ``d``.

    Returns
    -------
    estimate_columns, uncertainty_columns : ndarray of int, sorted
    """
    estimate, uncertainty = [], []
    for members in equal_column_groups(features):
        if not features[:, members[0]].any():
            continue
        estimate.append(members[0])
        uncertainty.append(members[np.argmin(mean_features[members])])
    return np.sort(estimate).astype(np.intp), np.sort(uncertainty).astype(np.intp)


def equal_column_groups(features: NDArray) -> list[list[int]]:
    """Indices of the columns equal in every row up to rounding, grouped, each group sorted.

    Two columns are equal when every pair of entries differs by at most
    :data:`EQUALITY_TOLERANCE` times the larger magnitude: features computed
    in float32 along different paths (a mean over 4 recorded norms as the
    "mean over 8" of an example with 4 records) may differ in the last bits.
    Candidates are the columns with nearly equal sums, compared in full, so
    the cost is one pass over the matrix when no two columns are equal.
    """
    magnitudes = np.abs(features)
    sums = magnitudes.sum(axis=0)
    groups: list[list[int]] = []
    for column in range(features.shape[1]):
        for members in groups:
            first = members[0]
            bound = EQUALITY_TOLERANCE * max(sums[first], sums[column])
            if abs(sums[first] - sums[column]) <= bound and np.all(
                np.abs(features[:, first] - features[:, column])
                <= EQUALITY_TOLERANCE * np.maximum(magnitudes[:, first], magnitudes[:, column])
            ):
                members.append(column)
                break
        else:
            groups.append([column])
    return groups


def prepare_pt_problem(
    features: NDArray, norms: NDArray, weights: NDArray, mean_features: NDArray
) -> PTProblem:
    """Check, rescale and reduce the records of (PT) (see the module's docstring).

    Parameters
    ----------
    features : array-like of shape (n_records, n_features)
        :math:`s_j`, non-negative.
    norms : array-like of shape (n_records,)
        :math:`v_j`, non-negative.
    weights : array-like of shape (n_records,)
        :math:`w_j`, positive.
    mean_features : array-like of shape (n_features,)
        :math:`m`, non-negative.

    Raises
    ------
    SolverError
        If an array holds NaN or infinite values.
    """
    features, norms, weights, mean_features = (
        np.asarray(a, dtype=np.float64) for a in (features, norms, weights, mean_features)
    )
    if not all(np.isfinite(a).all() for a in (features, norms, weights, mean_features)):
        raise SolverError("the (PT) records contain NaN or infinite values")
    column_scale = features.mean(axis=0)
    column_scale[column_scale <= 0] = 1.0
    norm_scale = float(np.sqrt(np.mean(weights * norms**2)))
    if not np.isfinite(norm_scale) or norm_scale <= 0:
        norm_scale = 1.0
    scaled = features / column_scale
    estimate_columns, uncertainty_columns = identifiable_columns(features, mean_features)
    return PTProblem(
        estimate_features=np.asfortranarray(scaled[:, estimate_columns]),
        uncertainty_features=np.asfortranarray(scaled[:, uncertainty_columns]),
        norms=norms / norm_scale,
        weights=weights,
        objective=mean_features[uncertainty_columns] / column_scale[uncertainty_columns],
        estimate_columns=estimate_columns,
        uncertainty_columns=uncertainty_columns,
        column_scale=column_scale,
        norm_scale=norm_scale,
    )


def to_original_units(
    problem: PTProblem, c: NDArray, d: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Full-length :math:`c, d` in the units of the records from the problem's variables.

    Coefficients of non-identifiable columns are 0; :math:`c` is multiplied
    by the norm scale and :math:`d` by its square, both divided by the column
    scale. Signs are kept exactly.
    """
    n_features = len(problem.column_scale)
    c_full, d_full = np.zeros(n_features), np.zeros(n_features)
    c_full[problem.estimate_columns] = c * problem.norm_scale
    d_full[problem.uncertainty_columns] = d * problem.norm_scale**2
    return c_full / problem.column_scale, d_full / problem.column_scale


def to_problem_units(
    problem: PTProblem, c: NDArray, d: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The problem's variables from full-length :math:`c, d` in the units of the records.

    The inverse of :func:`to_original_units` on identifiable columns; the
    coefficients of the other columns are dropped.
    """
    c_scaled = np.asarray(c, dtype=np.float64) * problem.column_scale / problem.norm_scale
    d_scaled = np.asarray(d, dtype=np.float64) * problem.column_scale / problem.norm_scale**2
    return c_scaled[problem.estimate_columns], d_scaled[problem.uncertainty_columns]


def constraint_value(problem: PTProblem, c: NDArray, d: NDArray) -> float:
    r""":math:`G(c, d)` in the problem's units; :math:`+\infty` where some
    :math:`\langle d, s_j\rangle \le 0`."""
    uncertainty = problem.uncertainty_features @ d
    if not (uncertainty > 0).all():
        return np.inf
    residual = problem.estimate_features @ c - problem.norms
    return float(np.mean(problem.weights * residual**2 / uncertainty))
