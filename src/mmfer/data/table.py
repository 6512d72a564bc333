"""The sample table: the one shape every corpus is turned into.

A sample table is a :class:`pandas.DataFrame` with one row per sample and the
columns in :data:`COLUMNS`. Paths are absolute strings or ``None``; a sample
may carry any subset of modalities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mmfer.emotions import CANONICAL
from mmfer.errors import DataError
from mmfer.frame_lists import FRAME_IMAGES, join_frame_images, split_frame_images

__all__ = [
    "COLUMNS",
    "FRAME_IMAGES",
    "MEDIA_COLUMNS",
    "describe_samples",
    "join_frame_images",
    "make_table",
    "read_table",
    "split_frame_images",
    "validate_table",
    "write_table",
]

#: Required columns, in order. Extra corpus-specific columns may follow.
COLUMNS: tuple[str, ...] = (
    "id",
    "corpus",
    "speaker",
    "emotion",
    "video",
    "frames",
    "image",
    "audio",
    "transcript",
)
MEDIA_COLUMNS: tuple[str, ...] = ("video", "frames", "image", "audio")


def describe_samples(table: pd.DataFrame) -> str:
    """``"981 samples"``, or ``"327 samples (image sequences of 3 frames)"`` with ``frame_images``.

    Report titles use it so a per-sequence and a per-image protocol of one corpus are
    never read as the same kind of sample.
    """
    text = f"{len(table)} samples"
    if FRAME_IMAGES not in table.columns:
        return text
    lengths = sorted({len(split_frame_images(c)) for c in table[FRAME_IMAGES]} - {0})
    if not lengths:
        return text
    span = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"
    return f"{text} (image sequences of {span} frames)"


def make_table(records: Iterable[Mapping[str, Any]], *, corpus: str, root: str | Path) -> pd.DataFrame:
    """Build and validate a sample table from per-sample records.

    Parameters
    ----------
    records
        One mapping per sample with at least ``id``, ``speaker``, ``emotion``
        and one of the media columns or ``transcript``.
    corpus
        Corpus name, stored in the ``corpus`` column.
    root
        Corpus root, named in errors (empty corpus).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` then any extra keys, sorted by ``id``.

    Raises
    ------
    DataError
        Empty corpus, duplicate id, non-canonical emotion, or a sample with no
        modality at all.
    """
    rows = [dict(r) for r in records]
    if not rows:
        raise DataError(root, f"empty corpus: no {corpus} samples found")
    for r in rows:
        r.setdefault("corpus", corpus)
        for c in COLUMNS:
            r.setdefault(c, None)
        for c in MEDIA_COLUMNS:
            if r[c] is not None:
                r[c] = str(r[c])
        r["id"] = str(r["id"])
        r["speaker"] = str(r["speaker"])
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    # pandas stores a missing value in a string column as NaN; the contract (and
    # `if row.audio:`) wants None
    for c in (*MEDIA_COLUMNS, "transcript"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    validate_table(df, source=root)
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def validate_table(df: pd.DataFrame, *, source: str | Path | None = None) -> None:
    """Check a sample table's invariants; raise :class:`DataError` naming the culprit."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(source, f"sample table lacks columns {missing}")
    if len(df) == 0:
        raise DataError(source, "empty corpus: the sample table has no rows")
    dup = df["id"][df["id"].duplicated()].tolist()
    if dup:
        first = df[df["id"] == dup[0]]
        where = next((p for c in MEDIA_COLUMNS for p in first[c] if p), source)
        raise DataError(where, f"duplicate sample id {dup[0]!r} ({len(dup)} duplicate ids in all)")
    bad = df[~df["emotion"].isin(CANONICAL)]
    if len(bad):
        row = bad.iloc[0]
        where = next((row[c] for c in MEDIA_COLUMNS if row[c]), source)
        raise DataError(where, f"non-canonical emotion {row['emotion']!r} for sample {row['id']!r}")
    has_any = df[list(MEDIA_COLUMNS)].notna().any(axis=1) | df["transcript"].notna()
    if not has_any.all():
        row = df[~has_any].iloc[0]
        raise DataError(source, f"sample {row['id']!r} has no modality (no media path, no transcript)")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a sample table written by :func:`write_table` (CSV)."""
    df = pd.read_csv(path, dtype={"id": str, "speaker": str}, keep_default_na=False, na_values=[""])
    df = df.astype(object).where(df.notna(), None)
    validate_table(df, source=path)
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a sample table to CSV atomically."""
    from mmfer.io import atomic_write_text

    return atomic_write_text(path, df.to_csv(index=False))
