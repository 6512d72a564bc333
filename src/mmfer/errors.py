"""Exceptions raised by mmfer.

Every error about user input names the offending file (or config key) and the
problem, so a failure deep inside a corpus of thousands of clips can be traced
to one file without a debugger.
"""

from __future__ import annotations

from pathlib import Path


class MmferError(Exception):
    """Base class of every error mmfer raises on purpose."""


class ConfigError(MmferError, ValueError):
    """A configuration value, key or component name is invalid."""


class DataError(MmferError):
    """A corpus file or folder is missing, unreadable or inconsistent.

    Parameters
    ----------
    path
        The file or folder at fault.
    problem
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}")


class FeatureError(DataError):
    """A feature could not be extracted from one input file."""


class ModalityMissing(FeatureError):
    """The input has no usable signal for one modality (masked, not fatal)."""
