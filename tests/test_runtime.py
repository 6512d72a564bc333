"""mmfer.runtime: one place sizes threads and workers; never more than the free cores."""

from __future__ import annotations

import os

import pytest

from mmfer import runtime


@pytest.mark.parametrize("cores", [1, 2, 4, 8])
@pytest.mark.parametrize("load", [0.0, 0.6, 1.4, 3.0, 15.0])
@pytest.mark.parametrize("workers", [1, 2, 3, 16])
def test_plan_never_oversubscribes(cores: int, load: float, workers: int, monkeypatch) -> None:
    monkeypatch.delenv("MMFER_THREADS", raising=False)
    plan = runtime.plan_threads(workers=workers, cores=cores, load=load)
    free = max(1, cores - round(load))
    assert plan.workers >= 1 and plan.threads >= 1
    assert plan.workers * plan.threads <= free  # no nested parallelism beyond the free cores
    assert plan.workers == min(workers, free)


def test_plan_quiet_machine_uses_every_core(monkeypatch) -> None:
    monkeypatch.delenv("MMFER_THREADS", raising=False)
    assert runtime.plan_threads(cores=2, load=0.1) == runtime.ThreadPlan(
        cores=2, busy=0, workers=1, threads=2
    )
    # a 2-core burner (load ~2): one thread, so ours never waits on a preempted sibling
    assert runtime.plan_threads(cores=2, load=2.0).threads == 1


def test_explicit_threads_and_env_override(monkeypatch) -> None:
    monkeypatch.delenv("MMFER_THREADS", raising=False)
    assert runtime.plan_threads(threads=3, cores=4, load=10.0).threads == 3
    assert runtime.plan_threads(threads=9, cores=4, load=0.0).threads == 4  # capped at the cores
    monkeypatch.setenv("MMFER_THREADS", "1")
    assert runtime.plan_threads(cores=8, load=0.0).threads == 1


def test_configure_applies_to_torch_and_children(monkeypatch) -> None:
    import torch

    prev = torch.get_num_threads()
    monkeypatch.setenv("MMFER_THREADS", "1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    try:
        plan = runtime.configure(workers=4)
        assert plan.threads == 1 and plan.workers == 1
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert runtime.current() == plan and runtime.threads() == 1
        w, t = runtime.worker_plan(8)
        assert (w, t) == (1, 1)
    finally:
        torch.set_num_threads(prev)
        runtime._CURRENT = None


def test_whisper_and_asr_follow_the_plan(monkeypatch) -> None:
    from mmfer.features.voice import whisper

    monkeypatch.setenv("MMFER_THREADS", "1")
    runtime._CURRENT = None
    assert whisper._default_threads() == 1
