"""Ctrl-C and SIGTERM during a long run: the run stops, keeps what finished, reports whole."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INTERRUPTED = 130
"""Exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""
TERMINATED = 143
"""Exit status of a run stopped by SIGTERM (128 + SIGTERM), as a shell reports it."""


@contextmanager
def sigterm_as_sigint() -> Iterator[list[int]]:
    """SIGTERM handled in the block as a Ctrl-C: by the SIGINT handler in effect when it comes.

    Batch schedulers and Kubernetes stop a job with SIGTERM; handled like
    Ctrl-C, it ends the fit under way at a step boundary, keeps the finished
    fits and writes the report. The yielded list records the signals
    received (the caller exits with :data:`TERMINATED`). When SIGINT is
    ignored (a background job), Python's Ctrl-C handler is installed for the
    block, so that SIGTERM still stops the run gracefully. Main thread only.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    sigint_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if sigint_ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sigint_ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM recorded, not acted on, in the block: the report is written whole.

    A second Ctrl-C (or a SIGTERM) while the stopped run writes its report
    would leave it half-written; in the block such signals are only counted,
    and a message says that the report is being finished. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def wait(signum: int, frame: Any) -> None:
        print("\nWriting the report; it takes a few seconds.", file=sys.stderr, flush=True)

    previous = {number: signal.signal(number, wait) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
