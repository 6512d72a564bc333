"""Leave-one-corpus-out (eval.protocol=loco), closed-set scoring and the cross-corpus report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mmfer.experiment as ex
from mmfer.closedset import closed_set_predict
from mmfer.config import CrossSetting, ExperimentConfig, FeatureConfig, FusionConfig, TrainConfig
from mmfer.data.splits import inner_splits, is_closed_set, make_splits
from mmfer.errors import ConfigError
from mmfer.features.units import SampleFeatures
from mmfer.pipeline import cross_validate, prepare_cv

#: corpus -> (speakers, emotions): "alpha" has calm (no one else has), "beta" has surprised
CORPORA: dict[str, tuple[int, list[str]]] = {
    "alpha": (4, ["neutral", "calm", "happy", "angry"]),
    "beta": (5, ["neutral", "happy", "angry", "surprised"]),
    "gamma": (3, ["neutral", "happy", "angry"]),
}
SIGNAL = ["neutral", "calm", "happy", "angry", "surprised"]


def _corpus(
    root: Path, corpora: dict[str, tuple[int, list[str]]] = CORPORA
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A multi-corpus table (prefixed ids/speakers) and planted-signal audio features."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows, feats = [], {}
    for corpus, (speakers, emotions) in corpora.items():
        shift = rng.normal(size=4)  # a corpus offset: the cross-corpus gap
        for s in range(speakers):
            for k in range(8):
                emo = emotions[k % len(emotions)]
                sid = f"{corpus}:{s}_{k}"
                clip = root / f"{corpus}_{s}_{k}.wav"
                clip.write_bytes(rng.bytes(64))  # hashed only (cache key, duplicate check)
                frames = rng.normal(size=(6, 4)) * 0.5 + 0.3 * shift
                frames[:, 0] += 2.0 * SIGNAL.index(emo)
                rows.append(
                    {
                        "id": sid,
                        "corpus": corpus,
                        "speaker": f"{corpus}:{s}",
                        "emotion": emo,
                        "audio": str(clip),
                    }
                )
                feats[sid] = SampleFeatures(audio=frames.astype(np.float32))
    return pd.DataFrame(rows), feats


def _cfg(tmp_path: Path, **eval_kw: Any) -> ExperimentConfig:
    c = ExperimentConfig(output_dir=str(tmp_path / "out"))
    c.features = FeatureConfig(profile="paper")
    c.fusion = FusionConfig(modalities=["audio"], steps=2, speaker_norm="none")
    c.model = replace(c.model, name="logreg")
    c.train = TrainConfig(epochs=2, patience=0, progress=False, threads=1)
    c.eval = replace(
        c.eval, protocol="loco", select=False, models=["logreg"], reference=["majority"], **eval_kw
    )
    return c


def test_loco_folds_keep_corpora_apart_and_test_every_target_row_once(tmp_path: Path) -> None:
    table, _ = _corpus(tmp_path)
    corpus = table["corpus"].to_numpy()
    splits = make_splits(table, "loco")
    assert len(splits) == 3 and is_closed_set("loco") and not is_closed_set("group_kfold")
    for (tr, te), target in zip(splits, ["alpha", "beta", "gamma"], strict=True):
        assert set(corpus[te]) == {target} and target not in set(corpus[tr])
        assert len(tr) + len(te) == len(table)
    tested = np.concatenate([te for _, te in splits])
    assert sorted(tested.tolist()) == list(range(len(table)))
    only = make_splits(table, "loco", targets=["beta"])
    assert len(only) == 1 and set(corpus[only[0][1]]) == {"beta"}
    # nested selection inside loco: speaker-grouped inner parts of the training corpora
    for itr, iva in inner_splits(table, only[0][0], speaker_independent=True, folds=2):
        assert not set(table["speaker"][itr]) & set(table["speaker"][iva])
        assert "beta" not in set(corpus[iva])


def test_loco_config_errors_are_clear(tmp_path: Path) -> None:
    table, _ = _corpus(tmp_path)
    one = table[table["corpus"] == "alpha"].reset_index(drop=True)
    with pytest.raises(
        ConfigError, match=r"protocol loco needs at least 2 corpora in the table; it has 1 \(alpha\)"
    ):
        make_splits(one, "loco")
    with pytest.raises(ConfigError, match=r"eval.loco_targets: 'delta' is not a corpus of the table"):
        make_splits(table, "loco", targets=["delta"])
    with pytest.raises(ConfigError, match=r"eval.loco_targets is for protocol loco only"):
        make_splits(table, "group_kfold", targets=["alpha"])


def test_bad_settings_are_clear(tmp_path: Path) -> None:
    from mmfer.evaluation.crosscorpus import setting_table

    table, _ = _corpus(tmp_path)
    with pytest.raises(ConfigError, match=r"eval.settings\[0\] \('x'\): corpus 'delta' is not in the table"):
        setting_table(table, CrossSetting(name="x", train=["delta"], test="alpha"), "eval.settings[0]")
    with pytest.raises(ConfigError, match=r"test corpus 'alpha' is also a training corpus"):
        setting_table(table, CrossSetting(name="x", train=["alpha"], test="alpha"), "eval.settings[0]")
    sub = setting_table(table, CrossSetting(name="x", train=["beta"], test="alpha", emotions=["happy"]), "k")
    assert set(sub["emotion"]) == {"happy"} and set(sub["corpus"]) == {"alpha", "beta"}


def test_closed_set_never_predicts_a_label_the_target_lacks(tmp_path: Path) -> None:
    table, feats = _corpus(tmp_path)
    cfg = _cfg(tmp_path)
    setup, splits = prepare_cv(table, feats, cfg, model_name="logreg", modalities=["audio"])
    labels = setup.labels
    tr, te = splits[2]  # gamma: neutral, happy, angry; trained on alpha + beta (all five labels)

    # a recognizer stand-in: only its Fuser's fitted ids are read
    fitted = SimpleNamespace(fuser=SimpleNamespace(fitted_on_=frozenset(setup.ids[tr].tolist())))

    # probabilities that always prefer "surprised", a label gamma does not have
    proba = np.full((len(te), len(labels)), 0.1)
    proba[:, labels.index("surprised")] = 0.9
    proba[:, labels.index("happy")] = 0.5
    scored, pred = closed_set_predict(setup, fitted, te, te, proba)  # type: ignore[arg-type]
    assert len(scored) == len(te)
    assert {labels[p] for p in pred} == {"happy"}  # masked: the best label gamma has
    # outside loco the same probabilities are argmaxed as they are
    within = replace(setup, protocol="group_kfold")
    _, raw = closed_set_predict(within, fitted, te, te, proba)  # type: ignore[arg-type]
    assert {labels[p] for p in raw} == {"surprised"}


def test_loco_run_scores_target_labels_only_and_leaves_unknown_labels_unscored(tmp_path: Path) -> None:
    table, feats = _corpus(tmp_path)
    run, audit = cross_validate(table, feats, _cfg(tmp_path), model_name="logreg", modalities=["audio"])
    by_target = {m["test_corpus"]: m for m in run.fold_metrics}
    assert set(by_target) == {"alpha", "beta", "gamma"}
    # alpha's calm: no other corpus has it -> unscored; beta's surprised likewise
    n_calm = int(((table["corpus"] == "alpha") & (table["emotion"] == "calm")).sum())
    n_surprised = int(((table["corpus"] == "beta") & (table["emotion"] == "surprised")).sum())
    assert by_target["alpha"]["unscored_unknown_label"] == n_calm > 0
    assert by_target["beta"]["unscored_unknown_label"] == n_surprised > 0
    assert by_target["gamma"]["unscored_unknown_label"] == 0
    assert by_target["alpha"]["scored_labels"] == ["neutral", "happy", "angry"]
    assert by_target["gamma"]["train_corpora"] == ["alpha", "beta"]
    assert len(run.y_true) == len(table) - n_calm - n_surprised
    corpus_of = dict(zip(table["id"], table["corpus"], strict=True))
    for target, m in by_target.items():
        allowed = {run.labels.index(lab) for lab in m["scored_labels"]}
        preds = {p for p, i in zip(run.y_pred, run.sample_ids, strict=True) if corpus_of[i] == target}
        assert preds <= allowed
    assert audit.speaker_overlap == [0, 0, 0] and not audit.leaking_components


def test_crosscorpus_report_writes_matrix_settings_and_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, feats = _corpus(tmp_path / "corpus")

    def setup(c: ExperimentConfig) -> tuple[Path, pd.DataFrame, dict[str, Any], list[str]]:
        Path(c.output_dir).mkdir(parents=True, exist_ok=True)
        return Path(c.output_dir), table, feats, ["audio"]

    monkeypatch.setattr(ex, "_setup", setup)
    listed = table[(table["corpus"] == "gamma") & (table["speaker"] != "gamma:2")]
    stems = tmp_path / "gamma_list.txt"
    stems.write_text("\n".join(Path(p).name for p in listed["audio"]) + "\n")
    setting = CrossSetting(
        name="two_to_one",
        train=["alpha"],
        test="gamma",
        emotions=["neutral", "happy", "angry"],
        test_subset=str(stems),
        published={"elsewhere → gamma": 55.5},
    )
    cfg = _cfg(tmp_path, settings=[setting], report_dir=str(tmp_path / "docs"))
    written = ex.report(cfg)
    md = (tmp_path / "docs" / "report.md").read_text()
    assert "Train × test" in md and "Setting two_to_one" in md and "published: elsewhere → gamma" in md
    assert "code version" in md and "55.50" in md
    matrix = pd.read_csv(written["crosscorpus_matrix.csv"])
    assert len(matrix) == 2 * 3  # logreg and majority, one row per target corpus
    assert set(matrix["test"]) == {"alpha", "beta", "gamma"}
    assert (matrix["accuracy_ci_lo_pct"] <= matrix["accuracy_pct"]).all()
    assert (matrix["accuracy_pct"] <= matrix["accuracy_ci_hi_pct"]).all()
    chance = dict(zip(matrix["test"], matrix["chance_pct"], strict=False))
    assert chance["alpha"] == pytest.approx(100 / 3)
    st = pd.read_csv(written["setting_two_to_one.csv"])
    assert set(st["n_scored"]) == {len(listed)} and set(st["train"]) == {"alpha"}
    assert (tmp_path / "docs" / "provenance.md").is_file()
    assert "Setting two_to_one" in (tmp_path / "docs" / "report.html").read_text()
    # a second report reads every run back (runs_done/, same code version): 2 models x 2 tables
    ex.report(cfg)
    prov = (tmp_path / "docs" / "provenance.md").read_text()
    assert "0 computed by this report, 4 reused" in prov


def test_matrix_has_chance_and_the_human_reference_under_its_corpus() -> None:
    from mmfer.evaluation.crosscorpus import CrossScore, matrix_table

    sc = CrossScore(
        "logreg", "ravdess", "cremad", ["angry", "sad"], 10, 0, 2, 0.6, (0.5, 0.7), 0.55, (0.4, 0.7)
    )
    t = matrix_table([sc], "v1", "mmfer report", {"cremad": "acc 41.6"})
    assert t.rows[-2] == ["chance", "—", "50.0 (1/2)"]
    assert t.rows[-1] == ["human raters, voice only", "—", "acc 41.6"]
    assert t.csv_rows[0]["chance_pct"] == pytest.approx(50.0) and t.csv_rows[0]["code_version"] == "v1"
