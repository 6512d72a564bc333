"""Safetensors checkpoints, exact resume, and surviving a SIGKILL mid-training."""

from __future__ import annotations

import math
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mmfer.config import TrainConfig
from mmfer.errors import ConfigError, DataError
from mmfer.io import atomic_write_text
from mmfer.training import (
    Hook,
    TensorData,
    Trainer,
    TrainResult,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
    seed_everything,
)
from mmfer.training.checkpoint import optimizer_state_from_flat, optimizer_state_to_flat

FEATURES, STEPS, CLASSES = 4, 5, 3


class DropNet(nn.Module):
    """Masked mean + MLP with dropout, so resume must restore the torch RNG too."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(FEATURES, 12)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(12, CLASSES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, F)
        return self.head(self.drop(torch.relu(self.hidden(pooled))))  # (B, C)


def toy(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(7)) * 1.5
    x = centres[y][:, None, :] + torch.randn(n, STEPS, FEATURES, generator=g)  # (N, T, F)
    mask = torch.rand(n, STEPS, generator=g) > 0.2
    mask[:, 0] = True
    return TensorData(x, mask, y)


def run_training(
    out_dir: str | Path | None,
    *,
    epochs: int = 6,
    scheduler: str = "cosine",
    hooks: tuple[Hook, ...] = (),
    init_seed: int = 0,
    resume: bool = True,
    **kw: object,
) -> tuple[nn.Module, TrainResult]:
    """Deterministic toy run; also imported by the SIGKILL subprocess."""
    config = TrainConfig(
        epochs=epochs,
        batch_size=16,
        progress=False,
        threads=1,
        patience=0,
        scheduler=scheduler,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    seed_everything(init_seed)
    model = DropNet()
    result = Trainer(config, hooks=hooks).fit(
        model, toy(96, 1), toy(32, 2), num_classes=CLASSES, out_dir=out_dir, resume=resume
    )
    return model, result


class StopAfter(Hook):
    """Interrupt the run after epoch ``n`` (the checkpoint of epoch n is already written)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, object]) -> None:
        if metrics["epoch"] == self.n:
            trainer.request_stop()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def without_seconds(history: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# --------------------------------------------------------------------------- file format


def test_roundtrip_nested_metadata_and_dtypes(tmp_path: Path) -> None:
    tensors = {
        "w": torch.randn(3, 4),
        "view": torch.arange(12.0).reshape(3, 4).t(),  # non-contiguous view
        "scalar": torch.tensor(2.5),
        "rng": torch.get_rng_state(),
        "flags": torch.tensor([True, False]),
        "ids": torch.tensor([1, 2, 3], dtype=torch.int64),
    }
    meta = {"epoch": 3, "nested": {"a": [1, {"b": None}], "c": "x"}, "best": math.inf, "h": [{"lr": 0.1}]}
    path = save_checkpoint(tmp_path / "sub" / "c.safetensors", tensors, meta)
    back, meta_back = load_checkpoint(path)
    assert meta_back == meta
    assert read_metadata(path) == meta
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    assert [p.name for p in path.parent.iterdir()] == ["c.safetensors"]  # no temp file left


def test_unencodable_metadata_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1)}, {"bad": object()})
    assert not (tmp_path / "c.safetensors").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("truncated", "corrupt or truncated"),
        ("garbage", "corrupt or truncated"),
        ("empty", "corrupt or truncated"),
        ("no_meta", "no 'mmfer' metadata"),
    ],
)
def test_bad_files_raise_data_error_naming_file(tmp_path: Path, content: str, problem: str) -> None:
    good = save_checkpoint(tmp_path / "good.safetensors", {"w": torch.randn(64, 64)}, {"epoch": 1})
    bad = tmp_path / f"{content}.safetensors"
    if content == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif content == "garbage":
        bad.write_bytes(b"this is not a safetensors file at all")
    elif content == "empty":
        bad.write_bytes(b"")
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.ones(2)}, str(bad))
    with pytest.raises(DataError, match=problem) as info:
        load_checkpoint(bad)
    assert info.value.path == bad and str(bad) in str(info.value)
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_optimizer_state_flatten_roundtrip() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_state_to_flat(opt.state_dict())
    assert {"optim.state.0.exp_avg", "optim.state.0.exp_avg_sq", "optim.state.0.step"} <= tensors.keys()
    other = torch.optim.AdamW(model.parameters(), lr=0.5)
    other.load_state_dict(optimizer_state_from_flat(tensors, meta))
    a, b = opt.state_dict(), other.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["state"][idx][name])


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("scheduler", ["cosine", "plateau"])
def test_resume_reproduces_uninterrupted_run(tmp_path: Path, scheduler: str) -> None:
    straight, straight_result = run_training(tmp_path / "a", scheduler=scheduler)

    _, partial = run_training(tmp_path / "b", scheduler=scheduler, hooks=(StopAfter(3),))
    assert partial.epochs_run == 3 and partial.stop_reason == "requested"
    tensors, meta = load_checkpoint(tmp_path / "b" / Trainer.LAST)
    assert meta["epoch"] == 3 and not meta["finished"]
    assert any(k.startswith("optim.state.") for k in tensors) and "rng.torch.0" in tensors
    assert any(k.startswith("best.") for k in tensors)

    # A new process would build the model from a different seed: weights come from the checkpoint.
    resumed, result = run_training(tmp_path / "b", scheduler=scheduler, init_seed=99)
    assert result.resumed_from == 3 and result.epochs_run == 6
    assert_same_weights(straight, resumed)
    assert without_seconds(result.history) == without_seconds(straight_result.history)
    assert result.best_epoch == straight_result.best_epoch
    rows = (tmp_path / "b" / Trainer.LOG).read_text().strip().splitlines()
    assert len(rows) == 1 + 6


def test_resume_of_finished_run_trains_nothing(tmp_path: Path) -> None:
    model, first = run_training(tmp_path, epochs=3)
    again, second = run_training(tmp_path, epochs=3, init_seed=5)
    assert second.resumed_from == 3 and second.epochs_run == 3
    assert second.history == first.history
    assert_same_weights(model, again)  # best weights restored from best.*


def test_resume_false_starts_over(tmp_path: Path) -> None:
    _, first = run_training(tmp_path, epochs=2)
    _, again = run_training(tmp_path, epochs=2, resume=False)
    assert again.resumed_from == 0 and len(again.history) == 2
    assert without_seconds(again.history) == without_seconds(first.history)


def test_resume_with_changed_hyperparameters_is_refused(tmp_path: Path) -> None:
    run_training(tmp_path, epochs=4, hooks=(StopAfter(2),))
    with pytest.raises(ConfigError, match=r"train\.lr"):
        run_training(tmp_path, epochs=4, lr=1e-3)
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        run_training(tmp_path, epochs=8)  # cosine horizon would change mid-run


def test_corrupt_last_checkpoint_is_reported(tmp_path: Path) -> None:
    (tmp_path / Trainer.LAST).write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match=r"last\.safetensors"):
        run_training(tmp_path, epochs=2)


# --------------------------------------------------------------------------- SIGKILL


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import mmfer.io
from mmfer.training import Hook, read_metadata
from test_checkpoint import run_training

out, marker, where, epochs = sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
VICTIM = 4  # the epoch during which the process dies


def die(what):
    marker.write_text(what)  # proof the kill happened where the test wanted it
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup handlers, no finally blocks


class DieAtEpochEnd(Hook):
    # Runs after the CheckpointHook (built-in hooks come first), so epoch 4 is saved.
    def on_epoch_end(self, trainer, metrics):
        if where == "epoch" and metrics["epoch"] == VICTIM:
            die(f"epoch {VICTIM} end")


replace = os.replace


def replace_or_die(src, dst):
    # the temporary file holds the complete epoch-4 state: die before renaming it into place
    if where == "write" and Path(dst).name == "last.safetensors" and read_metadata(src)["epoch"] == VICTIM:
        die(f"epoch {VICTIM} write")
    return replace(src, dst)


mmfer.io.os.replace = replace_or_die
run_training(out, epochs=epochs, hooks=(DieAtEpochEnd(),))
"""


@pytest.mark.parametrize(("where", "saved"), [("epoch", 4), ("write", 3)])
def test_sigkill_leaves_loadable_checkpoint_and_resume_finishes(
    tmp_path: Path, where: str, saved: int
) -> None:
    """SIGKILL at a known point (no timing involved): after epoch 4, or inside its checkpoint write."""
    out = tmp_path / "run"
    marker = tmp_path / "killed.txt"
    epochs = 8
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [str(Path(__file__).parent), str(out), str(marker), where, str(epochs)]
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, *args],
        env=env,
        stderr=subprocess.PIPE,
        timeout=600,  # a safety net against a hang, not a measured deadline
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.decode())
    assert marker.read_text() == f"epoch 4 {'end' if where == 'epoch' else 'write'}"

    # Atomic writes: the kill left the previous complete last.safetensors (plus a stray .tmp).
    last = out / Trainer.LAST
    tensors, meta = load_checkpoint(last)
    assert meta["epoch"] == saved and len(meta["history"]) == saved and "model.head.weight" in tensors
    assert len(list(out.glob(".*.tmp"))) == (1 if where == "write" else 0)

    resumed, result = run_training(out, epochs=epochs, init_seed=42)
    assert result.resumed_from == saved and result.epochs_run == epochs
    straight, straight_result = run_training(tmp_path / "straight", epochs=epochs)
    assert_same_weights(straight, resumed)
    assert without_seconds(result.history) == without_seconds(straight_result.history)


def test_checkpoints_and_logs_get_normal_file_mode(tmp_path: Path) -> None:
    """Files are created 0666 & ~umask like open() would (not mkstemp's 0600)."""
    old = os.umask(0o022)
    try:
        run_training(tmp_path, epochs=2)
        text = atomic_write_text(tmp_path / "report.md", "# report\n")
    finally:
        os.umask(old)
    files = [tmp_path / Trainer.LAST, tmp_path / Trainer.BEST, tmp_path / Trainer.LOG, text]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
