"""Helpers shared by the corpus loaders, and :func:`load_corpus`.

Every loader (``savee``, ``ravdess``, ``ckplus``, ``cremad``, ``tess``,
``manifest``, ``synthetic``) lives in its own module of :mod:`mmfer.data`
and registers itself in :data:`mmfer.registry.CORPORA`; importing
:mod:`mmfer.data` registers them all. Loaders only list files and parse
names/labels: they never decode media, but they do check that each listed
file exists and can be opened for reading, so a broken link fails at load
time with its path rather than hours later inside feature extraction.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mmfer.emotions import canonical_emotion
from mmfer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".flv", ".webm", ".mpg", ".mpeg")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def load_corpus(
    name: str,
    root: str | Path | None = None,
    *,
    emotions: Iterable[str] = (),
    **options: Any,
) -> pd.DataFrame:
    """Load a registered corpus and optionally keep only some emotions.

    Parameters
    ----------
    name
        Registered corpus name (see ``mmfer.registry.CORPORA.names()``).
    root
        Corpus folder (or manifest file); ``None`` is passed through for
        corpora that need none (``synthetic``).
    emotions
        Emotion names to keep (any alias, e.g. ``"anger"``); empty keeps all.
    **options
        Loader-specific options (e.g. ``merge=False`` for RAVDESS).

    Returns
    -------
    pandas.DataFrame
        The sample table, shape ``(n_samples, 9 + n_extras)``, index reset.

    Raises
    ------
    ConfigError
        Unknown corpus name.
    DataError
        Bad corpus files, or no sample left after the emotion filter.
    """
    import mmfer.data  # noqa: F401  (registers every loader)
    from mmfer.registry import CORPORA

    loader = CORPORA.get(name)
    params = inspect.signature(loader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY]
        for key in options:
            if key not in valid:
                raise ConfigError(
                    f"data.options: {name} has no option {key!r}; valid: {', '.join(valid) or 'none'}"
                )
    table = loader(root, **options) if root is not None else loader(**options)
    keep = [canonical_emotion(e, source="data.emotions") for e in emotions]
    if keep:
        table = table[table["emotion"].isin(keep)].reset_index(drop=True)
        if table.empty:
            raise DataError(root, f"no {name} sample has one of the emotions {keep}")
    return table


def corpus_root(root: str | Path, corpus: str) -> Path:
    """Resolve a corpus folder, failing clearly when it is absent.

    Raises
    ------
    DataError
        The folder does not exist or is a file.
    """
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise DataError(path, f"{corpus} corpus folder does not exist")
    if not path.is_dir():
        raise DataError(path, f"{corpus} corpus root must be a folder, got a file")
    return path


def check_readable(path: Path) -> Path:
    """Return ``path`` if it is a file this process may read, else raise.

    Raises
    ------
    DataError
        Missing file, broken symbolic link, folder, or no read permission.
    """
    if not path.is_file():
        why = "is a broken symbolic link" if path.is_symlink() else "is not a readable file"
        raise DataError(path, f"{why}; the corpus lists it as a sample")
    if not os.access(path, os.R_OK):
        raise DataError(path, "cannot be read (no read permission)")
    return path


def walk_files(folder: Path, suffixes: Iterable[str], *, recursive: bool = True) -> Iterator[Path]:
    """Yield files under ``folder`` with one of ``suffixes`` (case-insensitive), sorted.

    Hidden entries (``.DS_Store``, macOS ``._*`` forks) are skipped. Broken
    links are yielded so that :func:`check_readable` can report them.
    """
    wanted = tuple(s.lower() for s in suffixes)
    entries = folder.rglob("*") if recursive else folder.iterdir()
    for p in sorted(entries):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in wanted and not p.is_dir():
            yield p


def image_files(folder: Path) -> list[Path]:
    """Images directly inside ``folder``, sorted by name (frame order)."""
    return list(walk_files(folder, IMAGE_SUFFIXES, recursive=False))


def read_text(path: Path) -> str:
    """Read a UTF-8 text file (BOM tolerated).

    Raises
    ------
    DataError
        The file is missing, unreadable or not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(path, f"cannot be read: {e.strerror or e}") from None


class Records:
    """Sample records keyed by id, rejecting a second sample with the same id.

    :func:`mmfer.data.table.make_table` also rejects duplicates, but only
    here are both source files known, so both go into the message.
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._sources: dict[str, Path] = {}

    def add(self, record: Mapping[str, Any], source: Path) -> None:
        """Add one record (must carry ``id``) read from ``source``."""
        sid = str(record["id"])
        if sid in self._rows:
            raise DataError(source, f"duplicate sample id {sid!r}: also given by {self._sources[sid]}")
        self._rows[sid] = dict(record)
        self._sources[sid] = source

    def get(self, sid: str) -> dict[str, Any] | None:
        """The record with id ``sid`` (mutable), or ``None``."""
        return self._rows.get(sid)

    def values(self) -> list[dict[str, Any]]:
        """All records, in insertion order."""
        return list(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)
