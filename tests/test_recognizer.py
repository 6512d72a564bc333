"""Recognizer's own light module, the per-fold hook, and the speaker-normalisation conditions."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfer.config import ExperimentConfig, FusionConfig, ModelConfig, TrainConfig, load_config
from mmfer.errors import ConfigError, DataError
from mmfer.features.units import SampleFeatures
from mmfer.fusion.enrol import enrolment_rows, norm_condition

SRC = Path(__file__).resolve().parents[1] / "src"


def test_recognizer_module_imports_no_evaluation_stack() -> None:
    code = (
        "import sys, json; import mmfer.recognizer, mmfer.inference.predictor; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('mmfer.evaluation', "
        "'sklearn.metrics', 'scipy.stats', 'matplotlib', 'mmfer.pipeline')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(SRC)}
    )
    assert json.loads(out.stdout) == []
    import mmfer.pipeline as pl
    import mmfer.recognizer as rc

    assert pl.Recognizer is rc.Recognizer


def _corpus(
    n_speakers: int = 4, per: int = 9, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    rng = np.random.default_rng(seed)
    emotions = ["angry", "happy", "neutral"]
    rows, feats = [], {}
    for s in range(n_speakers):
        offset = rng.normal(size=3) * 3
        for k in range(per):
            emo = emotions[k % 3]
            sid = f"spk{s}_{k}"
            frames = rng.normal(size=(int(rng.integers(4, 9)), 3)) + offset
            frames[:, 0] += 2.0 * emotions.index(emo)
            rows.append({"id": sid, "speaker": f"spk{s}", "emotion": emo})
            feats[sid] = SampleFeatures(audio=frames.astype(np.float32))
    return pd.DataFrame(rows), feats


def _cfg(select: bool = False, **fusion: object) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.fusion = FusionConfig(modalities=["audio"], steps=2, **fusion)  # type: ignore[arg-type]
    cfg.model = ModelConfig(hidden_size=4, num_layers=1)
    cfg.train = TrainConfig(epochs=2, patience=0, progress=False, threads=1)
    cfg.eval = replace(
        cfg.eval, protocol="group_kfold", folds=2, inner_folds=2, select_budget=2, select=select
    )
    return cfg


def test_on_fold_fit_runs_after_fit_before_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmfer.pipeline as pl
    from mmfer.recognizer import Recognizer

    events: list[tuple[str, int]] = []
    orig = pl.predict_fold

    def spy(setup, feats, rec, fold, test_idx, records):  # type: ignore[no-untyped-def]
        events.append(("predict", fold))
        return orig(setup, feats, rec, fold, test_idx, records)

    def hook(fold: int, settings: dict, rec: Recognizer) -> None:
        assert isinstance(rec, Recognizer) and rec.estimator.fitted_on_
        assert "params" in settings and "inner_accuracy" in settings
        events.append(("fit", fold))

    monkeypatch.setattr(pl, "predict_fold", spy)
    table, feats = _corpus()
    run, audit = pl.cross_validate(
        table, feats, _cfg(select=True), model_name="logreg", modalities=["audio"], on_fold_fit=hook
    )
    assert events == [("fit", 0), ("predict", 0), ("fit", 1), ("predict", 1)]
    assert audit.speaker_independent is True and len(run.y_true) == len(table)


# --------------------------------------------------------------------------- conditions


def test_condition_names_and_aliases() -> None:
    assert norm_condition(FusionConfig(speaker_norm=True)) == "transductive"
    assert norm_condition(FusionConfig(speaker_norm=False)) == "none"
    for name in ("none", "enrol", "neutral_enrol", "transductive"):
        cfg = load_config(None, [f"fusion.speaker_norm={name}", "fusion.enrol_k=2"])
        assert norm_condition(cfg.fusion) == name and cfg.fusion.enrol_k == 2
    with pytest.raises(ConfigError, match="speaker_norm"):
        load_config(None, ["fusion.speaker_norm=sometimes"])
    with pytest.raises(ConfigError, match="enrol_k"):
        norm_condition(FusionConfig(speaker_norm="enrol", enrol_k=0))
    from mmfer.config import TextConfig
    from mmfer.fusion import Fuser

    assert Fuser(FusionConfig(speaker_norm="enrol"), TextConfig()).cfg.speaker_norm is True
    assert Fuser(FusionConfig(speaker_norm="none"), TextConfig()).cfg.speaker_norm is False


def test_enrolment_rows_are_seeded_label_free_and_per_speaker() -> None:
    table, _ = _corpus()
    te = np.arange(9, 27)  # speakers 1 and 2
    a = enrolment_rows(table, te, "enrol", 4, seed=3)
    assert len(a) == 8 and set(a) <= set(te)
    assert (table["speaker"].iloc[a].value_counts() == 4).all()
    np.testing.assert_array_equal(a, enrolment_rows(table, te, "enrol", 4, seed=3))
    relabelled = table.assign(emotion="angry")  # labels are never read under `enrol`
    np.testing.assert_array_equal(a, enrolment_rows(relabelled, te, "enrol", 4, seed=3))
    n = enrolment_rows(table, te, "neutral_enrol", 4, seed=3)
    assert len(n) == 6 and (table["emotion"].iloc[n] == "neutral").all()  # 3 neutral clips per speaker
    assert len(enrolment_rows(table, te, "transductive", 4)) == 0
    with pytest.raises(DataError, match="neutral"):
        enrolment_rows(table.assign(emotion="sad"), te, "neutral_enrol", 4)


@pytest.mark.parametrize("condition", ["enrol", "neutral_enrol"])
def test_enrolment_rows_never_scored_and_alone_give_the_statistics(
    condition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmfer.pipeline as pl
    from mmfer.fusion import enrol as en

    table, feats = _corpus()
    cfg = _cfg(speaker_norm=condition, enrol_k=2)
    setup, splits = pl.prepare_cv(table, feats, cfg, model_name="logreg", modalities=["audio"])
    seen_stats: list[dict] = []
    orig = en.enrolment_statistics

    def spy(fuser, f, s):  # type: ignore[no-untyped-def]
        out = orig(fuser, f, s)
        seen_stats.append(out)
        return out

    monkeypatch.setattr(en, "enrolment_statistics", spy)
    tr, te = splits[0]
    res = pl.run_fold(setup, feats, 0, tr, te)
    assert res is not None and len(res.enrol_rows) == 2 * len(set(table["speaker"].iloc[te]))
    assert not set(res.enrol_rows) & set(res.test_rows)
    assert set(res.enrol_rows) | set(res.test_rows) == set(te)
    # perturb every scored test row: the statistics (and the fitted model) do not move
    ids = table["id"].to_numpy()
    noisy = dict(feats)
    for i in ids[res.test_rows]:
        noisy[i] = SampleFeatures(audio=feats[i].audio * 50 + 7)
    res2 = pl.run_fold(setup, noisy, 0, tr, te)
    assert res2 is not None
    np.testing.assert_array_equal(res.enrol_rows, res2.enrol_rows)
    assert json.dumps(seen_stats[0], sort_keys=True) == json.dumps(seen_stats[1], sort_keys=True)
    # the audit counts the enrolment statistics, and finds no scored test row in them
    run, audit = pl.cross_validate(table, feats, cfg, model_name="logreg", modalities=["audio"])
    comps = {c.component: c for c in audit.components}
    stat = comps[f"per-speaker statistics (test speakers, {condition})"]
    assert stat.fits == 2 and stat.test_rows_seen == 0 and stat.label_free
    assert comps["per-speaker statistics (training speakers)"].fits == 2
    assert len(run.y_true) == len(table) - 2 * 4 and not set(run.sample_ids) & set(ids[res.enrol_rows])
    assert "enrolment clips" in run.protocol


def test_transductive_reproduces_speaker_norm_true_and_is_flagged() -> None:
    import mmfer.pipeline as pl
    from mmfer.evaluation.audit import audit_findings

    table, feats = _corpus()
    runs = {}
    for value in (True, "transductive"):
        run, audit = pl.cross_validate(
            table, feats, _cfg(speaker_norm=value), model_name="logreg", modalities=["audio"]
        )
        runs[value] = run
        stat = next(c for c in audit.components if c.component.startswith("per-speaker statistics (test"))
        assert stat.transductive and stat.test_rows_seen == len(table)
        leaks, _ = audit_findings(audit, run.protocol)
        assert any(s.startswith("LEAK (transductive") for s in leaks)
    assert (
        runs[True].y_pred == runs["transductive"].y_pred
        and runs[True].protocol == runs["transductive"].protocol
    )
    assert "transductive" in runs[True].protocol and len(runs[True].y_true) == len(table)
    # by hand: the old behaviour = every test speaker normalised with all its test clips
    setup, splits = pl.prepare_cv(
        table, feats, _cfg(speaker_norm=True), model_name="logreg", modalities=["audio"]
    )
    pred = []
    for tr, te in splits:
        rec = pl.fit_rows(
            table,
            feats,
            tr,
            labels=setup.labels,
            estimator=setup.base,
            fusion_cfg=setup.fusion_cfg,
            text_cfg=setup.cfg.features.text,
            features_cfg=setup.cfg.features,
        )
        ids = table["id"].to_numpy()[te]
        spk = table["speaker"].astype(str).to_numpy()[te].tolist()
        pred += rec.predict_proba([feats[i] for i in ids], speakers=spk).argmax(1).tolist()
    assert pred == runs[True].y_pred
