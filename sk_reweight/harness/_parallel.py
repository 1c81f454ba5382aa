"""Where the benchmark's fits run: in this process, or as tasks of a Dask cluster.

``sk-reweight bench`` hands every (dataset, seed, fold, method) fit to a
*runner* and writes each result as it arrives. :class:`SerialRunner` runs a fit
at once in this process (the default, and what ``speed`` always does: it
measures wall-clock). :class:`DaskRunner` submits it to a ``dask.distributed``
cluster, either an existing one (``--scheduler ADDRESS``) or a
:class:`~distributed.LocalCluster` of worker processes started for the run
(``--n-jobs N``); the data are loaded here once per dataset and scattered to
the cluster, so workers download nothing. Both return
:class:`concurrent.futures.Future` objects, so the benchmark loop is one loop.

dask and distributed are optional (``pip install "sk-reweight[dist]"``) and are
imported only when a :class:`DaskRunner` starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from typing import Any

import torch
from threadpoolctl import threadpool_limits


def worker_settings() -> dict[str, Any]:
    """dask settings of the workers that ``--n-jobs`` starts, for fits as fast as in-process.

    Two of dask's defaults for worker processes slow small torch fits down
    (measured in ``docs/scaling.md``): the statistical profiler, which samples
    the task's stack every 10 ms, and ``MALLOC_TRIM_THRESHOLD_=65536``, which
    makes glibc return freed memory to the system at once, so that every
    training step's tensors fault their pages in again (1.7x per fit). Both
    are turned off; ``OMP_NUM_THREADS=1`` and its kin stay.
    """
    import dask

    environment = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environment.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ": environment,
    }


DIST_HINT = 'install the optional dependencies with: pip install "sk-reweight[dist]"'


def dask_available() -> bool:
    """Whether ``dask.distributed`` can be imported (without importing it)."""
    from importlib.util import find_spec

    return find_spec("distributed") is not None


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads and the OpenMP/BLAS pools limited to ``threads`` in the block.

    Every fit of ``bench`` runs under it, in this process or on a worker:
    floating-point reductions depend on the thread count, so a fit gives the
    same scores wherever it runs only with the same number of threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def clamp_jobs(n_jobs: int, threads: int, methods: Sequence[str], cores: int) -> int:
    """The number of local worker processes that fits the cores, with a message when reduced.

    Each worker trains with ``threads`` torch threads, plus one for RAIS's
    background (PT) solver when ``rais`` is among the methods, and the workers
    together may use at most ``cores`` of them (oversubscribed OpenMP kernels
    can run many times slower).

    Examples
    --------
    >>> clamp_jobs(4, 1, ["erm", "rgd"], cores=8)
    4
    >>> clamp_jobs(4, 2, ["erm", "rais"], cores=8)  # doctest: +NORMALIZE_WHITESPACE
    --n-jobs 4 x (2 torch thread(s) + 1 for RAIS's solver) exceeds the 8 cores:
    running 2 job(s).
    2
    """
    per_job = threads + ("rais" in methods)
    fitting = max(1, cores // per_job)
    if n_jobs <= fitting:
        return n_jobs
    solver = " + 1 for RAIS's solver" if "rais" in methods else ""
    print(
        f"--n-jobs {n_jobs} x ({threads} torch thread(s){solver}) exceeds the {cores} cores: "
        f"running {fitting} job(s)."
    )
    return fitting


MAX_RETRIES = 3
"""Times a fit lost with a worker (or with the data it needed) is submitted again."""


class SerialRunner:
    """Runs every fit at once, in this process; a Ctrl-C reaches it directly."""

    def ship(self, data: Any) -> Any:
        """The object the tasks receive for ``data``: ``data`` itself."""
        return data

    def lost(self, error: BaseException) -> bool:
        """Whether ``error`` says that a fit was lost with a worker: never, in this process."""
        return False

    def recover(self, shipped: Any) -> Any:
        """``shipped`` again: data in this process cannot be lost."""
        return shipped

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        """Run ``function(*args)`` now; a finished future holds its result (errors propagate)."""
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def close(self) -> None:
        """Nothing to release."""

    def describe(self) -> str:
        return "serial, in this process"


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in the block (main thread only), so that processes started in it inherit
    the disposition: a Ctrl-C in a terminal then stops the benchmark, not its workers."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class DaskRunner:
    """Runs every fit as a task of a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``); None starts a
        :class:`~distributed.LocalCluster` of ``n_workers`` processes with one
        thread each, which is closed with the runner.
    n_workers : int
        Worker processes of the local cluster.
    """

    def __init__(self, scheduler: str | None, n_workers: int = 1) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            message = f"--n-jobs and --scheduler need dask.distributed: {DIST_HINT}"
            raise ImportError(message) from exc
        self.cluster = None
        if scheduler is None:
            with _sigint_ignored(), dask.config.set(worker_settings()):
                self.cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self._executor = self.client.get_executor(pure=False)
        self._local: dict[str, Any] = {}
        self._replaced: dict[str, Any] = {}

    def ship(self, data: Any) -> Any:
        """Send ``data`` to every worker of the cluster; tasks receive the returned reference.

        A copy on every worker (``broadcast``) survives the loss of any of
        them; the data are also kept here until the runner closes, so that
        :meth:`recover` can send them again if every copy is lost.
        """
        shipped = self.client.scatter(data, broadcast=True, hash=False)
        self._local[shipped.key] = data
        return shipped

    def lost(self, error: BaseException) -> bool:
        """Whether ``error``, raised by a task's future, says that the task was lost.

        A task is lost when its worker died more often than dask's
        ``distributed.scheduler.allowed-failures`` (``KilledWorker``; dask
        reschedules it silently before that) or when data it needed were lost
        with their workers (the future is cancelled).
        """
        from distributed.scheduler import KilledWorker

        return isinstance(error, CancelledError | asyncio.CancelledError | KilledWorker)

    def recover(self, shipped: Any) -> Any:
        """A reference to the data of ``shipped`` that the cluster holds (sent again if lost)."""
        shipped = self._replaced.get(shipped.key, shipped)
        if shipped.status == "finished":
            return shipped
        again = self.ship(self._local.pop(shipped.key))
        self._replaced[shipped.key] = again
        return again

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        """Submit ``function(*args)`` as a task (``function`` importable on the workers)."""
        return self._executor.submit(function, *args)

    def close(self) -> None:
        """Cancel whatever is still pending and disconnect (closing a local cluster).

        Tasks cancelled or cut short here are expected, so distributed's
        warnings about them are silenced.
        """
        logging.getLogger("distributed").setLevel(logging.ERROR)
        self._executor.shutdown(wait=False)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def describe(self) -> str:
        workers = self.client.scheduler_info().get("workers", {})
        where = "local cluster" if self.cluster is not None else self.client.scheduler.address
        return f"dask.distributed, {len(workers)} worker(s), {where}"


def make_runner(
    n_jobs: int, scheduler: str | None, threads: int, methods: Sequence[str]
) -> SerialRunner | DaskRunner:
    """The runner of ``bench --n-jobs N`` / ``--scheduler ADDRESS`` (serial by default)."""
    if scheduler is not None:
        return DaskRunner(scheduler)
    n_jobs = clamp_jobs(n_jobs, threads, methods, available_cores())
    return SerialRunner() if n_jobs == 1 else DaskRunner(None, n_jobs)
