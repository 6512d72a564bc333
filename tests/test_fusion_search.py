"""Fuser settings chosen by nested selection: ``fusion.audio_layers`` under ``eval.search.all``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mmfer import pipeline
from mmfer.config import ExperimentConfig, FusionConfig, TextConfig
from mmfer.data.splits import make_splits
from mmfer.errors import ConfigError
from mmfer.features.units import SampleFeatures
from mmfer.tuning import fold_configs

LABELS = ["angry", "happy", "sad"]


def _corpus(seed: int = 0) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    """6 speakers x 3 emotions x 6 clips; audio frames hold 2 blocks of width 8:
    block 1 carries the emotion (a class-specific mean), block 0 is pure noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 1.5
    rows, feats = [], {}
    for s in range(6):
        for e, emo in enumerate(LABELS):
            for k in range(6):
                sid = f"s{s}_{emo}_{k}"
                noise = rng.standard_normal((10, 8))
                signal = centres[e] + rng.standard_normal((10, 8))
                feats[sid] = SampleFeatures(audio=np.concatenate([noise, signal], axis=1).astype(np.float32))
                rows.append({"id": sid, "speaker": f"s{s}", "emotion": emo})
    return pd.DataFrame(rows), feats


def _cfg() -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.fusion = FusionConfig(modalities=["audio"], steps=2, audio_block=8)
    cfg.eval = replace(
        cfg.eval,
        protocol="group_kfold",
        folds=3,
        select_budget=2,
        inner_folds=2,
        search={"logreg": {"C": [1.0]}, "all": {"fusion.audio_layers": [[0], [1]]}},
    )
    return cfg


def test_fold_configs_routes_each_prefix() -> None:
    est, text, fusion = fold_configs(
        {"C": 0.1, "text.context": 2, "fusion.audio_layers": (1, 3)}, TextConfig(), FusionConfig()
    )
    assert est == {"C": 0.1} and text.context == 2 and fusion.audio_layers == [1, 3]
    with pytest.raises(ConfigError, match=r"fusion\.modalities cannot be searched"):
        fold_configs({"fusion.modalities": ["face"]}, TextConfig(), FusionConfig())


def test_search_all_is_added_to_every_models_space() -> None:
    cfg = _cfg()
    for name in ("logreg", "mlp", "majority"):
        est = pipeline.make_estimator(name, cfg.model, cfg.train)
        space = pipeline.search_space(est, cfg.eval.search, name)
        assert space["fusion.audio_layers"] == [[0], [1]]
    mlp = pipeline.make_estimator("mlp", cfg.model, cfg.train)
    # the model's own declared space stays (only "all" is added)
    assert set(pipeline.search_space(mlp, cfg.eval.search, "mlp")) - {"fusion.audio_layers"} == set(
        mlp.search_space
    )


def test_selection_picks_the_informative_layer_on_inner_folds_and_fits_with_it() -> None:
    table, feats = _corpus()
    cfg = _cfg()
    setup, splits = pipeline.prepare_cv(table, feats, cfg, model_name="logreg", modalities=["audio"])
    tr, te = splits[0]
    records: list = []
    settings, rec, _, _ = pipeline.fit_fold(setup, feats, 0, tr, records)
    assert settings["params"]["fusion.audio_layers"] == [1]
    assert settings["inner_accuracy"] > 0.8  # the signal block; block 0 alone is at chance
    assert rec.fuser.cfg.audio_layers == [1] and rec.fuser.n_features == 8 + 1
    test_ids = set(table["id"].to_numpy()[te])
    assert records and all(not (set(r.ids) & test_ids) for r in records)
    # the split is speaker-independent, as the audit above relies on
    assert not set(table["speaker"].to_numpy()[tr]) & set(table["speaker"].to_numpy()[te])
    assert len(make_splits(table, "group_kfold", 3)) == 3
