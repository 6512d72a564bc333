"""User manifest loader: any corpus described by a CSV or JSON-lines file."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

from mmfer.data.corpora import read_jsonl_rows, read_text
from mmfer.data.table import MEDIA_COLUMNS, make_table
from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError
from mmfer.registry import CORPORA

REQUIRED: tuple[str, ...] = ("id", "speaker", "emotion")
CONTENT: tuple[str, ...] = (*MEDIA_COLUMNS, "transcript")
DEFAULT_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.jsonl", "manifest.tsv")


def _rows_csv(path: Path, text: str, sep: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        df = pd.read_csv(StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty manifest: no header and no rows") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(path, f"is not a valid {'CSV' if sep == ',' else 'TSV'} file: {e}") from None
    df.columns = [str(c).strip() for c in df.columns]
    # +2: line 1 is the header and people count lines from 1.
    return [(i + 2, row) for i, row in enumerate(df.to_dict("records"))]


def _resolve_media(path: Path, line: int, column: str, value: str) -> str:
    media = Path(value).expanduser()
    media = (media if media.is_absolute() else path.parent / media).resolve()
    ok = media.is_dir() if column == "frames" else media.is_file()
    if not ok:
        kind = "frame folder" if column == "frames" else f"{column} file"
        raise DataError(path, f"line {line}: {kind} {media} does not exist")
    return str(media)


@CORPORA.register("manifest")
def load_manifest(root: str | Path, *, corpus_name: str = "manifest") -> pd.DataFrame:
    """Load a corpus listed in a manifest file.

    The manifest is a UTF-8 ``.csv``, ``.tsv`` or ``.jsonl`` (one JSON object
    per line; ``.json`` accepted as JSON lines) with columns ``id``,
    ``speaker``, ``emotion`` and at least one of ``video``, ``frames``
    (folder of images), ``image``, ``audio``, ``transcript``. Other columns
    are kept as extras. Empty cells / ``null`` mean "absent". Relative paths
    are resolved against the manifest's folder; emotions may use any alias
    known to :func:`mmfer.emotions.canonical_emotion` (``anger``, ``ps``, ...).

    Parameters
    ----------
    root
        The manifest file, or a folder holding ``manifest.csv``/``.jsonl``/``.tsv``.
    corpus_name
        Value of the ``corpus`` column (unless the manifest has its own).

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_rows, 9 + n_extra_columns)``.

    Raises
    ------
    DataError
        Missing manifest, not UTF-8, not parseable, missing required column,
        empty value in a required column, unknown emotion, missing media file,
        duplicate id, or no row. The message names the manifest and the line.
    """
    path = Path(root).expanduser().resolve()
    if path.is_dir():
        found = [path / n for n in DEFAULT_NAMES if (path / n).is_file()]
        if not found:
            raise DataError(path, f"folder holds no manifest ({', '.join(DEFAULT_NAMES)})")
        path = found[0]
    if not path.exists():
        raise DataError(path, "manifest file does not exist")
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = read_jsonl_rows(path, text)
    elif suffix in (".csv", ".tsv", ".txt"):
        rows = _rows_csv(path, text, "\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(path, f"unknown manifest type {suffix!r}; use .csv, .tsv or .jsonl")
    if not rows:
        raise DataError(path, "empty corpus: the manifest has no rows")
    columns = set().union(*(r.keys() for _, r in rows))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(path, f"manifest lacks required column(s) {missing}; has {sorted(columns)}")
    if not columns & set(CONTENT):
        raise DataError(path, f"manifest needs at least one of the columns {list(CONTENT)}")

    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        row = {k: None if isinstance(v, str) and not v.strip() else v for k, v in raw.items()}
        for c in REQUIRED:
            if row.get(c) is None:
                raise DataError(path, f"line {line}: empty {c!r}")
        sid = str(row["id"]).strip()
        if sid in seen:
            raise DataError(path, f"line {line}: duplicate sample id {sid!r} (first on line {seen[sid]})")
        seen[sid] = line
        try:
            row["emotion"] = canonical_emotion(str(row["emotion"]), source=path)
        except DataError as e:
            raise DataError(path, f"line {line}: {e.problem}") from None
        for c in MEDIA_COLUMNS:
            if row.get(c) is not None:
                row[c] = _resolve_media(path, line, c, str(row[c]).strip())
        if all(row.get(c) is None for c in CONTENT):
            raise DataError(path, f"line {line}: sample {sid!r} has no media path and no transcript")
        row["id"], row["speaker"] = sid, str(row["speaker"]).strip()
        records.append(row)
    return make_table(records, corpus=corpus_name, root=path)
