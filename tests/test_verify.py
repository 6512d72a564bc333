"""The audit that verifies: outer test rows perturbed fold by fold must change nothing fitted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mmfer.config import ExperimentConfig, FusionConfig, ModelConfig, TextConfig, TrainConfig
from mmfer.evaluation.verify import TestInfluenceError, fit_digests, perturb_rows, verify_folds
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser


def _corpus(
    n_speakers: int = 6, per: int = 9, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    rng = np.random.default_rng(seed)
    emotions = ["angry", "happy", "neutral"]
    words = {"angry": "mad furious", "happy": "glad joy", "neutral": "fine okay"}
    rows, feats = [], {}
    for s in range(n_speakers):
        offset = rng.normal(size=4)
        for k in range(per):
            emo = emotions[k % 3]
            sid = f"spk{s}_{k}"
            frames = rng.normal(size=(int(rng.integers(4, 10)), 4)) + offset
            frames[:, 0] += 2.0 * emotions.index(emo)
            rows.append({"id": sid, "speaker": f"spk{s}", "emotion": emo})
            feats[sid] = SampleFeatures(audio=frames.astype(np.float32), text=f"{words[emo]} w{k}")
    return pd.DataFrame(rows), feats


def _cfg(**fusion: object) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.fusion = FusionConfig(modalities=["audio", "text"], steps=2, **fusion)  # type: ignore[arg-type]
    cfg.features = replace(cfg.features, text=TextConfig(representation="tfidf"))
    cfg.model = ModelConfig(hidden_size=4, num_layers=1)
    cfg.train = TrainConfig(epochs=2, batch_size=16, patience=0, val_fraction=0.0, progress=False, threads=1)
    cfg.eval = replace(cfg.eval, protocol="group_kfold", folds=3, inner_folds=2, select_budget=2)
    return cfg


@pytest.mark.parametrize(("model", "how"), [("logreg", "noise"), ("logreg", "nan"), ("mlp", "noise")])
def test_real_fuser_and_estimators_pass(model: str, how: str) -> None:
    table, feats = _corpus()
    res = verify_folds(table, feats, _cfg(), model_name=model, modalities=["audio", "text"], how=how)  # type: ignore[arg-type]
    assert len(res.folds) == 3
    assert res.ok, res.lines()
    res.raise_if_failed()
    assert all("identical" in line for line in res.lines())


def test_speaker_norm_training_statistics_pass() -> None:
    table, feats = _corpus()
    res = verify_folds(table, feats, _cfg(speaker_norm="enrol"), model_name="logreg", modalities=["audio"])
    assert res.ok, res.lines()


def test_fails_on_a_fuser_fitted_on_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutation the id-based audit cannot see: scalers fitted on every row, only training ids recorded."""
    import mmfer.pipeline as pl

    def leaky_fit_fuser(table, feats, rows, *, fusion_cfg, text_cfg):  # type: ignore[no-untyped-def]
        ids = table["id"].astype(str).to_numpy()
        spk = table["speaker"].astype(str).to_numpy()
        fuser = Fuser(fusion_cfg, text_cfg).fit([feats[i] for i in ids], speakers=spk, ids=ids[rows])
        return fuser  # fitted_on_ says: training ids only

    monkeypatch.setattr(pl, "fit_fuser", leaky_fit_fuser)
    table, feats = _corpus()
    cfg = _cfg()
    # the id-based audit is fooled: 0 leaks
    _, audit = pl.cross_validate(table, feats, cfg, model_name="logreg", modalities=["audio", "text"])
    assert audit.leaking_components == []
    res = verify_folds(table, feats, cfg, model_name="logreg", modalities=["audio", "text"], labels_too=False)
    assert not res.ok
    assert all({"fuser", "model"} <= set(f.differs) for f in res.folds), res.lines()
    with pytest.raises(TestInfluenceError, match=r"fold 1: .*fuser"):
        res.raise_if_failed()


def test_fails_when_test_labels_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """An estimator fitted on every row (labels included) is caught through the label redraw too."""
    import mmfer.pipeline as pl

    orig = pl.fit_rows

    def leaky_fit_rows(table, feats, rows, **kw):  # type: ignore[no-untyped-def]
        if kw.get("stage"):
            return orig(table, feats, rows, **kw)
        return orig(table, feats, np.arange(len(table)), **kw)

    monkeypatch.setattr(pl, "fit_rows", leaky_fit_rows)
    table, feats = _corpus()
    res = verify_folds(table, feats, _cfg(), model_name="logreg", modalities=["audio"])
    assert not res.ok and all("model" in f.differs for f in res.folds)


def test_perturb_rows_and_digests() -> None:
    table, feats = _corpus(n_speakers=2, per=3)
    ids = list(feats)[:2]
    bad = perturb_rows(feats, ids, how="nan")
    assert np.isnan(bad[ids[0]].audio).all() and bad[ids[0]].audio.shape == feats[ids[0]].audio.shape
    assert bad[ids[0]].text != feats[ids[0]].text
    assert bad[ids[2 - 1]] is not feats[ids[1]] and bad[list(feats)[3]] is feats[list(feats)[3]]
    import mmfer.pipeline as pl

    cfg = _cfg()
    rec = pl.fit_recognizer(
        table,
        feats,
        np.arange(len(table)),
        labels=["angry", "happy", "neutral"],
        model_cfg=ModelConfig(name="logreg"),
        fusion_cfg=cfg.fusion,
        text_cfg=cfg.features.text,
        train_cfg=cfg.train,
        features_cfg=cfg.features,
    ).recognizer
    d1, d2 = fit_digests({"params": {}}, rec), fit_digests({"params": {}}, rec)
    assert d1 == d2 and set(d1) == {"settings", "fuser", "model"}
    assert fit_digests({"params": {"C": 1}}, rec)["settings"] != d1["settings"]
