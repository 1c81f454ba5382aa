"""Estimator settings shared by the test modules."""

import numpy as np
from skorch.callbacks import Callback

FAST = {"max_epochs": 15, "n_iter_no_change": None, "device": "cpu", "random_state": 0}
"""Few epochs on the CPU with a fixed seed, every one of them run: quick, reproducible fits
(the stopping rule of ``n_iter_no_change`` would warn that 15 epochs may be too few)."""



class RecordsValidationSet(Callback):
    """Keeps the inputs of the validation split a fit trains with (``early_stopping=True``).

    A user's way to learn which rows were held out: skorch's ``train_split`` of the
    net, a :func:`skorch.helper.predefined_split`, holds the validation dataset.
    """

    def on_train_begin(self, net, **kwargs):
        self.inputs_ = net.train_split.keywords["valid_ds"].X.cpu().numpy()


def held_out_rows(estimator, X):
    """Positions in ``X`` (distinct rows) of the rows that the last fit held out.

    ``estimator`` was fitted with a ``("validation_set", RecordsValidationSet())`` callback.
    """
    recorded = dict(estimator.net_.callbacks_)["validation_set"].inputs_
    held_out = {row.tobytes() for row in recorded.reshape(len(recorded), -1)}
    rows = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    assert len({row.tobytes() for row in rows}) == len(rows), "the rows of X must be distinct"
    return np.flatnonzero([row.tobytes() in held_out for row in rows])
