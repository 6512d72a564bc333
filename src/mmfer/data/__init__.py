"""Corpora as sample tables, and cross-validation protocols over them.

Importing this package registers every corpus loader in
:data:`mmfer.registry.CORPORA` and every protocol in
:data:`mmfer.registry.SPLITTERS`. The generated demo corpus ``synthetic`` lives
in :mod:`mmfer.demo` (the registry imports it on first use; this package never does).
"""

from __future__ import annotations

from mmfer.data import ckplus, cremad, manifest, meld, ravdess, savee, splits, tess
from mmfer.data.corpora import load_corpus
from mmfer.data.splits import describe_protocol, group_holdout, is_speaker_independent, make_splits
from mmfer.data.table import COLUMNS, make_table, read_table, validate_table, write_table

__all__ = [
    "COLUMNS",
    "ckplus",
    "cremad",
    "describe_protocol",
    "group_holdout",
    "is_speaker_independent",
    "load_corpus",
    "make_splits",
    "make_table",
    "manifest",
    "meld",
    "ravdess",
    "read_table",
    "savee",
    "splits",
    "tess",
    "validate_table",
    "write_table",
]
