"""Several corpora in one sample table (issue 20): sources, list-file subsets, train-only
corpora inside a within-corpus protocol, corpus-balanced fits, the CREMA-D raters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfer.config import DataConfig, FeatureConfig, FusionConfig, SourceConfig, TextConfig, load_config
from mmfer.data.balance import balanced_rows, repeat_factors
from mmfer.data.multi import apply_subset, concat_tables, load_tables, read_stem_list
from mmfer.data.splits import inner_splits, make_splits
from mmfer.errors import ConfigError, DataError
from mmfer.features.units import SampleFeatures

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _manifest(folder: Path, name: str, speakers: int, emotions: list[str], per: int = 2) -> Path:
    """A manifest corpus of tiny (never decoded) clips: ``<name>_s<k>_<emotion>_<i>.wav``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(speakers):
        for e in emotions:
            for i in range(per):
                stem = f"{name}_s{s}_{e}_{i}"
                (folder / f"{stem}.wav").write_bytes(f"{stem}".encode() * 8)
                rows.append({"id": stem, "speaker": f"s{s}", "emotion": e, "audio": f"{stem}.wav"})
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _cfg(tmp_path: Path, **kw: object) -> DataConfig:
    a = _manifest(tmp_path / "a", "a", 3, ["angry", "happy", "sad"])
    b = _manifest(tmp_path / "b", "b", 4, ["angry", "happy", "neutral"])
    src = SourceConfig(corpus="manifest", root=str(b), name="bee", options={"corpus_name": "bee"})
    return DataConfig(
        corpus="manifest", root=str(a), options={"corpus_name": "manifest"}, sources=[src], **kw
    )


def test_sources_concatenate_with_corpus_prefixed_ids_and_speakers(tmp_path: Path) -> None:
    table = load_tables(_cfg(tmp_path))
    assert sorted(table["corpus"].unique()) == ["bee", "manifest"]
    assert len(table) == 3 * 3 * 2 + 4 * 3 * 2
    # speaker "s0" exists in both corpora: prefixed, they are two people
    assert {"manifest:s0", "bee:s0"} <= set(table["speaker"])
    assert table["id"].is_unique
    assert all(i.startswith(c + ":") for i, c in zip(table["id"], table["corpus"], strict=True))
    assert "train_only" not in table.columns
    marked = load_tables(_cfg(tmp_path, extra_train=["bee"], corpus_balance="balanced"))
    assert marked["train_only"].tolist() == (marked["corpus"] == "bee").tolist()
    assert marked.attrs["corpus_balance"] == "balanced"


def test_single_corpus_table_is_unchanged(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.sources = []
    table = load_tables(cfg)
    assert not any(":" in i for i in table["id"]) and set(table["corpus"]) == {"manifest"}


def test_bad_multi_corpus_configs_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.extra_train: 'cremad' is not a source corpus; valid: bee"):
        load_tables(_cfg(tmp_path, extra_train=["cremad"]))
    cfg = _cfg(tmp_path)
    cfg.sources.append(cfg.sources[0])
    with pytest.raises(ConfigError, match=r"data.sources\[1\]: corpus name 'bee' is already in the table"):
        load_tables(cfg)
    with pytest.raises(ConfigError, match=r"unknown config key data.sources\[0\].rooot"):
        load_config(None, ["data.sources=[{corpus: cremad, rooot: x}]"])
    cfg = load_config(None, ["data.sources=[{corpus: cremad, root: x, emotions: [sad]}]"])
    assert isinstance(cfg.data.sources[0], SourceConfig) and cfg.data.sources[0].emotions == ["sad"]
    with pytest.raises(ConfigError, match="corpus_balance"):
        load_config(None, ["data.corpus_balance=sometimes"])


def test_subset_lists_keep_listed_stems_and_name_the_file_of_a_missing_one(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    table = load_tables(DataConfig(corpus="manifest", root=cfg.root))
    jl = tmp_path / "list.jsonl"
    names = ["Actor_1/a_s0_angry_0.wav", "a_s1_sad_1.wav"]
    jl.write_text("\n".join(json.dumps({"wav_filename": n, "label": "x"}) for n in names) + "\n")
    assert read_stem_list(jl) == ["a_s0_angry_0", "a_s1_sad_1"]
    cut = apply_subset(table, jl)
    assert sorted(cut["id"]) == ["a_s0_angry_0", "a_s1_sad_1"]
    txt = tmp_path / "list.txt"
    txt.write_text("# comment\na_s2_happy_0.flac\n")
    assert apply_subset(table, txt)["id"].tolist() == ["a_s2_happy_0"]
    csv = tmp_path / "list.csv"
    pd.DataFrame({"stem": ["a_s0_angry_0", "a_s9_angry_0"]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"list.csv.*'a_s9_angry_0' is not in corpus"):
        apply_subset(table, csv)
    # the main corpus through data.subset, the sources through their own subset
    sub = load_tables(DataConfig(corpus="manifest", root=cfg.root, subset=str(txt)))
    assert sub["id"].tolist() == ["a_s2_happy_0"]


def _two_corpus_table() -> pd.DataFrame:
    rows = []
    for corpus, speakers, n in (("main", 4, 3), ("extra", 3, 5)):
        for s in range(speakers):
            for k in range(n):
                emo = ["angry", "happy", "sad"][k % 3]
                rows.append(
                    {"id": f"{corpus}_{s}_{k}", "speaker": f"{corpus}{s}", "emotion": emo, "audio": "x"}
                )
    table = pd.DataFrame(rows)
    table["corpus"] = [i.split("_")[0] for i in table["id"]]
    return table


@pytest.mark.parametrize("protocol", ["loso", "group_kfold", "stratified_kfold"])
def test_extra_train_rows_only_ever_train(protocol: str) -> None:
    table = _two_corpus_table()
    table["train_only"] = table["corpus"] == "extra"
    extra = np.flatnonzero(table["train_only"])
    core = np.flatnonzero(~table["train_only"])
    splits = make_splits(table, protocol, folds=2, seed=0)
    tested = np.concatenate([te for _, te in splits])
    assert sorted(tested.tolist()) == core.tolist()  # every main row tested exactly once
    for tr, te in splits:
        assert set(extra) <= set(tr) and not set(extra) & set(te)
        for itr, iva in inner_splits(table, tr, speaker_independent=protocol != "stratified_kfold", folds=2):
            assert set(extra) <= set(itr)
            assert not set(extra) & set(iva) and len(iva)
            assert set(iva) <= set(tr) and set(itr) <= set(tr)


def test_repeat_factors_balance_corpora() -> None:
    assert repeat_factors({"cremad": 7442, "ravdess": 1440}) == {"cremad": 1, "ravdess": 5}
    assert repeat_factors({"a": 100, "b": 100, "c": 30}) == {"a": 1, "b": 1, "c": 3}
    table = _two_corpus_table()  # main 12 rows, extra 15 rows
    rows = np.arange(len(table))
    assert balanced_rows(table, rows).tolist() == rows.tolist()  # off unless the table asks
    table.attrs["corpus_balance"] = "balanced"
    out = balanced_rows(table, rows)
    counts = table["corpus"].to_numpy()[out]
    assert (counts == "main").sum() == 12 and (counts == "extra").sum() == 15  # round(15/12) = 1
    only_main = rows[:6]
    out = balanced_rows(table, np.concatenate([only_main, rows[12:]]))
    assert (table["corpus"].to_numpy()[out] == "main").sum() == 6 * round(15 / 6)


def test_balanced_fit_weighs_corpora_and_records_only_real_ids() -> None:
    from mmfer.estimators import create_estimator
    from mmfer.pipeline import fit_rows

    # corpus "small": 5 angry rows, corpus "big": 12 happy rows -> factors 2 and 1
    rows = [("small", f"s{i}", "angry") for i in range(5)] + [("big", f"b{i}", "happy") for i in range(12)]
    table = pd.DataFrame(
        {
            "id": [f"{c}:{i}" for c, i, _ in rows],
            "corpus": [c for c, _, _ in rows],
            "speaker": [f"{c}:{i}" for c, i, _ in rows],
            "emotion": [e for _, _, e in rows],
        }
    )
    feats = {i: SampleFeatures(audio=np.ones((3, 2), np.float32)) for i in table["id"]}
    kw = {
        "labels": ["happy", "angry"],
        "estimator": create_estimator("majority"),
        "fusion_cfg": FusionConfig(modalities=["audio"], steps=1),
        "text_cfg": TextConfig(),
        "features_cfg": FeatureConfig(profile="paper"),
    }
    plain = fit_rows(table, feats, np.arange(17), **kw)
    table.attrs["corpus_balance"] = "balanced"
    records: list = []
    rec = fit_rows(table, feats, np.arange(17), records=records, **kw)
    x = [feats[i] for i in table["id"][:1]]
    assert plain.predict_proba(x)[0, 1] == pytest.approx(5 / 17)
    assert rec.predict_proba(x)[0, 1] == pytest.approx(10 / 22)  # small corpus repeated twice
    assert records and all(r.ids == frozenset(table["id"]) for r in records)


@pytest.mark.skipif(not (SHARED / "cremad-audio" / "summaryTable.csv").is_file(), reason="no ../shared/data")
def test_cremad_voice_only_raters_are_far_from_perfect() -> None:
    from mmfer.data.cremad import load_rater_votes, rater_accuracy

    votes = load_rater_votes(SHARED / "cremad-audio" / "summaryTable.csv")
    acc = rater_accuracy(votes)
    assert len(votes) == 7442
    assert 0.35 < acc["voice"] < 0.5
    assert acc["voice"] < acc["face"] < acc["audio-visual"]


@pytest.mark.skipif(
    not (SHARED / "emobox-track2" / "RAVDESS_selected_balenced.jsonl").is_file(), reason="no ../shared/data"
)
def test_emobox_ravdess_list_selects_its_240_clips() -> None:
    cfg = DataConfig(
        corpus="ravdess",
        root=str(SHARED / "ravdess-speech-16k"),
        subset=str(SHARED / "emobox-track2" / "RAVDESS_selected_balenced.jsonl"),
    )
    table = load_tables(cfg)
    assert len(table) == 240
    assert table["emotion"].value_counts().to_dict() == {"angry": 60, "happy": 60, "neutral": 60, "sad": 60}


def test_concat_fills_missing_extras_with_none() -> None:
    a = pd.DataFrame({"id": ["1"], "corpus": ["x"], "speaker": ["s"], "emotion": ["sad"], "audio": ["p"]})
    for c in ("video", "frames", "image", "transcript"):
        a[c] = None
    b = a.copy()
    a["intensity"] = "high"
    out = concat_tables({"x": a, "y": b})
    assert out["id"].tolist() == ["x:1", "y:1"] and out["intensity"].tolist() == ["high", None]
