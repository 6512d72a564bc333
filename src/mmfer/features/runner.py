"""Where units are computed: in-process, a local process pool, or a dask.distributed cluster.

Every failure is turned into a picklable :class:`Outcome` (no exception objects
cross process boundaries); the calling process writes the cache. Workers build
their extractors once (:func:`mmfer.features.extractors.extractors_for`) with
their share of the cores.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from mmfer.config import FeatureConfig
from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.features.extractors import Extractors, extractors_for
from mmfer.features.units import Unit

log = logging.getLogger(__name__)

__all__ = ["Outcome", "error_from", "iter_dask", "iter_local", "run_unit"]


@dataclass
class Outcome:
    """What a worker sends back for one unit (picklable, no exception objects)."""

    key: str
    arrays: dict[str, np.ndarray] | None = None
    error_kind: str | None = None  # "missing" | "failed" | "unexpected"
    problem: str = ""
    seconds: float = 0.0


def run_unit(unit: Unit, ex: Extractors) -> Outcome:
    """Compute one unit, turning every failure into a picklable :class:`Outcome`."""
    t0 = time.perf_counter()
    try:
        arrays = ex.compute(unit)
        return Outcome(unit.key, arrays=arrays, seconds=time.perf_counter() - t0)
    except FeatureError as e:
        kind = "missing" if isinstance(e, ModalityMissing) else "failed"
        return Outcome(unit.key, error_kind=kind, problem=e.problem, seconds=time.perf_counter() - t0)
    except Exception as e:
        # Third-party decoders raise all sorts on odd files; mask the modality but do not
        # cache it (it may be a transient failure or a bug worth fixing and re-running).
        tb = traceback.format_exc(limit=4)
        log.debug("unexpected error on %s:\n%s", unit.source, tb)
        return Outcome(
            unit.key,
            error_kind="unexpected",
            problem=f"unexpected {type(e).__name__}: {e}",
            seconds=time.perf_counter() - t0,
        )


def _pool_init(cfg: FeatureConfig, n_threads: int = 1) -> None:
    """Pool worker start: size its thread pools, then build its extractors once."""
    # N workers x T threads <= free cores: the MFCC filterbank (OpenBLAS), torch and
    # CTranslate2 would otherwise each start one thread per core in every worker.
    from mmfer.runtime import configure_worker

    configure_worker(n_threads)
    extractors_for(cfg, limit_threads=True)


def _pool_unit(unit: Unit, cfg: FeatureConfig) -> Outcome:
    """One unit in a local pool worker (its extractors were built by :func:`_pool_init`)."""
    return run_unit(unit, extractors_for(cfg, limit_threads=True))


def _dask_unit(unit: Unit, cfg: FeatureConfig) -> Outcome:
    """One unit in a dask worker (one task thread per worker process)."""
    from mmfer import runtime

    if runtime.current().workers != 1 or runtime.current().threads != 1:
        runtime.configure_worker(1)  # dask runs one task thread per worker process (threads_per_worker=1)
    return run_unit(unit, extractors_for(cfg, limit_threads=True))


def iter_local(todo: list[Unit], cfg: FeatureConfig, ex: Extractors) -> Iterator[Outcome]:
    """Outcomes of ``todo`` in completion order: in-process, or a process pool of at most ``cfg.workers``.

    Parameters
    ----------
    todo
        Keyed units to compute.
    cfg
        Feature config (``workers``; shipped to pool workers).
    ex
        This process's extractors (used when one worker is planned).
    """
    from mmfer.runtime import worker_plan

    # features.workers is an upper bound: on a busy machine fewer workers run (mmfer.runtime)
    n_workers, n_threads = worker_plan(min(cfg.workers, len(todo)))
    if n_workers <= 1:
        for u in todo:
            yield run_unit(u, ex)
        return
    # Default start method (fork on Linux): workers inherit imported modules and numba's
    # compiled MFCC kernels instead of re-importing and re-loading them.
    with ProcessPoolExecutor(
        max_workers=n_workers, initializer=_pool_init, initargs=(cfg, n_threads)
    ) as pool:
        futures: list[Future[Outcome]] = [pool.submit(_pool_unit, u, cfg) for u in todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:  # strict-mode raise or Ctrl-C: drop what has not started
                fut.cancel()


def iter_dask(todo: list[Unit], cfg: FeatureConfig) -> Iterator[Outcome]:
    """Outcomes of ``todo`` in completion order from a dask.distributed cluster.

    ``cfg.dask_address`` names a running scheduler; otherwise a local cluster of
    ``cfg.workers`` single-threaded processes is started and closed afterwards.

    Raises
    ------
    ConfigError
        dask[distributed] is not installed.
    """
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_as_completed
    except ImportError as e:  # pragma: no cover - dask is an optional extra
        raise ConfigError(
            f"features.backend=dask needs dask[distributed] (pip install 'mmfer[dist]'): {e}"
        ) from None
    cluster = None
    if cfg.dask_address:
        client = Client(cfg.dask_address)
    else:
        cluster = LocalCluster(
            n_workers=max(1, cfg.workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        futures = client.map(_dask_unit, todo, cfg=cfg, pure=False)
        try:
            for fut in dask_as_completed(futures):
                yield fut.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def error_from(outcome: Outcome, unit: Unit) -> FeatureError:
    """The failure of ``outcome`` re-created as an exception naming ``unit``'s file."""
    cls = ModalityMissing if outcome.error_kind == "missing" else FeatureError
    return cls(unit.path, outcome.problem)
