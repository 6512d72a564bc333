"""One sample table from several corpora (``data.sources``), and list-file subsets.

:func:`load_tables` is what :func:`mmfer.pipeline.load_corpus` calls: the main corpus
(``data.corpus``) plus every entry of ``data.sources``, each loaded by its registered
loader, optionally cut to the clips named in a list file (``subset``), then concatenated.

In a table with more than one corpus, ``id`` and ``speaker`` are prefixed with the corpus
name (``cremad:1001``, ``cremad:1001_DFA_ANG_XX``) for *every* corpus, so the rule does not
depend on whether two corpora happen to share an actor number (RAVDESS ``01``-``24`` and a
manifest corpus could), and a speaker-grouped split can never join two people. Emotions are
already canonical (:mod:`mmfer.emotions`), so labels of different corpora compare directly.

``data.extra_train`` names sources whose rows are only ever training rows: they get
``train_only = True`` (:func:`mmfer.data.splits.make_splits` and
:func:`~mmfer.data.splits.inner_splits` honour it). ``data.corpus_balance`` is kept in
``table.attrs["corpus_balance"]`` for :func:`mmfer.data.balance.balanced_rows`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.data.corpora import load_corpus, read_jsonl_rows, read_text
from mmfer.data.table import MEDIA_COLUMNS, validate_table
from mmfer.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mmfer.config import DataConfig, SourceConfig

__all__ = ["apply_subset", "concat_tables", "load_tables", "media_stems", "read_stem_list"]

#: Keys of a JSON-lines list file that name the clip (EmoBox uses ``wav_filename``).
LIST_KEYS: tuple[str, ...] = ("wav_filename", "path", "file", "filename", "audio", "video", "stem", "id")


def load_tables(cfg: DataConfig) -> pd.DataFrame:
    """The sample table of ``cfg``: main corpus + ``cfg.sources``, subsets applied.

    Returns
    -------
    pandas.DataFrame
        One corpus: that corpus's table (cut to ``cfg.subset``), unchanged otherwise.
        Several: :func:`concat_tables` of them (prefixed ids and speakers), with a
        ``train_only`` column when ``cfg.extra_train`` names any.

    Raises
    ------
    ConfigError
        A corpus without a root, a source without a corpus name, two corpora of the
        same name, ``extra_train`` naming no source.
    DataError
        Bad corpus files, or a list file naming a clip the corpus does not have.
    """
    if cfg.corpus == "synthetic":
        opts = {
            "speakers": cfg.synthetic_speakers,
            "clips_per_emotion": cfg.synthetic_clips_per_emotion,
            "seed": cfg.synthetic_seed,
        }
        main = load_corpus("synthetic", cfg.root, emotions=cfg.emotions, **{**opts, **cfg.options})
    else:
        if not cfg.root:
            raise ConfigError(f"data.root: corpus {cfg.corpus!r} needs a root folder (data.root=PATH)")
        main = load_corpus(cfg.corpus, cfg.root, emotions=cfg.emotions, **cfg.options)
    if cfg.subset:
        main = apply_subset(main, cfg.subset)
    tables = {cfg.corpus: main}
    for k, src in enumerate(cfg.sources):
        name, table = _load_source(src, f"data.sources[{k}]")
        if name in tables:
            raise ConfigError(
                f"data.sources[{k}]: corpus name {name!r} is already in the table; "
                "give the source another name (data.sources[k].name)"
            )
        tables[name] = table
    unknown = [c for c in cfg.extra_train if c not in tables or c == cfg.corpus]
    if unknown:
        raise ConfigError(
            f"data.extra_train: {unknown[0]!r} is not a source corpus; valid: "
            f"{', '.join(list(tables)[1:]) or 'none (add data.sources first)'}"
        )
    out = concat_tables(tables) if len(tables) > 1 else main
    if cfg.extra_train:
        out["train_only"] = out["corpus"].isin(cfg.extra_train).to_numpy()
    if cfg.corpus_balance != "none":
        out.attrs["corpus_balance"] = cfg.corpus_balance
    return out


def _load_source(src: SourceConfig, key: str) -> tuple[str, pd.DataFrame]:
    """``(corpus name, table)`` of one ``data.sources`` entry (renamed, cut to its subset)."""
    if not src.corpus:
        raise ConfigError(f"{key}.corpus: every source needs a corpus name (e.g. cremad)")
    if not src.root and src.corpus != "synthetic":
        raise ConfigError(f"{key}.root: corpus {src.corpus!r} needs a root folder")
    table = load_corpus(src.corpus, src.root, emotions=src.emotions, **src.options)
    if src.subset:
        table = apply_subset(table, src.subset)
    name = src.name or src.corpus
    table["corpus"] = name
    return name, table


def concat_tables(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-corpus tables, prefixing ``id`` and ``speaker`` with the corpus name.

    Parameters
    ----------
    tables
        ``{corpus name: sample table}``; each table's ``corpus`` column is set to its name.

    Returns
    -------
    pandas.DataFrame
        ``(sum of rows, union of columns)``, corpora in the given order (each keeps its
        row order); cells a corpus lacks are ``None``; ``attrs["skipped"]`` joins theirs.
    """
    parts = []
    skipped: list[Any] = []
    for name, table in tables.items():
        t = table.copy()
        t["corpus"] = name
        t["id"] = name + ":" + t["id"].astype(str)
        t["speaker"] = name + ":" + t["speaker"].astype(str)
        parts.append(t)
        skipped += list(table.attrs.get("skipped", []))
    out = pd.concat(parts, ignore_index=True, sort=False)
    # a column only some corpora have is NaN elsewhere; the table contract wants None
    out = out.astype(object).where(out.notna(), None)
    validate_table(out, source=", ".join(tables))
    out.attrs["skipped"] = skipped
    return out


def media_stems(table: pd.DataFrame) -> list[set[str]]:
    """Per row, the stems of its media files (``03-01-05-01-02-01-15`` of ``.../x.flac``)."""
    stems: list[set[str]] = [set() for _ in range(len(table))]
    for col in (c for c in MEDIA_COLUMNS if c in table.columns):
        for i, p in enumerate(table[col].tolist()):
            if isinstance(p, str) and p:
                stems[i].add(Path(p).stem)
    return stems


def read_stem_list(path: str | Path) -> list[str]:
    """The clip stems named by a list file, in file order.

    ``.jsonl``: one JSON object a line, the clip in one of :data:`LIST_KEYS`
    (``{"wav_filename": "Actor_15/03-01-03-01-01-02-15.wav", ...}``); ``.csv``: the first
    such column, else the first column; anything else: one name a line (``#`` comments).
    A name's folder and suffix are dropped: ``Actor_15/x.wav`` lists ``x``.

    Raises
    ------
    DataError
        Missing or unreadable file, a line that is not a JSON object or names no clip, no name at all.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "subset list file not found")
    names: list[str] = []
    if p.suffix.lower() == ".jsonl":
        for n, obj in read_jsonl_rows(p, read_text(p)):
            key = next((k for k in LIST_KEYS if obj.get(k)), None)
            if key is None:
                raise DataError(p, f"line {n} names no clip (expected one of {', '.join(LIST_KEYS)})")
            names.append(str(obj[key]))
    elif p.suffix.lower() == ".csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        col = next((c for c in df.columns if c.lower() in LIST_KEYS), df.columns[0])
        names = [v for v in df[col].tolist() if v]
    else:
        lines = read_text(p).splitlines()
        names = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
    if not names:
        raise DataError(p, "subset list names no clip")
    # a stem, not a path: the list was written on another machine (EmoBox: .wav, ours .flac)
    return [Path(v.replace("\\", "/")).stem for v in names]


def apply_subset(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Rows of ``table`` whose media file stem is listed in ``path`` (:func:`read_stem_list`).

    Raises
    ------
    DataError
        Naming the list file and the first listed stem that no row has (after the
        corpus's emotion filter).
    """
    listed = read_stem_list(path)
    stems = media_stems(table)
    have = set().union(*stems) if stems else set()
    missing = [s for s in listed if s not in have]
    if missing:
        raise DataError(
            path,
            f"listed clip {missing[0]!r} is not in corpus {table['corpus'].iloc[0]!r} "
            f"({len(missing)} of {len(listed)} listed stems missing; the corpus's emotion "
            "filter applies first)",
        )
    keep = set(listed)
    mask = np.array([bool(s & keep) for s in stems], dtype=bool)  # (n,)
    attrs = dict(table.attrs)
    out = table[mask].reset_index(drop=True)
    out.attrs.update(attrs)
    return out
