"""Shared helpers of the benchmark scripts: paths, thread pinning, the results-file header.

The real-data benchmarks (``bench_report.py``) run the library's own
:func:`mmfer.experiment.report` -- the one cross-validation loop -- so their
figures are the figures of ``mmfer report`` on the same config.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch

from mmfer.config import FeatureConfig
from mmfer.features.extract import extract_features

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / "runs" / "bench-cache"
RESULTS = REPO / "bench" / "results"


def set_threads(n: int) -> None:
    """Pin torch (and BLAS) intra-op threads for the whole benchmark.

    On this shared 2-core machine torch's default (2 threads) made the
    EfficientNet forward ~27x slower under load than 1 thread (3.5 s vs
    0.13 s per 224 px image, measured), because OpenMP threads spin waiting
    for a core; one thread gives stable, honest figures.
    """
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def require_data(sub: str) -> Path:
    """Return ``DATA / sub`` or exit with a message saying where the corpus is expected."""
    path = DATA / sub
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (expected the shared corpora beside the repository)")
    return path


def cold_extraction_rate(table: pd.DataFrame, cfg: FeatureConfig, modality: str, n: int) -> tuple[int, float]:
    """Time extraction of the first ``n`` samples into a fresh, empty cache.

    Returns
    -------
    (int, float)
        Samples timed and samples per second (decode + features, ``cfg.workers`` processes).
    """
    sub = table.iloc[:n]
    with tempfile.TemporaryDirectory(prefix="mmfer-bench-cold-") as tmp:
        t0 = time.perf_counter()
        extract_features(sub, cfg, tmp, modalities=(modality,), progress=False)
        dt = time.perf_counter() - t0
    return len(sub), len(sub) / dt


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_line() -> str:
    """CPU count, load average, torch/python versions."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} at start, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), python {platform.python_version()}"
    )


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def header(title: str) -> list[str]:
    """First lines of a results file: title, command, date, machine."""
    return [
        f"# {title}",
        "",
        f"- command: `{command_line()}` (from the repository root)",
        f"- date: {datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine_line()}",
    ]
