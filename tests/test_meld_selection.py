"""MELD protocol pieces: weighted F1, official-split selection on dev only, dialogue context
from earlier utterances only, and the embedding-layer choice as a searched setting."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from mmfer import pipeline
from mmfer.config import ExperimentConfig, FusionConfig, TextConfig, load_config
from mmfer.data.splits import inner_splits, make_splits
from mmfer.errors import ConfigError
from mmfer.estimators.selection import candidate_grid
from mmfer.evaluation.metrics import classification_metrics
from mmfer.features.units import SampleFeatures
from mmfer.features.words.dialogue import attach_dialogue_context, previous_rows
from mmfer.features.words.text_view import pick_layers, text_vector
from mmfer.tuning import base_model, split_params, text_config

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "meld-text"
EMOTIONS = ["neutral", "happy", "sad"]


def _table(seed: int = 0) -> pd.DataFrame:
    """A MELD-like table: 3 splits x 6 dialogues x 5 utterances, two speakers per dialogue."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in ("train", "dev", "test"):
        for d in range(6 if split == "train" else 3):
            for u in rng.permutation(5):  # rows out of utterance order on purpose
                rows.append(
                    {
                        "id": f"{split}_d{d}_u{u}",
                        "speaker": ["Ross", "Rachel"][u % 2],
                        "emotion": EMOTIONS[(d + u) % 3],
                        "split": split,
                        "dialogue": d,
                        "utterance": int(u),
                    }
                )
    return pd.DataFrame(rows)


def _feats(table: pd.DataFrame, layers: int = 3, width: int = 4, seed: int = 0) -> dict[str, SampleFeatures]:
    rng = np.random.default_rng(seed)
    out = {}
    for r in table.itertuples():
        # class signal in every layer, so a fitted model beats chance
        e = rng.normal(size=(layers, width)).astype(np.float32)
        e[:, EMOTIONS.index(r.emotion)] += 3.0
        e /= np.linalg.norm(e, axis=1, keepdims=True) * np.sqrt(layers)
        out[r.id] = SampleFeatures(text="words", text_emb=e.reshape(-1))
    return out


def test_weighted_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))
    p[p == 4] = 3  # a class never predicted
    m = classification_metrics(y, p, labels=list(range(6)))  # class 5 absent from both
    assert m["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted", labels=list(range(6))))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", labels=sorted(set(y))))


def test_official_split_inner_split_is_train_to_dev_and_outer_test_is_test() -> None:
    table = _table()
    split = table["split"].to_numpy()
    [(tr, te)] = make_splits(table, "official_split")
    assert set(split[te]) == {"test"} and set(split[tr]) == {"train", "dev"}
    [(itr, iva)] = inner_splits(table, tr, speaker_independent=False, protocol="official_split")
    assert set(split[itr]) == {"train"} and set(split[iva]) == {"dev"}


def test_official_split_selection_never_sees_test_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table()
    feats = _feats(table)
    attach_dialogue_context(table, feats)
    cfg = ExperimentConfig()
    cfg.features.text = TextConfig(representation="embedding", embedding_layers=[0, 1, 2])
    cfg.eval = replace(
        cfg.eval,
        protocol="official_split",
        headline_metric="weighted_f1",
        select_budget=4,
        search={"logreg": {"C": [0.1, 1.0], "text.layers": [[2], [1, 2]], "text.context": [0, 2]}},
    )
    labels = sorted(EMOTIONS)
    [(tr, te)] = make_splits(table, "official_split")
    scored: list[np.ndarray] = []
    real_score = pipeline.score_on

    def spy(rec, table_, feats_, rows, metric="accuracy"):  # type: ignore[no-untyped-def]
        assert metric == "weighted_f1"
        scored.append(np.asarray(rows))
        return real_score(rec, table_, feats_, rows, metric)

    monkeypatch.setattr(pipeline, "score_on", spy)
    records: list = []
    est = pipeline.make_estimator("logreg@context", cfg.model, cfg.train)
    sel = pipeline.select_settings(
        table,
        feats,
        tr,
        estimator=est,
        cfg=cfg,
        labels=labels,
        fusion_cfg=FusionConfig(modalities=["text"], steps=1),
        protocol="official_split",
        records=records,
        name="logreg@context",
    )
    test_ids = set(table["id"].to_numpy()[te])
    dev_ids = set(table.loc[table["split"] == "dev", "id"])
    assert sel.tried == 4 and set(sel.params) == {"C", "text.layers", "text.context"}
    assert records and all(not (set(r.ids) & (test_ids | dev_ids)) for r in records)  # fitted on train only
    assert scored and all(set(table["split"].to_numpy()[rows]) == {"dev"} for rows in scored)


def test_context_uses_only_earlier_utterances_of_the_same_dialogue() -> None:
    table = _table()
    prev = previous_rows(table, k_max=10)
    key = list(zip(table["split"], table["dialogue"], strict=True))
    utt = table["utterance"].to_numpy()
    for i, rows in enumerate(prev):
        assert all(key[p] == key[i] and utt[p] < utt[i] for p in rows)
        assert len(rows) == utt[i]  # every earlier utterance (ids 0..4, no gaps here)
        assert list(utt[rows]) == sorted(utt[rows])  # oldest first
    assert [len(r) for r in previous_rows(table, k_max=2)] == [min(2, u) for u in utt]


def test_context_vector_ignores_later_turns_and_other_dialogues() -> None:
    table = _table()
    cfg = TextConfig(representation="embedding", embedding_layers=[0, 1, 2], layers=[1, 2], context=3)
    feats = _feats(table)
    attach_dialogue_context(table, feats)
    target = "train_d2_u3"
    before = text_vector(feats[target], cfg)
    assert before is not None and before.shape == (3 * 2 * 4,)
    # change a later turn of the same dialogue, and every turn of the other dialogues
    changed = _feats(table, seed=99)
    keep = {f"train_d2_u{u}" for u in range(4)}
    for i, f in changed.items():
        if i not in keep:
            feats[i] = f
    attach_dialogue_context(table, feats)
    assert np.array_equal(text_vector(feats[target], cfg), before)
    # same-speaker / other-speaker means: u1 was said by the same speaker as u3, u0 and u2 by the other
    d = 2 * 4
    same = pick_layers(feats["train_d2_u1"].text_emb, cfg)
    other = (
        pick_layers(feats["train_d2_u0"].text_emb, cfg) + pick_layers(feats["train_d2_u2"].text_emb, cfg)
    ) / 2
    np.testing.assert_allclose(before[d : 2 * d], same, rtol=1e-6)
    np.testing.assert_allclose(before[2 * d :], other, rtol=1e-6)
    first = text_vector(feats["train_d2_u0"], cfg)  # first turn: context blocks are zero
    assert first is not None and not first[d:].any()


def test_pick_layers_renormalises_and_rejects_layers_not_extracted() -> None:
    e = np.arange(1, 13, dtype=np.float32)  # 3 layers x 4
    cfg = TextConfig(embedding_layers=[0, 3, 6], layers=[3, 6])
    v = pick_layers(e, cfg)
    assert v.shape == (8,) and np.linalg.norm(v) == pytest.approx(1.0)
    np.testing.assert_allclose(v[:4], e[4:8] / np.linalg.norm(e[4:8]) / np.sqrt(2), rtol=1e-6)
    assert np.array_equal(pick_layers(e, replace(cfg, layers=[])), e)
    with pytest.raises(ConfigError):
        pick_layers(e, replace(cfg, layers=[5]))


def test_layer_choice_and_context_are_in_the_declared_search_space_of_meld() -> None:
    cfg = load_config(REPO / "configs" / "meld.yaml")
    assert cfg.eval.protocol == "official_split" and cfg.eval.headline_metric == "weighted_f1"
    for name in cfg.eval.models:
        est = pipeline.make_estimator(name, cfg.model, cfg.train)
        assert est.name == base_model(name)
        space = pipeline.search_space(est, cfg.eval.search, name)
        assert len(space["text.layers"]) >= 2, name
        assert ("text.context" in space) == name.endswith("@context"), name
        assert all(k > 0 for k in space.get("text.context", [1]))
        cands = candidate_grid(space, cfg.eval.select_budget, model=est.name)
        assert all("text.layers" in c for c in cands)
    est, text = split_params({"C": 1.0, "text.layers": [3], "text.context": 2})
    assert est == {"C": 1.0} and text_config(TextConfig(), text).context == 2
    with pytest.raises(ConfigError):
        text_config(TextConfig(), {"no_such_field": 1})


@pytest.mark.skipif(not REAL.is_dir(), reason="MELD CSVs not available (../shared/data/meld-text)")
def test_real_meld_context_never_crosses_dialogues_or_splits() -> None:
    from mmfer.data.meld import load_meld

    table = load_meld(REAL)
    prev = previous_rows(table, k_max=6)
    split, dia, utt = (table[c].to_numpy() for c in ("split", "dialogue", "utterance"))
    for i, rows in enumerate(prev):
        for p in rows:
            assert split[p] == split[i] and dia[p] == dia[i] and utt[p] < utt[i]
    assert sum(bool(r) for r in prev) > len(table) // 2


def test_dialogue_steps_feed_earlier_turns_then_the_utterance_as_masked_steps() -> None:
    from mmfer.fusion import Fuser

    table = _table()
    feats = _feats(table)
    attach_dialogue_context(table, feats)
    text = TextConfig(
        representation="embedding", embedding_layers=[0, 1, 2], layers=[2], context=3, context_steps=True
    )
    ids = ["train_d1_u0", "train_d1_u2", "train_d1_u4"]
    fuser = Fuser(FusionConfig(modalities=["text"], steps=1), text).fit([feats[i] for i in table["id"]])
    out = fuser.transform([feats[i] for i in ids])
    assert out.x.shape[:2] == (3, 4)
    assert out.mask.tolist() == [[True, False, False, False], [True, True, True, False], [True] * 4]
    # u4: steps = u1, u2, u3, then u4 itself; the flag marks the same speaker (u % 2)
    for step, u in enumerate([1, 2, 3, 4]):
        emb = pick_layers(feats[f"train_d1_u{u}"].text_emb, text)
        np.testing.assert_allclose(out.x[2, step, :4], emb, rtol=1e-6)
        assert out.x[2, step, 4] == float(u % 2 == 0)
    assert not out.x[0, 1:].any()  # padding carries nothing
