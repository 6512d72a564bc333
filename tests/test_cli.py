"""End to end through the command line on a tiny synthetic corpus.

This is the main job of the README in miniature: prepare -> extract -> report
(Tables 1-6) -> train -> predict, plus the CLI's error paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmfer.cli import main


def _tiny(tmp: Path) -> list[str]:
    return [
        f"output_dir={tmp / 'run'}",
        f"data.root={tmp / 'corpus'}",
        "data.synthetic_speakers=3",
        "data.synthetic_clips_per_emotion=1",
        "data.emotions=[happy, sad, angry]",
        "features.face.image_size=64",
        "features.face.max_frames=2",
        "features.face.fps=2.0",
        "fusion.steps=2",
        "model.hidden_size=8",
        "model.mogrify_rounds=2",
        "model.input_proj=16",
        "train.epochs=2",
        "train.batch_size=8",
        "train.patience=0",
        "train.val_fraction=0.0",
        "train.progress=false",
        "eval.protocol=loso",
        "eval.models=[rmlstm, mlp]",
        "eval.ablations=[audio, text]",
        "eval.select_budget=2",
        "eval.inner_folds=2",
    ]


@pytest.mark.slow
def test_run_report_train_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _tiny(tmp_path)
    assert main(["run", *args]) == 0
    report = tmp_path / "run" / "report"
    md = (report / "report.md").read_text()
    assert "SYNTHETIC" in md
    assert "leave-one-speaker-out" in md
    for name in ("rmlstm", "mlp"):
        assert f"| {name} |" in md
    for f in (
        "report.html",
        "table1_modalities.csv",
        "table3_models.csv",
        "table5_timing.csv",
        "table6_paper_vs_ours.csv",
        "significance.csv",
        "per_fold.csv",
    ):
        assert (report / f).stat().st_size > 0, f
    rows = (report / "table1_modalities.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # audio, text, face+audio+text
    model = tmp_path / "run" / "model.safetensors"
    assert model.is_file()

    capsys.readouterr()
    clip = sorted((tmp_path / "corpus").rglob("*.mp4"))[0]
    assert main(["predict", str(clip), "--model", str(model), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pred = out[0] if isinstance(out, list) else out["predictions"][0]
    assert pred["label"] in {"happy", "sad", "angry"}
    assert abs(sum(pred["probabilities"].values()) - 1.0) < 1e-4


def test_cli_errors_name_the_valid_choices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _tiny(tmp_path)
    assert main(["evaluate", *args, "model.name=nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "rmlstm" in err and "transformer" in err

    assert main(["prepare", *args, "data.corpus=nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown corpus 'nope'" in err and "ravdess" in err and "ckplus" in err

    assert main(["report", *args, "eval.models=[rmlstm, bogus]"]) == 2
    assert "unknown model 'bogus'" in capsys.readouterr().err

    assert main(["train", *args, "train.epochz=3"]) == 2
    assert "unknown config key train.epochz" in capsys.readouterr().err

    assert main(["prepare", "data.corpus=ravdess", f"data.root={tmp_path / 'missing'}"]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err


def test_prepare_writes_the_sample_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmfer.data.table import read_table

    assert main(["prepare", *_tiny(tmp_path)]) == 0
    table = read_table(tmp_path / "run" / "samples.csv")
    assert len(table) == 9 and set(table["emotion"]) == {"happy", "sad", "angry"}
    assert table["speaker"].nunique() == 3


@pytest.mark.slow
def test_torchrun_two_process_train(tmp_path: Path) -> None:
    """`torchrun -m mmfer.cli train` trains one data-parallel model; rank 0 alone writes it."""
    import subprocess
    import sys

    from mmfer.inference.loader import load

    overrides = [a for a in _tiny(tmp_path) if not a.startswith("eval.")]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mmfer.cli",
        "train",
        *overrides,
        "train.epochs=3",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stderr
    assert proc.stdout.count("model written to") == 1
    log = (tmp_path / "run" / "train" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 3
    predictor = load(tmp_path / "run" / "model.safetensors")
    assert set(predictor.labels) == {"happy", "sad", "angry"}
