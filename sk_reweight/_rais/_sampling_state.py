r"""What RAIS samples from between two (PT) solves, as one immutable value.

An uncertainty set :math:`(c, d)` turns into sampling through four things that
belong together: the coefficients, every example's projections
:math:`\langle c, s_i\rangle, \langle d, s_i\rangle` (from which the robust
scores of Proposition 4.1 follow without an :math:`n \times d` product), the
inverse-CDF table of :math:`p \propto v` and the outlier bounds of section 4.5.
:class:`SamplingState` holds them as one frozen value: RAIS has one, or none
(uniform sampling), never a part of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._history import FEATURE_NAMES
from ._sampling import SamplingTable
from ._state_dict import checked_keys, restored_tensor
from ._uncertainty import UncertaintySet, outlier_bound, robust_scores, sampling_distribution


def projections(coefficients: Tensor, features: Tensor) -> Tensor:
    r""":math:`(\langle c, s\rangle, \langle d, s\rangle)` of feature rows; non-finite → 0.

    Non-finite features only arise from diverged training, which RAIS's gain
    read reports; zeroing them keeps the draws well defined meanwhile.

    Parameters
    ----------
    coefficients : Tensor of shape (2, n_features)
        The rows :math:`c` and :math:`d`.
    features : Tensor of shape (n_rows, n_features)

    Returns
    -------
    projections : Tensor of shape (2, n_rows)
    """
    return torch.nan_to_num_(coefficients @ features.T, nan=0.0, posinf=0.0)


@dataclass(frozen=True)
class SamplingState:
    r"""The robust scores of one uncertainty set, ready for minibatch draws.

    Attributes
    ----------
    coefficients : Tensor of shape (2, n_features)
        :math:`c` and :math:`d` of the set, float32, on the training device.
    projections : Tensor of shape (2, n)
        :math:`\langle c, s_i\rangle` and :math:`\langle d, s_i\rangle` of
        every example's features as last recorded.
    table : SamplingTable
        :math:`p \propto` :func:`robust_scores` of the projections.
    bounds : Tensor of shape (n,)
        Every example's :func:`outlier_bound` at ``outlier_threshold``.
    outlier_threshold : float
        :math:`\tau` of section 4.5.
    """

    coefficients: Tensor
    projections: Tensor
    table: SamplingTable
    bounds: Tensor
    outlier_threshold: float

    @classmethod
    def of(
        cls, coefficients: Tensor, projections: Tensor, outlier_threshold: float
    ) -> SamplingState:
        """The state of these coefficients and projections: table and bounds built from them."""
        table = SamplingTable(robust_scores(*projections))
        bounds = outlier_bound(*projections, outlier_threshold)
        return cls(coefficients, projections, table, bounds, outlier_threshold)

    @classmethod
    def from_set(
        cls, uncertainty_set: UncertaintySet, features: Tensor, outlier_threshold: float
    ) -> SamplingState:
        """Sampling from a solved set, with ``features`` (n, n_features) of every example."""
        coefficients = torch.as_tensor(
            np.stack([uncertainty_set.c, uncertainty_set.d]),
            dtype=torch.float32,
            device=features.device,
        )
        return cls.of(coefficients, projections(coefficients, features), outlier_threshold)

    def refreshed(self, rows: Tensor, features: Tensor) -> SamplingState:
        """The state after the examples ``rows`` took new ``features`` (repeated rows alike).

        Only their projections are computed; the table and the bounds are
        rebuilt, over all examples, once per bookkeeping block.
        """
        fresh = self.projections.index_copy(1, rows, projections(self.coefficients, features))
        return SamplingState.of(self.coefficients, fresh, self.outlier_threshold)

    @property
    def scores_all_zero(self) -> bool:
        """Whether every score is zero, so that nothing can be drawn (reads the device)."""
        return bool(self.table.total <= 0)

    def probabilities(self) -> Tensor:
        """The sampling distribution :math:`p` over the training set (float32)."""
        return sampling_distribution(robust_scores(*self.projections)).float()

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Tensor]:
        """``coefficients`` (2, n_features) and ``projections`` (2, n); the rest follows."""
        return {"coefficients": self.coefficients, "projections": self.projections}

    @classmethod
    def from_state_dict(
        cls, state: Any, n_samples: int, device: torch.device, outlier_threshold: float
    ) -> SamplingState:
        """The state :meth:`state_dict` saved, for a fit on ``n_samples`` examples."""
        state = checked_keys(state, ("coefficients", "projections"), "sampling")
        shapes = {"coefficients": (2, len(FEATURE_NAMES)), "projections": (2, n_samples)}
        coefficients, fresh = (
            restored_tensor(state[key], torch.empty(shape, device=device), f"sampling.{key}")
            for key, shape in shapes.items()
        )
        return cls.of(coefficients, fresh, outlier_threshold)
