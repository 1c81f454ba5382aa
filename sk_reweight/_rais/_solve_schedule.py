"""When (PT) is solved and when its solutions take effect: a background thread on a fixed clock.

Section 4.3 of the paper solves (PT) every :math:`\\lceil |D|/M \\rceil`
minibatches, asynchronously, while training continues. Here a solve submitted
at step :math:`t` is installed at step :math:`t + \\lceil |D|/M \\rceil` exactly,
waiting for it if it is late, so that a fit does not depend on thread timing
and ``random_state`` reproduces it bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._uncertainty import UncertaintySet


class BackgroundSolves:
    """One worker thread that solves (PT) while training runs, on a fixed step clock.

    Parameters
    ----------
    solve : callable
        ``solve(*args, **kwargs) -> UncertaintySet``, run in the worker thread.
    interval : int
        Steps between a submission and the installation of its result, which
        is also the spacing of the submissions.
    """

    def __init__(self, solve: Callable[..., UncertaintySet], interval: int) -> None:
        self.solve = solve
        self.interval = interval
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._submitted_at: int | None = None

    @property
    def started(self) -> bool:
        """Whether any solve was submitted."""
        return self._submitted_at is not None

    @property
    def submitted_at(self) -> int | None:
        """The step at which the last solve was submitted; ``None`` before the first."""
        return self._submitted_at

    def due(self, step: int) -> bool:
        """Whether the solve submitted last is to be installed (and the next submitted) now."""
        return self._submitted_at is not None and step - self._submitted_at >= self.interval

    def submit(self, step: int, *args: Any, **kwargs: Any) -> None:
        """Start a solve in the worker thread; it becomes due ``interval`` steps later."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rais-pt")
        self._pending = self._executor.submit(self.solve, *args, **kwargs)
        self._submitted_at = step

    def collect(self) -> Future | None:
        """The solve submitted last, once finished (waits for it); ``None`` if there is none."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # waits without raising
        return pending

    def in_flight(self) -> Future | None:
        """The solve submitted last and not collected yet, once finished (waits for it).

        It stays pending: :meth:`collect` still returns it when it is due.
        """
        if self._pending is not None:
            self._pending.exception()  # waits without raising
        return self._pending

    def resume(self, submitted_at: int | None, pending: Future | None) -> None:
        """Continue a clock whose last solve was submitted at ``submitted_at`` (a checkpoint)."""
        self._submitted_at, self._pending = submitted_at, pending

    def shutdown(self) -> Future | None:
        """Stop the worker thread after collecting the last solve, which is returned."""
        pending = self.collect()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        return pending

    def __getstate__(self) -> dict[str, Any]:
        # A thread and a future cannot be pickled; a fitted policy has neither in use.
        return {**self.__dict__, "_executor": None, "_pending": None}
