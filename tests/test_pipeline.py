"""Leakage audit and media hashing of the cross-validation glue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmfer.evaluation.audit import FitRecord, audit_folds
from mmfer.pipeline import media_hash


def _table(tmp_path: Path) -> pd.DataFrame:
    paths = []
    for i in range(6):
        p = tmp_path / f"clip{i}.wav"
        # clips 0 and 3 have identical bytes: a duplicate recording under two ids
        p.write_bytes(b"same" if i in (0, 3) else f"clip{i}".encode())
        paths.append(str(p))
    return pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(6)],
            "speaker": ["a", "a", "b", "b", "c", "c"],
            "audio": paths,
            "video": [None, np.nan, None, None, None, None],
        }
    )


def test_media_hash_ignores_empty_cells(tmp_path: Path) -> None:
    rows = _table(tmp_path).to_dict("records")
    hashes = [media_hash(r) for r in rows]
    assert all(h is not None for h in hashes)
    assert hashes[0] == hashes[3] and len(set(hashes)) == 5
    assert media_hash({"video": float("nan"), "audio": None, "image": None}) is None


def test_leakage_audit_counts_what_happened(tmp_path: Path) -> None:
    table = _table(tmp_path)
    hashes = [media_hash(r) for r in table.to_dict("records")]
    ids = table["id"].tolist()
    clean = [(np.array([2, 3, 4, 5]), np.array([0, 1])), (np.array([0, 1, 4, 5]), np.array([2, 3]))]
    records = [FitRecord(k, "fuser", frozenset(ids[i] for i in tr)) for k, (tr, _) in enumerate(clean)]
    audit = audit_folds(table, clean, records, hashes=hashes, frozen=[("encoder", "pretrained, frozen")])
    assert audit.speaker_overlap == [0, 0]
    # clip 0 (test, fold 0) has the bytes of clip 3 (train); and the other way in fold 1
    assert audit.duplicate_clips_across_splits == 2
    assert audit.leaking_components == []
    fuser = next(c for c in audit.components if c.component == "fuser")
    assert (fuser.fits, fuser.rows_fitted, fuser.test_rows_seen) == (2, 8, 0)
    assert any(c.component == "encoder" and c.fits == 0 for c in audit.components)

    leaky = [(np.array([1, 2, 3, 4, 5]), np.array([0]))]
    audit = audit_folds(table, leaky, [FitRecord(0, "scaler", frozenset(ids))], hashes=hashes)
    assert audit.speaker_overlap == [1]
    assert [(c.component, c.test_rows_seen) for c in audit.leaking_components] == [("scaler", 1)]


def test_audit_reads_the_recorded_speaker_independence_and_counts_transductive_statistics() -> None:
    from mmfer.evaluation.audit import LeakageAudit, audit_findings, merge_audits, resolve_speaker_independent

    table = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "speaker": ["a", "a", "b", "b", "c", "c"]})
    splits = [(np.array([0, 1, 2, 3]), np.array([4, 5]))]
    records = [
        FitRecord(0, "per-speaker statistics (training speakers)", frozenset({"r0", "r1", "r2", "r3"}), True),
        FitRecord(0, "per-speaker statistics (test speakers, transductive)", frozenset({"r4", "r5"}), True),
    ]
    audit = audit_folds(table, splits, records, speaker_independent=False)
    assert audit.speaker_independent is False
    assert resolve_speaker_independent("some protocol text", None, audit) == (False, [])
    # nothing declared or recorded: strict, with a note (no guessing from the text any more)
    strict, notes = resolve_speaker_independent("stratified k-fold", None, LeakageAudit(speaker_overlap=[0]))
    assert strict is True and notes
    comps = {c.component: c for c in audit.components}
    assert comps["per-speaker statistics (test speakers, transductive)"].transductive
    assert not comps["per-speaker statistics (training speakers)"].leaked
    leaks, info = audit_findings(audit, "p")
    assert leaks == [
        "LEAK (transductive, label-free): per-speaker statistics (test speakers, transductive) used 2 scored "
        "test row(s) of its own fold (each test speaker normalised with its own scored clips)"
    ]
    assert any(s.startswith("per-speaker statistics (training speakers): label-free") for s in info)
    merged = merge_audits([audit, audit])
    assert merged is not None and merged.speaker_independent is False
    assert merged.components[1].label_free and merged.components[1].test_rows_seen == 4
    mixed = merge_audits([audit, audit_folds(table, splits, [], speaker_independent=True)])
    assert mixed is not None and mixed.speaker_independent is None
