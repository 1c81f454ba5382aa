"""Dropout that draws its masks from the running fit's own generator."""

from __future__ import annotations

from torch import Tensor, nn

from ._fit_context import running_fit


class FitDropout(nn.Dropout):
    r""":class:`torch.nn.Dropout` with masks from the fit's generator, not torch's global one.

    During a classifier's ``fit`` each element is kept with probability
    :math:`1 - p` and scaled by :math:`1 / (1 - p)` (inverted dropout, as
    :class:`torch.nn.Dropout`), the keep mask drawn by
    :meth:`~sk_reweight._fit_context.RunningFit.generator` for the tensor's
    device. A fit's masks therefore depend on its ``random_state`` only, not
    on what other threads draw meanwhile, and torch's global generator is left
    alone. Outside a fit (a module trained by hand) it is
    :class:`torch.nn.Dropout`; in evaluation mode the identity.
    """

    def forward(self, X: Tensor) -> Tensor:
        fit = running_fit()
        if not self.training or self.p == 0 or fit is None:
            return super().forward(X)
        if self.p == 1:
            return X * 0
        keep = 1.0 - self.p
        mask = X.new_empty(X.shape).bernoulli_(keep, generator=fit.generator(X.device))
        return X * mask / keep
