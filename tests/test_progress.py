"""Heartbeat lines for non-terminal runs: rate limit, ETA, and their use in training/extraction."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmfer.config import AudioConfig, FeatureConfig, TrainConfig
from mmfer.data.table import make_table
from mmfer.features.extract import extract_features
from mmfer.progress import Heartbeat, format_duration

#: MFCC audio: these tests check masking/reporting mechanics on a fast, exact extractor
#: (the default profile's Whisper extractor has its own tests).
MFCC = FeatureConfig(audio=AudioConfig(extractor="mfcc"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 42.4, 61, 3599, 7500)] == [
        "0s",
        "42s",
        "1m01s",
        "59m59s",
        "2h05m",
    ]
    assert format_duration(float("nan")) == "?" and format_duration(-1) == "?"


def test_heartbeat_rate_limit_eta_and_last_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    hb = Heartbeat(10, "cv fold", every_s=30.0, enabled=True, clock=clock)
    lines = []
    with caplog.at_level(logging.INFO, logger="mmfer.progress"):
        for i in range(10):
            clock.now += 12.0  # 12 s per fold
            lines.append(hb.tick(acc=0.5 + i / 100, skipped=None))
    written = [line for line in lines if line]
    # 30 s between lines: after folds 3, 6, 9 (36 s apart) and the last one always.
    assert [lines.index(w) + 1 for w in written] == [3, 6, 9, 10]
    assert written[0] == "cv fold 3/10 (30%) elapsed 36s ETA 1m24s acc=0.52"
    assert written[-1].startswith("cv fold 10/10 (100%) elapsed 2m00s ETA 0s")
    assert "skipped" not in written[0]  # None values are left out
    assert [r.getMessage() for r in caplog.records] == written
    assert hb.lines == 4


def test_heartbeat_resumed_run_and_unknown_total() -> None:
    clock = FakeClock()
    hb = Heartbeat(8, "train epoch", every_s=0, enabled=True, initial=4, clock=clock)
    clock.now += 10.0
    # 1 epoch run in 10 s, 3 left: the 4 restored epochs do not count for the rate.
    assert hb.tick() == "train epoch 5/8 (62%) elapsed 10s ETA 30s"
    open_ended = Heartbeat(None, "files", every_s=0, enabled=True, clock=clock)
    assert open_ended.tick(3) == "files 3 elapsed 0s"


def test_heartbeat_off_on_terminal_or_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mmfer.progress.stderr_is_terminal", lambda: True)
    assert not Heartbeat(3, "x").enabled  # a terminal shows tqdm bars instead
    monkeypatch.setattr("mmfer.progress.stderr_is_terminal", lambda: False)
    assert Heartbeat(3, "x").enabled
    hb = Heartbeat(3, "x", enabled=False, every_s=0)
    assert hb.tick() is None and hb.done == 1 and hb.lines == 0
    with pytest.raises(ValueError, match="every_s"):
        Heartbeat(3, "x", every_s=-1)


def test_trainer_logs_heartbeat_when_not_on_a_terminal(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from mmfer.training import TensorData, Trainer

    monkeypatch.setattr("mmfer.progress.stderr_is_terminal", lambda: False)
    g = torch.Generator().manual_seed(0)
    data = TensorData(
        torch.randn(12, 2, 3, generator=g), torch.ones(12, 2, dtype=torch.bool), torch.arange(12) % 2
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 2))

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.inner(x)  # (B, C)

    cfg = TrainConfig(epochs=3, batch_size=4, progress=True, threads=1, patience=0)
    with caplog.at_level(logging.INFO, logger="mmfer.progress"):
        Trainer(cfg).fit(Net(), data, None, num_classes=2, out_dir=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "mmfer.progress"]
    # Epochs take far less than 30 s: only the last one is due, and it always gets a line.
    assert len(lines) == 1 and lines[0].startswith("train epoch 3/3 (100%) elapsed ")
    assert "loss=" in lines[0] and "ETA 0s" in lines[0]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmfer.progress"):
        Trainer(TrainConfig(epochs=2, batch_size=4, progress=False, threads=1)).fit(
            Net(), data, None, num_classes=2, out_dir=None
        )
    assert not [r for r in caplog.records if r.name == "mmfer.progress"]  # progress=False: silent


def test_extraction_logs_heartbeat_and_masked_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mmfer.progress.stderr_is_terminal", lambda: False)
    sr = 16000
    t = np.arange(sr // 4) / sr
    records = []
    for i in range(3):
        path = tmp_path / f"c{i}.wav"
        amp = 0.0 if i == 1 else 0.3  # c1 is all silence
        sf.write(path, (amp * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), sr)
        records.append({"id": f"c{i}", "speaker": "a", "emotion": "happy", "audio": str(path)})
    table = make_table(records, corpus="t", root=tmp_path)
    with caplog.at_level(logging.INFO):
        extract_features(table, MFCC, tmp_path / "cache", modalities=("audio",), progress=True)
    beats = [r.getMessage() for r in caplog.records if r.name == "mmfer.progress"]
    assert len(beats) == 1 and beats[0].startswith("features 3/3 (100%)") and "file=c2.wav" in beats[0]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features: ")]
    assert summary == [
        "features: 1 modality(ies) of 1 sample(s) masked (audio: silent audio x1); "
        "1 sample(s) have no modality left: c1"
    ]
