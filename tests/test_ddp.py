"""torchrun data-parallel training (2 CPU processes, gloo) through the same Trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmfer.training import TensorData, class_weights, load_checkpoint, read_metadata
from mmfer.training.checkpoint import strip_prefix
from mmfer.training.ddp import main, state_hash

FEATURES, STEPS, CLASSES = 4, 5, 3

TOY_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Toy(nn.Module):
        def __init__(self, in_features, num_classes):
            super().__init__()
            self.hidden = nn.Linear(in_features, 16)
            self.head = nn.Linear(16, num_classes)

        def forward(self, x, mask):
            m = mask.unsqueeze(-1).float()
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(torch.relu(self.hidden(pooled)))


    def build(*, in_features, num_classes, cfg):
        return Toy(in_features, num_classes)
    """
)


def toy(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(3)) * 1.5
    x = centres[y][:, None, :] + torch.randn(n, STEPS, FEATURES, generator=g)  # (N, T, F)
    mask = torch.ones(n, STEPS, dtype=torch.bool)
    return TensorData(x, mask, y)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "toy_models.py").write_text(TOY_MODULE)
    toy(150, 1).save_npz(tmp_path / "train.npz")
    toy(41, 2).save_npz(tmp_path / "val.npz")  # odd size: shards of 21 and 20 rows
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _args(workdir: Path, out: Path, epochs: int) -> list[str]:
    return [
        "--data",
        str(workdir / "train.npz"),
        "--val",
        str(workdir / "val.npz"),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--model",
        "toy_models:build",
        "--rank-files",
        "--set",
        "train.threads=1",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.patience=0",
    ]


def _load_toy(out: Path) -> torch.nn.Module:
    import toy_models  # written by the fixture

    model = toy_models.build(in_features=FEATURES, num_classes=CLASSES, cfg=None)
    tensors, _ = load_checkpoint(out / "model.safetensors")
    model.load_state_dict(strip_prefix("model", tensors))
    return model


@pytest.mark.slow
def test_torchrun_two_processes(workdir: Path) -> None:
    out = workdir / "out"
    epochs = 6
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mmfer.training.ddp",
        *_args(workdir, out, epochs),
    ]
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["epochs_run"] == epochs for r in ranks)
    # DDP keeps replicas in lockstep: identical final weights on both ranks.
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert ranks[0]["last_train_loss"] < ranks[0]["first_train_loss"]
    # Each rank stepped through its half of the 150 rows only: ceil(75 / 16) = 5 steps.
    assert all(r["steps_per_epoch"] == [5] * epochs for r in ranks)

    # Rank 0 wrote the checkpoint, the log and the final model (and nothing half-written).
    meta = read_metadata(out / "last.safetensors")
    assert meta["world_size"] == 2 and meta["epoch"] == epochs and meta["finished"]
    assert len((out / "log.csv").read_text().strip().splitlines()) == 1 + epochs
    assert not list(out.glob(".*.tmp"))
    model = _load_toy(out)
    assert state_hash(model) == ranks[0]["weights_sha256"]

    # Validation metrics were all-reduced over both shards: they equal the
    # metrics of the (restored best) model on the whole validation set.
    result = json.loads((out / "result.json").read_text())
    best_row = result["history"][result["best_epoch"] - 1]
    val, train = toy(41, 2), toy(150, 1)
    with torch.no_grad():
        logits = model.eval()(val.x, val.mask)  # (N, C)
    accuracy = float((logits.argmax(1) == val.y).float().mean())
    loss = float(F.cross_entropy(logits, val.y, weight=class_weights(train.y, CLASSES)))
    assert best_row["val_acc"] == pytest.approx(accuracy)
    assert best_row["val_loss"] == pytest.approx(loss, rel=1e-5)


def test_entry_point_single_process(workdir: Path) -> None:
    out = workdir / "single"
    assert main(_args(workdir, out, 3)) == 0
    info = json.loads((out / "rank0.json").read_text())
    assert info["world_size"] == 1 and info["epochs_run"] == 3
    assert info["steps_per_epoch"] == [10, 10, 10]  # ceil(150 / 16)
    assert not (out / "rank1.json").exists()
    assert state_hash(_load_toy(out)) == info["weights_sha256"]
    # Running again resumes the finished run instead of training anew.
    assert main(_args(workdir, out, 3)) == 0
    assert json.loads((out / "result.json").read_text())["resumed_from"] == 3


def test_entry_point_reports_bad_data(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "bad.npz"
    bad.write_bytes(b"not an npz")
    args = _args(workdir, workdir / "o", 1)
    args[1] = str(bad)
    assert main(args) == 2
    assert "bad.npz" in capsys.readouterr().err
