"""When (PT) is solved and when its solutions take effect: a background thread on a fixed clock.

Section 4.3 of the paper solves (PT) every :math:`\\lceil |D|/M \\rceil`
minibatches, asynchronously, while training continues. Here a solve submitted
at step :math:`t` is installed at step :math:`t + \\lceil |D|/M \\rceil` exactly,
waiting for it if it is late, so that a fit does not depend on thread timing
and ``random_state`` reproduces it bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._pt_problem import SolverError
from ._state_dict import checked_keys
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

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``solves``: the clock and the solve in flight, waited for.

        ``submitted_at``, the step of the last submission (``None`` before
        the first); ``pending``, ``None`` or the outcome of the solve not yet
        installed: ``{"set": UncertaintySet.state_dict()}`` or
        ``{"error": message}``. It stays pending: :meth:`collect` still
        returns it when it is due.
        """
        outcome = None
        if self._pending is not None:
            error = self._pending.exception()  # waits without raising
            outcome = (
                {"set": self._pending.result().state_dict()}
                if error is None
                else {"error": str(error)}
            )
        return {"submitted_at": self._submitted_at, "pending": outcome}

    def load_state_dict(self, state: Any) -> None:
        """Continue the clock of :meth:`state_dict`, its pending outcome due when it was."""
        state = checked_keys(state, ("submitted_at", "pending"), "solves")
        outcome = state["pending"]
        pending: Future | None = None
        if outcome is not None:
            pending = Future()
            if isinstance(outcome, Mapping) and set(outcome) == {"error"}:
                pending.set_exception(SolverError(outcome["error"]))
            else:
                outcome = checked_keys(outcome, ("set",), "solves.pending")
                pending.set_result(UncertaintySet.from_state_dict(outcome["set"]))
        self._submitted_at, self._pending = state["submitted_at"], pending

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
