"""Finished runs tied to the code and features that produced them (issue 19).

The code version hashes a copy of the package (``provenance.PACKAGE_ROOT`` pointed at
it), so a one-line edit of a feature source file is a real edit, not a stubbed digest.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mmfer
import mmfer.experiment as ex
from mmfer import provenance
from mmfer.config import ExperimentConfig, FeatureConfig, FusionConfig, TrainConfig
from mmfer.features.units import SampleFeatures

SRC = Path(mmfer.__file__).resolve().parent


@pytest.fixture()
def pkg_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package sources that :func:`provenance.code_version` hashes."""
    copy = tmp_path / "pkg" / "mmfer"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    return copy


def _edit(path: Path, line: str = "# one more line\n") -> None:
    path.write_text(path.read_text(encoding="utf-8") + line, encoding="utf-8")


# --------------------------------------------------------------------------- code version


def test_code_version_follows_the_hashed_sources(pkg_copy: Path) -> None:
    v0 = provenance.code_version()
    assert v0 == provenance.code_version(SRC)  # same bytes, same relative paths
    assert v0.startswith(mmfer.__version__ + "+") and len(v0.split("+")[1]) == 12
    names = [p.relative_to(pkg_copy).as_posix() for p in provenance.code_files()]
    assert "pipeline.py" in names and "data/splits.py" in names
    assert any(n.startswith("features/") for n in names) and any(n.startswith("models/") for n in names)
    assert "cli.py" not in names and "data/ravdess.py" not in names
    assert names == sorted(names)

    # byte-code, timestamps and files outside the hashed set do not change the version
    (pkg_copy / "features" / "__pycache__").mkdir(exist_ok=True)
    (pkg_copy / "features" / "__pycache__" / "x.py").write_text("junk")
    _edit(pkg_copy / "cli.py")
    (pkg_copy / "pipeline.py").touch()
    assert provenance.code_version() == v0

    # a one-line change to a feature source file does
    _edit(pkg_copy / "features" / "voice" / "mfcc.py")
    v1 = provenance.code_version()
    assert v1 != v0

    # a file moved into a new subpackage is picked up by the glob (no code change needed)
    voice = pkg_copy / "features" / "voice"
    (voice / "mel").mkdir()
    shutil.move(voice / "mfcc.py", voice / "mel" / "mfcc.py")
    hashed = [p.relative_to(pkg_copy).as_posix() for p in provenance.code_files()]
    assert "features/voice/mel/mfcc.py" in hashed
    assert provenance.code_version() not in (v0, v1)


# --------------------------------------------------------------------------- feature digest


def _text_table(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"s{i}" for i in range(len(texts))], "transcript": texts})


def test_feature_digest_is_order_independent_and_follows_inputs(tmp_path: Path) -> None:
    feats = FeatureConfig(profile="paper")  # TF-IDF text: no model to load for a key
    texts = ["a happy day", "so sad today", "why are you angry"]
    d0 = provenance.feature_digest(_text_table(texts), feats, tmp_path, ["text"])
    shuffled = _text_table(texts).iloc[[2, 0, 1]].reset_index(drop=True)
    assert provenance.feature_digest(shuffled, feats, tmp_path, ["text"]) == d0
    changed = _text_table([*texts[:2], "why are you so angry"])
    assert provenance.feature_digest(changed, feats, tmp_path, ["text"]) != d0
    other_cfg = replace(feats, text=replace(feats.text, lowercase=not feats.text.lowercase))
    assert provenance.feature_digest(_text_table(texts), other_cfg, tmp_path, ["text"]) != d0
    # modalities without sources contribute nothing
    assert provenance.feature_digest(_text_table(texts), feats, tmp_path, ["text", "face"]) == d0


def test_unreadable_inputs_are_part_of_the_digest(tmp_path: Path) -> None:
    feats = FeatureConfig(profile="paper")  # MFCC: its cache-key config needs no model
    clip = tmp_path / "a.wav"
    table = pd.DataFrame({"id": ["a"], "audio": [str(clip)]})
    missing = provenance.feature_digest(table, feats, tmp_path, ["audio"])  # no error: a token instead
    clip.write_bytes(b"RIFF" + bytes(64))
    present = provenance.feature_digest(table, feats, tmp_path, ["audio"])
    assert missing != present and len(present) == 64


def test_reuse_setting_is_validated() -> None:
    from mmfer.config import from_dict
    from mmfer.errors import ConfigError

    assert ExperimentConfig().eval.reuse == "same"
    assert from_dict(ExperimentConfig, {"eval": {"reuse": "any"}}).eval.reuse == "any"
    with pytest.raises(ConfigError, match=r"eval\.reuse"):
        from_dict(ExperimentConfig, {"eval": {"reuse": "sometimes"}})


# --------------------------------------------------------------------------- reports


def _corpus(root: Path, n_speakers: int = 6, per: int = 6) -> tuple[pd.DataFrame, dict[str, Any]]:
    rng = np.random.default_rng(0)
    emotions = ["angry", "happy", "sad"]
    root.mkdir(parents=True, exist_ok=True)
    rows, feats = [], {}
    for s in range(n_speakers):
        for k in range(per):
            emo = emotions[k % 3]
            sid = f"spk{s}_{k}"
            clip = root / f"{sid}.wav"
            clip.write_bytes(rng.bytes(64))  # only hashed (cache key, duplicate check), never decoded
            frames = rng.normal(size=(8, 4))
            frames[:, 0] += 2.0 * emotions.index(emo)
            rows.append({"id": sid, "speaker": f"spk{s}", "emotion": emo, "audio": str(clip)})
            feats[sid] = SampleFeatures(audio=frames.astype(np.float32))
    return pd.DataFrame(rows), feats


def _cfg(out: Path, **evals: Any) -> ExperimentConfig:
    cfg = ExperimentConfig(output_dir=str(out))
    cfg.features = FeatureConfig(profile="paper")  # MFCC: its cache-key config needs no model
    cfg.fusion = FusionConfig(modalities=["audio"], steps=2)
    cfg.model = replace(cfg.model, name="logreg")
    cfg.train = TrainConfig(epochs=2, patience=0, progress=False, threads=1)
    base = {"protocol": "group_kfold", "folds": 3, "select": False, "models": [], "front_ends": []}
    cfg.eval = replace(cfg.eval, **{**base, **evals})
    return cfg


@pytest.fixture()
def report_env(
    tmp_path: Path, pkg_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ExperimentConfig, list[str], Path]:
    """A report on an in-memory corpus (logreg + majority, audio): returns cfg, calls log, corpus."""
    table, feats = _corpus(tmp_path / "corpus")
    out = tmp_path / "out"

    def setup(cfg: ExperimentConfig) -> tuple[Path, pd.DataFrame, dict[str, Any], list[str]]:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        return Path(cfg.output_dir), table, feats, ["audio"]

    calls: list[str] = []
    real_cv = ex.cross_validate

    def counting_cv(*args: Any, **kw: Any) -> Any:
        calls.append(kw["model_name"])
        return real_cv(*args, **kw)

    monkeypatch.setattr(ex, "_setup", setup)
    monkeypatch.setattr(ex, "cross_validate", counting_cv)
    return _cfg(out), calls, tmp_path / "corpus"


def _prov(cfg: ExperimentConfig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(cfg.output_dir) / "report" / "provenance.json").read_text())
    return data


def _stub_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmfer.evaluation.report as rep

    monkeypatch.setattr(rep, "write_report", lambda data, out: {})


def test_report_recomputes_after_a_source_edit_and_reuses_same_code(
    report_env: tuple[ExperimentConfig, list[str], Path],
    pkg_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, calls, _ = report_env
    paths = ex.report(cfg)  # the real rendering once
    assert {"report.md", "provenance.md", "provenance.json"} <= set(paths)
    v0 = provenance.code_version()
    p = _prov(cfg)
    assert (p["code_version"], p["computed"], p["reused"]) == (v0, 2, 0)
    assert sorted(calls) == ["logreg", "majority"]
    assert f"code version {v0}: 2 run(s) computed, 0 reused" in capsys.readouterr().out
    md = (Path(cfg.output_dir) / "report" / "provenance.md").read_text()
    assert v0 in md and "features/**/*.py" in md and "| logreg | audio |" in md
    assert v0 in (Path(cfg.output_dir) / "report" / "report.md").read_text()  # the report's notes
    kept = [json.loads(f.read_text())["provenance"] for f in (Path(cfg.output_dir) / "runs_done").glob("*")]
    assert {k["code_version"] for k in kept} == {v0} and all(len(k["feature_digest"]) == 64 for k in kept)

    _stub_rendering(monkeypatch)
    calls.clear()
    ex.report(cfg)  # same code: everything read back
    p = _prov(cfg)
    assert (p["computed"], p["reused"], p["reused_from"], calls) == (0, 2, {v0: 2}, [])

    _edit(pkg_copy / "features" / "voice" / "mfcc.py")  # one line in a feature source file
    v1 = provenance.code_version()
    ex.report(cfg)
    p = _prov(cfg)
    assert (p["code_version"], p["computed"], p["reused"]) == (v1, 2, 0)
    assert sorted(calls) == ["logreg", "majority"]
    assert all(r["other_versions"] == [v0] for r in p["runs"])
    md = (Path(cfg.output_dir) / "report" / "provenance.md").read_text()
    assert f"computed again: 2 run(s) whose kept results are from another code version, `{v0}`" in md
    assert len(list((Path(cfg.output_dir) / "runs_done").glob("*.json"))) == 4  # both versions kept

    calls.clear()
    ex.report(replace(cfg, eval=replace(cfg.eval, reuse="none")))
    assert (_prov(cfg)["computed"], sorted(calls)) == (2, ["logreg", "majority"])


def test_reuse_any_takes_other_versions_with_a_warning(
    report_env: tuple[ExperimentConfig, list[str], Path],
    pkg_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg, calls, _ = report_env
    _stub_rendering(monkeypatch)
    ex.report(cfg)
    v0 = provenance.code_version()
    _edit(pkg_copy / "models" / "mlp.py")
    v1 = provenance.code_version()
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        ex.report(replace(cfg, eval=replace(cfg.eval, reuse="any")))
    p = _prov(cfg)
    assert (p["code_version"], p["computed"], p["reused"], calls) == (v1, 0, 2, [])
    assert p["reused_from"] == {v0: 2} and p["mixed_code_versions"] is True
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(v0 in m and v1 in m and "logreg" in m for m in warned)
    assert any("mixes runs of 2 code versions" in m for m in warned)
    assert "another code version" in (Path(cfg.output_dir) / "report" / "provenance.md").read_text()


def test_runs_without_a_version_are_recomputed_under_same(
    report_env: tuple[ExperimentConfig, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, calls, _ = report_env
    _stub_rendering(monkeypatch)
    ex.report(cfg)
    # turn the finished runs into files of an older mmfer: old name, no provenance
    folder = Path(cfg.output_dir) / "runs_done"
    table = ex._setup(cfg)[1]
    for f in folder.glob("*.json"):
        d = json.loads(f.read_text())
        del d["provenance"]
        stem = f.name.split(".v")[0]  # <model>_<mods>_<digest with features>
        model = stem.split("_")[0]
        f.unlink()
        legacy = ex.run_files(table, cfg, model, ["audio"], None, code="x", features="y").legacy
        legacy.write_text(json.dumps(d))
    calls.clear()
    ex.report(cfg)
    p = _prov(cfg)
    assert (p["computed"], p["reused"]) == (2, 0)
    assert all(r["other_versions"] == [provenance.UNKNOWN_VERSION] for r in p["runs"])
    for f in folder.glob("*.v*.json"):
        f.unlink()
    ex.report(replace(cfg, eval=replace(cfg.eval, reuse="any")))
    p = _prov(cfg)
    assert (p["reused"], p["reused_from"]) == (2, {provenance.UNKNOWN_VERSION: 2})
    assert {r["feature_digest"] for r in p["runs"]} == {"not recorded"}


def test_changed_media_is_a_different_run(
    report_env: tuple[ExperimentConfig, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, calls, corpus = report_env
    _stub_rendering(monkeypatch)
    ex.report(cfg)
    clip = sorted(corpus.glob("*.wav"))[0]
    clip.write_bytes(clip.read_bytes() + b"more")  # new content: new feature-cache key
    calls.clear()
    ex.report(cfg)
    assert (_prov(cfg)["computed"], sorted(calls)) == (2, ["logreg", "majority"])


def test_reuse_is_not_part_of_the_run_key(tmp_path: Path) -> None:
    table, _ = _corpus(tmp_path / "c", n_speakers=2, per=3)
    cfg = _cfg(tmp_path / "out")
    keys = {
        ex.finished_run_path(table, replace(cfg, eval=replace(cfg.eval, reuse=r)), "logreg", ["audio"], None)
        for r in ("same", "any", "none")
    }
    assert len(keys) == 1
    path = keys.pop()
    assert path.parent.name == "runs_done" and ".v" in path.name
