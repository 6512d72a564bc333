"""Helpers shared by the corpus loaders, and :func:`load_corpus`.

Every loader (``savee``, ``ravdess``, ``ckplus``, ``cremad``, ``tess``,
``manifest``) lives in its own module of :mod:`mmfer.data`
and registers itself in :data:`mmfer.registry.CORPORA`; importing
:mod:`mmfer.data` registers them all. The generated demo corpus ``synthetic``
lives in :mod:`mmfer.demo` and is imported by the registry on first use. Loaders only list files and parse
names/labels: they never decode media, but they do check each file cheaply
(exists, readable, not empty, not a Git LFS pointer) so that a bad file is
reported at ``prepare`` with its path rather than hours later inside feature
extraction.

Every file a loader does not take is recorded in a :class:`Skipped` with the
reason; :func:`finish_table` logs one summary line (every file at DEBUG, i.e.
with ``mmfer -v``) and keeps the list in ``table.attrs["skipped"]`` (see
:func:`skipped_files`). Folders and files reached through symbolic links are
followed.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mmfer.emotions import canonical_emotion
from mmfer.errors import ConfigError, DataError
from mmfer.io import LFS_PROBLEM, is_lfs_pointer

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
        Loader-specific options (e.g. ``merge=False`` for RAVDESS), plus
        ``exclude_speakers`` (every corpus): speaker ids to drop, e.g. ``["05"]``
        (a bare number is read as a zero-padded code of the same width as the
        corpus's ids, since YAML turns ``05`` into ``5``).

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
    # Every loader is registered by now: importing this module ran mmfer/data/__init__.py,
    # which imports each loader module (and they register themselves).
    from mmfer.registry import CORPORA

    loader = CORPORA.get(name)
    options = dict(options)
    exclude = options.pop("exclude_speakers", None) or []
    params = inspect.signature(loader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY]
        for key in options:
            if key not in valid:
                raise ConfigError(
                    f"data.options: {name} has no option {key!r}; valid: {', '.join(valid) or 'none'}"
                )
    table = loader(root, **options) if root is not None else loader(**options)
    if exclude:
        table = _drop_speakers(table, exclude, name)
    keep = [canonical_emotion(e, source="data.emotions") for e in emotions]
    if keep:
        table = table[table["emotion"].isin(keep)].reset_index(drop=True)
        if table.empty:
            raise DataError(root, f"no {name} sample has one of the emotions {keep}")
    return table


def _drop_speakers(table: pd.DataFrame, exclude: Iterable[Any], corpus: str) -> pd.DataFrame:
    """``table`` without the rows of the speakers in ``exclude`` (``data.options.exclude_speakers``).

    Raises
    ------
    ConfigError
        A speaker to exclude is not in the corpus (a typo must not silently keep them).
    """
    if isinstance(exclude, (str, int)):
        exclude = [exclude]
    speakers = set(table["speaker"].astype(str))
    width = max((len(s) for s in speakers), default=0)
    drop: set[str] = set()
    for s in exclude:
        # YAML reads 05 as the integer 5: pad it back to the corpus's zero-padded width
        key = str(s).zfill(width) if isinstance(s, int) or str(s).isdigit() else str(s)
        if key not in speakers and str(s) not in speakers:
            raise ConfigError(
                f"data.options.exclude_speakers: {corpus} has no speaker {s!r} "
                f"(speakers: {', '.join(sorted(speakers)[:12])}{' ...' if len(speakers) > 12 else ''})"
            )
        drop.add(key if key in speakers else str(s))
    attrs = dict(table.attrs)
    out = table[~table["speaker"].astype(str).isin(drop)].reset_index(drop=True)
    out.attrs.update(attrs)
    out.attrs["excluded_speakers"] = sorted(drop)
    log.info("%s: speakers %s excluded (%d samples left)", corpus, ", ".join(sorted(drop)), len(out))
    return out


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

    Symbolic links to folders and files are followed (a corpus assembled
    from per-speaker links is common); a link cycle is entered once. Hidden
    entries (``.DS_Store``, macOS ``._*`` forks, ``.git``) are skipped. Broken
    links are yielded so that :func:`check_readable` can report them.
    """
    wanted = tuple(s.lower() for s in suffixes)
    found: list[Path] = []
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link back to an ancestor (or a second link to one folder)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        here = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in wanted:
                continue
            found.append(here / name)
    # os.walk lists a broken link to a folder among the files; it has no suffix, so it
    # can only be reported by the loader that expects a folder there.
    yield from sorted(found)


def symlinks_under(folder: Path) -> list[Path]:
    """Symbolic links directly in ``folder`` or one level below (for hints in empty-corpus errors)."""
    out: list[Path] = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_symlink():
            out.append(p)
        elif p.is_dir():
            out.extend(q for q in sorted(p.iterdir()) if q.is_symlink())
    return out


def image_files(folder: Path) -> list[Path]:
    """Images directly inside ``folder``, sorted by name (frame order)."""
    return list(walk_files(folder, IMAGE_SUFFIXES, recursive=False))


def problem_with(path: Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be a sample, as ``(kind, detail)``, or ``None`` if it is usable.

    Cheap checks only (no decoding): broken link, not a file, no read
    permission, empty file, Git LFS pointer (first bytes of a small file).
    """
    if not path.is_file():
        if path.is_symlink():
            return "broken symbolic link", f"points to {os.readlink(path)}, which does not exist"
        return "not a readable file", "missing or not a regular file"
    if not os.access(path, os.R_OK):
        return "unreadable", "no read permission"
    try:
        size = path.stat().st_size
    except OSError as e:
        return "unreadable", e.strerror or str(e)
    if size == 0:
        return "empty file", "0 bytes"
    if is_lfs_pointer(path):
        return "Git LFS pointer", LFS_PROBLEM
    return None


class Skipped:
    """Files a loader did not take, each with why; logged as one summary line.

    Parameters
    ----------
    corpus
        Corpus name for the messages (``"TESS"``).
    """

    def __init__(self, corpus: str) -> None:
        self.corpus = corpus
        self.items: list[tuple[Path, str, str]] = []  # (path, kind, detail)

    def add(self, path: Path, kind: str, detail: str = "") -> None:
        """Record that ``path`` was not taken: ``kind`` groups files in the summary."""
        self.items.append((path, kind, detail))
        log.debug("%s: not taken: %s: %s%s", self.corpus, path, kind, f" ({detail})" if detail else "")

    def usable(self, path: Path) -> bool:
        """``True`` if ``path`` passes :func:`problem_with`; otherwise record why and return ``False``."""
        problem = problem_with(path)
        if problem is None:
            return True
        self.add(path, *problem)
        return False

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Number of files per kind, most frequent first."""
        out: dict[str, int] = {}
        for _, kind, _ in self.items:
            out[kind] = out.get(kind, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def summary(self, taken: int) -> str:
        """``"TESS: 2799 files taken, 1 not taken (1 not a TESS name: .../OA_bite.wav)"``."""
        parts = []
        for kind, n in self.counts().items():
            example, detail = next((p, d) for p, k, d in self.items if k == kind)
            more = f", e.g. {example}" if n > 1 else f": {example}"
            if detail and kind != "Git LFS pointer":  # the LFS fix is stated once, below
                more += f" [{detail}]"
            parts.append(f"{n} {kind}{more}")
        text = f"{self.corpus}: {taken} files taken, {len(self)} not taken ({'; '.join(parts)})"
        if any(k == "Git LFS pointer" for _, k, _ in self.items):
            text += (
                "; Git LFS pointers are placeholders for the media:"
                " run `git lfs install && git lfs pull` in the corpus repository"
            )
        return text + "; run with -v to list every file"

    def records(self) -> list[dict[str, str]]:
        """One dict per file: ``path``, ``reason`` (for ``table.attrs`` and reports)."""
        return [
            {"path": str(p), "reason": f"{kind}: {detail}" if detail else kind}
            for p, kind, detail in self.items
        ]


def finish_table(
    records: Iterable[Mapping[str, Any]],
    *,
    corpus: str,
    name: str,
    root: Path,
    skipped: Skipped,
    taken: int | None = None,
) -> pd.DataFrame:
    """Build the sample table, log what was not taken, and keep that list in ``attrs``.

    Parameters
    ----------
    records
        Sample records (see :func:`mmfer.data.table.make_table`).
    corpus
        Registered corpus name (``"tess"``), stored in the table.
    name
        Display name (``"TESS"``).
    root
        Corpus folder, named in errors.
    skipped
        Files not taken.
    taken
        Number of files taken (default: number of records).

    Returns
    -------
    pandas.DataFrame
        The sample table; ``table.attrs["skipped"]`` lists ``{"path", "reason"}``.

    Raises
    ------
    DataError
        No sample at all: the message says how many files were seen and why
        none was taken (or hints at the expected layout when none was seen).
    """
    from mmfer.data.table import make_table

    rows = list(records)
    n_taken = len(rows) if taken is None else taken
    if not rows:
        if skipped:
            raise DataError(root, f"empty corpus: no {name} sample taken. {skipped.summary(0)}")
        hint = f"no {name} media file found under it; see docs/corpora.md for the expected layout"
        links = symlinks_under(root)
        if links:
            hint += f" ({len(links)} symbolic link(s) seen, e.g. {links[0]}: check that they resolve)"
        raise DataError(root, f"empty corpus: {hint}")
    if skipped:
        log.warning("%s", skipped.summary(n_taken))
    table = make_table(rows, corpus=corpus, root=root)
    table.attrs["skipped"] = skipped.records()
    return table


def skipped_files(table: pd.DataFrame) -> list[dict[str, str]]:
    """Files the loader saw but did not take (``path``, ``reason``); empty if none or unknown.

    The list lives in ``table.attrs``, so it is lost when a table is read back
    from CSV; call this on the table returned by :func:`load_corpus`.
    """
    return list(table.attrs.get("skipped", []))


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


def read_jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSON-lines file's ``text``.

    Raises
    ------
    DataError
        Naming ``path`` and the line: not valid JSON, or not a JSON object.
    """
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, f"line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(path, f"line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows


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
