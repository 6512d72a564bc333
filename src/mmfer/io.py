"""Atomic file writes: nothing half-written survives a kill."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the
    complete new one, never a truncated file. The file gets the mode a plain
    ``open(path, "w")`` would give it (``0o666 & ~umask``, 0644 usually), even
    when ``write`` replaces the temporary file (``safetensors.save_file`` does).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path)
    # os.open applied the umask; remember the result rather than calling os.umask(),
    # which would briefly change the process-wide umask under other threads
    mode = stat.S_IMODE(tmp_path.stat().st_mode)
    try:
        write(tmp_path)
        if stat.S_IMODE(tmp_path.stat().st_mode) != mode:
            os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def _create_temp(path: Path) -> Path:
    """Create an empty, uniquely named temporary file beside ``path`` (mode ``0o666 & ~umask``).

    Unlike :func:`tempfile.mkstemp` (always 0600) this respects the umask, so
    checkpoints and reports are readable by the group/others as usual.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


#: First bytes of a Git LFS pointer file (what a clone without git-lfs holds instead of the media).
LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
#: Pointer files are ~130 bytes; anything larger is real content.
LFS_MAX_SIZE = 1024
#: The problem stated for a pointer file, with the fix.
LFS_PROBLEM = (
    "is a Git LFS pointer, not the media itself (the corpus was cloned without git-lfs): "
    "run `git lfs install && git lfs pull` in the corpus repository"
)


def is_lfs_pointer(path: str | Path) -> bool:
    """Whether ``path`` is a Git LFS pointer file (cheap: size check, then the first bytes).

    Folders, missing and unreadable files are not pointers (``False``).
    """
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size > LFS_MAX_SIZE:
            return False
        with open(p, "rb") as fh:
            return fh.read(len(LFS_MAGIC)) == LFS_MAGIC
    except OSError:
        return False
