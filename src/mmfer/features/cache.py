"""Content-addressed on-disk feature cache: one atomically written ``.npz`` per unit.

A unit is one (extractor config, input content) pair. Its key hashes the
extractor namespace, the canonical JSON of its config and the SHA-256 of the
input file's bytes, so renaming a file keeps its entry and editing a file or
changing the extractor config makes a new one. Entries are written with
:func:`mmfer.io.atomic_write`, so a killed run leaves only complete entries
(plus, at worst, a stray ``.tmp`` file that is never read).

Failures are cached too: an entry may record that a file is corrupt or has no
usable signal, so bad files are not decoded again on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.errors import FeatureError, ModalityMissing
from mmfer.io import atomic_write

log = logging.getLogger(__name__)

_META = "__meta__"
_CHUNK = 1 << 20
# In-process memo of file digests: (resolved path, size, mtime_ns) -> sha256 hex.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) of a config mapping."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def file_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes, or of a folder's files (names + contents).

    Streams in 1 MiB chunks; memoised in-process by ``(path, size, mtime_ns)``
    so a table is hashed once per run even when several modalities read one file.

    Raises
    ------
    FeatureError
        The path does not exist or cannot be read.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise FeatureError(p, f"cannot read input: {e.strerror or e}") from None
    if p.is_dir():
        # A frames folder: hash sorted relative names and each file's digest.
        h = hashlib.sha256(b"dir\0")
        files = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        for q in files:
            h.update(q.relative_to(p).as_posix().encode("utf-8") + b"\0")
            h.update(file_digest(q).encode("ascii"))
        return h.hexdigest()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        hit = _DIGESTS.get(memo_key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise FeatureError(p, f"cannot read input: {e.strerror or e}") from None
    digest = h.hexdigest()
    with _DIGESTS_LOCK:
        _DIGESTS[memo_key] = digest
    return digest


@dataclass
class CacheEntry:
    """One stored unit: arrays (empty for a cached failure) and metadata."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> FeatureError | None:
        """The cached failure re-created as an exception, or ``None`` for a success."""
        err = self.meta.get("error")
        if not err:
            return None
        cls = ModalityMissing if err.get("kind") == "missing" else FeatureError
        return cls(err.get("path"), str(err.get("problem", "unknown problem")))


class FeatureCache:
    """Feature cache rooted at a folder (created on first write).

    Parameters
    ----------
    root
        Folder holding ``<key[:2]>/<key>.npz`` entries.

    Examples
    --------
    >>> cache = FeatureCache(tmp)  # doctest: +SKIP
    >>> k = cache.key("audio", {"n_mfcc": 40}, "clip.wav")  # doctest: +SKIP
    >>> cache.get(k) or cache.put(k, {"audio": feats}, {"source": "clip.wav"})  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def key(namespace: str, config: dict[str, Any], path: str | Path) -> str:
        """SHA-256 of ``(namespace, canonical JSON config, file content digest)``.

        Raises
        ------
        FeatureError
            ``path`` does not exist or cannot be read.
        """
        return FeatureCache._key(namespace, config, "file:" + file_digest(path))

    @staticmethod
    def key_text(namespace: str, config: dict[str, Any], text: str) -> str:
        """Like :meth:`key` for an inline string (e.g. a transcript held in the table)."""
        return FeatureCache._key(
            namespace, config, "text:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
        )

    @staticmethod
    def _key(namespace: str, config: dict[str, Any], content: str) -> str:
        h = hashlib.sha256()
        for part in (namespace, canonical_json(config), content):
            h.update(part.encode("utf-8"))
            h.update(b"\0")  # separator: ("ab", "c") and ("a", "bc") must differ
        return h.hexdigest()

    def path_for(self, key: str) -> Path:
        """File holding the entry of ``key``."""
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"invalid cache key {key!r}: expected a sha256 hex digest")
        return self.root / key[:2] / f"{key}.npz"

    # ------------------------------------------------------------------ read
    def load(self, key: str) -> CacheEntry | None:
        """The full entry of ``key`` (arrays + metadata), or ``None`` if absent.

        A corrupt or partial entry is removed with a warning and reported absent.
        """
        p = self.path_for(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            meta = json.loads(str(arrays.pop(_META)))
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a mapping")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            warnings.warn(f"{p}: corrupt feature cache entry removed ({type(e).__name__}: {e})", stacklevel=2)
            log.warning("%s: corrupt feature cache entry removed (%s)", p, e)
            p.unlink(missing_ok=True)
            return None
        return CacheEntry(arrays=arrays, meta=meta)

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``key``, or ``None`` when not cached (or corrupt, then removed).

        Raises
        ------
        ModalityMissing, FeatureError
            The entry records a failure (same class, path and message as the original).
        """
        entry = self.load(key)
        if entry is None:
            return None
        err = entry.error
        if err is not None:
            raise err
        return entry.arrays

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.path_for(key).is_file()

    def keys(self) -> list[str]:
        """Keys of all complete entries on disk (temporary files are ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.npz") if not p.name.startswith("."))

    # ------------------------------------------------------------------ write
    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> Path:
        """Store ``arrays`` (+ JSON-able ``meta``) under ``key`` atomically.

        Returns
        -------
        pathlib.Path
            The entry's file.
        """
        for name in arrays:
            if name.startswith("__"):
                raise ValueError(f"array name {name!r} is reserved (starts with '__')")
        payload = {name: np.asarray(a) for name, a in arrays.items()}
        for name, a in payload.items():
            if a.dtype == object:
                raise ValueError(f"array {name!r} has dtype object; the cache stores no pickles")
        payload[_META] = np.asarray(canonical_json(dict(meta or {})))

        def write(tmp: Path) -> None:
            # A file handle, not a name: np.savez would otherwise append ".npz" to the temp name.
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)

        return atomic_write(self.path_for(key), write)

    def put_error(self, key: str, error: FeatureError, meta: dict[str, Any] | None = None) -> Path:
        """Record that ``key``'s input failed (``ModalityMissing`` or ``FeatureError``).

        :meth:`get` then re-raises it instead of extracting again; the key changes,
        and the file is retried, when the input or the extractor config changes.
        """
        kind = "missing" if isinstance(error, ModalityMissing) else "failed"
        info = {
            "kind": kind,
            "path": None if error.path is None else os.fspath(error.path),
            "problem": error.problem,
        }
        return self.put(key, {}, {**dict(meta or {}), "error": info})
