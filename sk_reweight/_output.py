"""What ``verbose`` prints: the per-epoch table and the progress bar, fit for where they go.

On a terminal (or in a Jupyter notebook) the table marks each column's best
value in colour and ``verbose=2`` draws a progress bar over each epoch's
minibatches on the same stream, erased before the epoch's row is printed.
Redirected to a file or a pipe, the table is plain text (no ANSI escape codes)
and no bar is drawn: a log holds the table and nothing else.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, TextIO

from skorch.callbacks import Callback, PrintLog
from tqdm import tqdm


def is_interactive(stream: TextIO) -> bool:
    """Whether ``stream`` is shown to a person as it is written: a terminal or a Jupyter cell.

    A Jupyter kernel's output streams are not terminals (``isatty()`` is
    false) but render carriage returns and colours, so they count.
    """
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return type(stream).__module__.startswith("ipykernel.")


def shows_colours(stream: TextIO) -> bool:
    """Whether to colour text written to ``stream``: interactive, and ``NO_COLOR`` is unset.

    ``NO_COLOR`` (any non-empty value) turns colours off everywhere, as
    https://no-color.org asks.
    """
    return not os.environ.get("NO_COLOR") and is_interactive(stream)


class EpochTable(PrintLog):
    """skorch's :class:`~skorch.callbacks.PrintLog` with colours only where they are shown.

    The table goes to ``sys.stdout`` (as with ``print``); each row is
    coloured, the best values marked, when :func:`shows_colours` says so at
    that epoch, and plain otherwise.
    """

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self.colours_ = shows_colours(sys.stdout)
        super().on_epoch_end(net, **kwargs)

    def format_row(self, row: dict[str, Any], key: str, color: str) -> Any:
        if not self.colours_:
            row = {**row, f"{key}_best": False}  # PrintLog colours exactly the best values
        return super().format_row(row, key, color)


class EpochProgressBar(Callback):
    """``verbose=2``'s progress bar over each epoch's minibatches (training and validation).

    Drawn on ``sys.stdout``, the table's stream, and erased when the epoch
    ends, before its row is printed, so that bar and table never share a
    line; not drawn at all when the stream is not interactive
    (:func:`is_interactive`), so that logs hold only the table.
    """

    def on_epoch_begin(
        self, net: Any, dataset_train: Any = None, dataset_valid: Any = None, **kwargs: Any
    ) -> None:
        total = sum(
            math.ceil(len(dataset) / net.batch_size)
            for dataset in (dataset_train, dataset_valid)
            if dataset is not None
        )
        self.bar_ = tqdm(
            total=total,
            leave=False,
            file=sys.stdout,
            unit="batch",
            disable=not is_interactive(sys.stdout),
        )

    def on_batch_end(self, net: Any, **kwargs: Any) -> None:
        self.bar_.update()

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self.bar_.close()

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        # Training may end inside an epoch (a Ctrl-C, an error, RAIS's last epoch cut short).
        if hasattr(self, "bar_"):
            self.bar_.close()
            del self.bar_

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("bar_", None)  # a tqdm bar holds its stream: not picklable
        return state
