"""The report's speaker-normalisation conditions table and its perturbation check (eval.norm_conditions,
eval.verify), on a tiny in-memory corpus through :func:`mmfer.experiment.report`."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mmfer.experiment as ex
from mmfer.config import ExperimentConfig, FeatureConfig, FusionConfig, TrainConfig
from mmfer.evaluation.verify import TestInfluenceError
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser

N_SPEAKERS, PER, K = 6, 6, 2


def _corpus(root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    rng = np.random.default_rng(0)
    emotions = ["angry", "happy", "neutral"]
    root.mkdir(parents=True, exist_ok=True)
    rows, feats = [], {}
    for s in range(N_SPEAKERS):
        offset = rng.normal(size=4)
        for k in range(PER):
            emo = emotions[k % 3]
            sid = f"spk{s}_{k}"
            clip = root / f"{sid}.wav"
            clip.write_bytes(rng.bytes(64))  # only hashed (cache key), never decoded
            frames = rng.normal(size=(8, 4)) + offset
            frames[:, 0] += 2.0 * emotions.index(emo)
            rows.append({"id": sid, "speaker": f"spk{s}", "emotion": emo, "audio": str(clip)})
            feats[sid] = SampleFeatures(audio=frames.astype(np.float32))
    return pd.DataFrame(rows), feats


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExperimentConfig:
    table, feats = _corpus(tmp_path / "corpus")

    def setup(c: ExperimentConfig) -> tuple[Path, pd.DataFrame, dict[str, Any], list[str]]:
        Path(c.output_dir).mkdir(parents=True, exist_ok=True)
        return Path(c.output_dir), table, feats, ["audio"]

    monkeypatch.setattr(ex, "_setup", setup)
    c = ExperimentConfig(output_dir=str(tmp_path / "out"))
    c.features = FeatureConfig(profile="paper")
    c.fusion = FusionConfig(modalities=["audio"], steps=2, speaker_norm="none", enrol_k=K)
    c.model = replace(c.model, name="logreg")
    c.train = TrainConfig(epochs=2, patience=0, progress=False, threads=1)
    c.eval = replace(
        c.eval,
        protocol="group_kfold",
        folds=3,
        select=False,
        models=[],
        reference=[],
        front_ends=[],
        norm_conditions=["none", "enrol", "neutral_enrol", "transductive"],
        norm_condition_models=["logreg", "majority"],
        verify=["logreg"],
    )
    return c


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_conditions_table_and_verify_section(cfg: ExperimentConfig) -> None:
    paths = ex.report(cfg)
    out = Path(cfg.output_dir) / "report"
    assert {"table_norm_conditions.csv", "verify.csv"} <= set(paths)
    rows = _csv(out / "table_norm_conditions.csv")
    pairs = [(r["condition"], r["model"]) for r in rows]
    conds = ["none", "enrol", "neutral_enrol", "transductive"]
    assert pairs == [(c, m) for c in conds for m in ("logreg", "majority")]
    n = {r["condition"]: int(r["scored_clips"]) for r in rows}
    total = N_SPEAKERS * PER
    assert n["none"] == n["transductive"] == total
    # k clips per test speaker are used for enrolment and never scored; at least one is left
    assert n["enrol"] == total - N_SPEAKERS * min(K, PER - 1)
    assert n["neutral_enrol"] == total - N_SPEAKERS * min(K, PER // 3)  # 2 neutral clips each
    assert all(0 <= float(r["accuracy_mean_pct"]) <= 100 for r in rows)
    assert {r["transductive"] for r in rows if r["condition"] == "transductive"} == {"True"}
    assert [r["condition"] for r in rows if r["headline"] == "True"] == ["none", "none"]
    # the headline condition's logreg row is the headline run itself, read back (not computed again)
    prov = json.loads((out / "provenance.json").read_text())
    assert (prov["computed"], prov["reused"]) == (1 + 1 + 6, 1)

    md = (out / "report.md").read_text()
    assert "Speaker normalisation conditions" in md
    assert sum(line.startswith("| none — headline |") for line in md.splitlines()) == 2
    assert "headline (Table 3) uses this config's own fusion.speaker_norm=none" in md
    trans = [line for line in md.splitlines() if line.startswith("| transductive")]
    assert len(trans) == 2 and all("TRANSDUCTIVE" in line for line in trans)
    assert "not scored" in md and "no test-speaker statistics" in md
    assert (out / "report.html").read_text().count("Speaker normalisation conditions") >= 1

    audit = md[md.index("## Leakage audit") :]
    checks = [line for line in audit.splitlines() if "perturbation check (logreg" in line]
    assert len(checks) == 3 and all(line.endswith("identical") for line in checks), checks
    assert "perturbation check passed" in audit and "CHANGED" not in md
    assert [r["verdict"] for r in _csv(out / "verify.csv")] == ["identical"] * 3


def test_single_condition_enrol_k_bounded(cfg: ExperimentConfig) -> None:
    """k larger than a speaker's clips: enrol leaves one clip per test speaker to score."""
    cfg.fusion = replace(cfg.fusion, enrol_k=50)
    cfg.eval = replace(cfg.eval, norm_conditions=["enrol"], norm_condition_models=["majority"], verify=[])
    ex.report(cfg)
    out = Path(cfg.output_dir) / "report"
    rows = _csv(out / "table_norm_conditions.csv")
    assert [(r["condition"], r["headline"]) for r in rows] == [("none", "True"), ("enrol", "False")]
    assert int(rows[1]["scored_clips"]) == N_SPEAKERS
    assert not (out / "verify.csv").exists()
    assert "perturbation check" not in (out / "report.md").read_text()


def test_leaky_fuser_is_caught_and_raises_after_writing(
    cfg: ExperimentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmfer.pipeline as pl

    def leaky_fit_fuser(table, feats, rows, *, fusion_cfg, text_cfg):  # type: ignore[no-untyped-def]
        ids = table["id"].astype(str).to_numpy()
        spk = table["speaker"].astype(str).to_numpy()
        # scalers fitted on every row, only the training ids recorded: the id audit cannot see it
        return Fuser(fusion_cfg, text_cfg).fit([feats[i] for i in ids], speakers=spk, ids=ids[rows])

    monkeypatch.setattr(pl, "fit_fuser", leaky_fit_fuser)
    cfg.eval = replace(cfg.eval, norm_conditions=[])
    with pytest.raises(TestInfluenceError, match=r"logreg fold 1: .*fuser"):
        ex.report(cfg)
    out = Path(cfg.output_dir) / "report"
    md = (out / "report.md").read_text()  # written before the error
    assert "PERTURBATION CHECK FAILED" in md
    assert "LEAK: perturbation check failed" in md.split("## Results")[0]  # banner at the top
    checks = [line for line in md.splitlines() if "perturbation check (logreg" in line]
    assert len(checks) == 3 and all("CHANGED: " in line and "fuser" in line for line in checks)
    assert all(r["verdict"].startswith("CHANGED") for r in _csv(out / "verify.csv"))
