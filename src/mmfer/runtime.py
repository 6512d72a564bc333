"""The one place that decides how many threads and worker processes mmfer uses.

Why: on a 2-core machine that other jobs keep busy, torch's default (one intra-op
thread per core) times N extraction workers times OpenMP/BLAS threads that spin while
waiting oversubscribes the cores: the demo's user CPU time grew ~6x under load. So

* the budget is the cores this process may run on (``os.sched_getaffinity``) minus the
  ones other processes keep busy (the 1-minute load average), at least one;
* ``workers`` processes each get ``budget // workers`` threads, so
  ``workers x threads <= budget`` (no nested parallelism);
* torch intra-op, OpenMP/BLAS (threadpoolctl and the ``*_NUM_THREADS``
  variables for child processes) and CTranslate2 (Whisper, ASR) all follow that one number.

:func:`configure` is called by the ``mmfer`` command (``mmfer.cli.main``) and by every
extraction worker (the pool initialiser); library users may call it themselves.
Explicit settings win: ``train.threads`` / ``--threads`` > 0 fix the thread count,
``MMFER_THREADS`` in the environment fixes the budget.

Examples
--------
>>> from mmfer.runtime import plan_threads
>>> plan_threads(workers=4, cores=2, load=0.0)
ThreadPlan(cores=2, busy=0, workers=2, threads=1)
>>> plan_threads(workers=1, cores=2, load=5.3)  # cores busy elsewhere: one thread, no spinning
ThreadPlan(cores=2, busy=1, workers=1, threads=1)
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = [
    "ThreadPlan",
    "apply_threads",
    "configure",
    "configure_worker",
    "current",
    "plan_threads",
    "threads",
    "worker_plan",
]

#: Environment variables read by OpenMP/BLAS runtimes when they start (child processes).
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class ThreadPlan:
    """Threads and worker processes for this machine right now.

    Attributes
    ----------
    cores
        CPUs this process may run on (affinity mask).
    busy
        Cores taken by other processes, estimated from the 1-minute load average.
    workers
        Extraction worker processes (1 = in process).
    threads
        Threads per process (torch intra-op, OpenMP/BLAS, CTranslate2).
    """

    cores: int
    busy: int
    workers: int
    threads: int


def _affinity_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _load1() -> float:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return 0.0


def plan_threads(
    *,
    workers: int = 1,
    threads: int = 0,
    cores: int | None = None,
    load: float | None = None,
) -> ThreadPlan:
    """Decide workers and threads per process (pure: no side effect).

    Parameters
    ----------
    workers
        Worker processes asked for (``features.workers``); capped by the free cores.
    threads
        Threads per process asked for (``train.threads``, ``--threads``); 0 = decide.
        An explicit value is kept (capped at ``cores``) but still divided among workers.
    cores
        Usable CPUs (default: the affinity mask).
    load
        1-minute load average (default: the machine's), taken as the number of cores other
        processes keep busy: ``busy = min(cores - 1, round(load))``. Callers already
        computing pass their own share subtracted (:func:`worker_plan`).
    """
    n = cores if cores is not None else _affinity_cores()
    ld = _load1() if load is None else float(load)
    busy = min(n - 1, max(0, round(ld)))
    budget = n - busy
    env = os.environ.get("MMFER_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        budget = min(n, int(env))
    if threads > 0:
        budget = min(n, int(threads))
    w = max(1, min(int(workers), budget))
    return ThreadPlan(cores=n, busy=busy, workers=w, threads=max(1, budget // w))


_CURRENT: ThreadPlan | None = None


def configure(*, workers: int = 1, threads: int = 0, quiet: bool = True) -> ThreadPlan:
    """Plan threads (:func:`plan_threads`) and apply them to this process.

    Sets torch intra-op threads (if torch is loaded), caps every loaded OpenMP/BLAS pool
    with threadpoolctl, and exports
    ``OMP_NUM_THREADS`` & co. (plus ``OMP_WAIT_POLICY=PASSIVE`` when other processes keep
    cores busy: spinning threads there burn CPU time for nothing) for processes started
    afterwards and libraries loaded afterwards.

    Returns
    -------
    ThreadPlan
        What was applied; :func:`current` returns it afterwards.
    """
    global _CURRENT
    plan = plan_threads(workers=workers, threads=threads)
    apply_threads(plan.threads, busy=plan.busy > 0)
    _CURRENT = plan
    (log.debug if quiet else log.info)(
        "threads: %d core(s), ~%d busy elsewhere -> %d worker(s) x %d thread(s)",
        plan.cores,
        plan.busy,
        plan.workers,
        plan.threads,
    )
    return plan


def apply_threads(n: int, *, busy: bool = False) -> None:
    """Use ``n`` threads in this process: torch, OpenMP/BLAS, and the environment for children."""
    n = max(1, int(n))
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    if busy or n == 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Libraries not loaded yet read the variables when they start (torch takes its intra-op
    # default from OMP_NUM_THREADS): the CLI need not import torch to size it.
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    if "numpy" in sys.modules:  # BLAS/OpenMP pools already loaded (numpy, scipy, torch's OpenMP)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)


def configure_worker(n_threads: int) -> ThreadPlan:
    """In an extraction worker process: use ``n_threads`` (from :func:`worker_plan` of the parent)."""
    global _CURRENT
    base = current()
    apply_threads(n_threads, busy=base.busy > 0)
    _CURRENT = ThreadPlan(cores=base.cores, busy=base.busy, workers=1, threads=max(1, int(n_threads)))
    return _CURRENT


def current() -> ThreadPlan:
    """The plan last applied by :func:`configure`, else one computed now (not applied)."""
    return _CURRENT if _CURRENT is not None else plan_threads()


def threads() -> int:
    """Threads per process of the current plan (CTranslate2 ``intra_threads``, torch)."""
    return current().threads


def worker_plan(requested: int) -> tuple[int, int]:
    """``(workers, threads_per_worker)`` for an extraction pool asked ``requested`` workers.

    Re-reads the load now (extraction may start long after the CLI did), so that
    ``workers x threads_per_worker`` never exceeds the free cores.
    """
    # this process has been computing: it is one of the runnable tasks the load counts
    plan = plan_threads(workers=requested, load=max(0.0, _load1() - 1.0))
    return plan.workers, plan.threads
