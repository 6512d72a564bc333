"""Dialogue context of utterance-level samples (MELD): the earlier utterances of each dialogue.

:func:`attach_dialogue_context` gives every sample of a table with ``dialogue`` and
``utterance`` columns references to the sentence embeddings of the utterances
*before* it in the same dialogue (same official split, ordered by utterance id),
with a same-speaker flag each. Nothing is copied (the tuples hold the arrays of
the other samples) and nothing is labelled: the fuser's ``text.context`` pools them
(:mod:`mmfer.features.words.text_view`). Later utterances and other dialogues are never used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CONTEXT_MAX", "attach_dialogue_context", "previous_rows"]

#: Earlier utterances kept per sample (the largest ``text.context`` that can have an effect).
CONTEXT_MAX = 12


def previous_rows(table: pd.DataFrame, k_max: int = CONTEXT_MAX) -> list[list[int]]:
    """Positional rows of the up to ``k_max`` utterances before each row, oldest first.

    Dialogues are keyed by ``(split, dialogue)`` (``split`` when the table has it), so
    the same dialogue number in two splits is two dialogues. Returns ``[]`` per row for a
    table without ``dialogue``/``utterance`` columns.
    """
    n = len(table)
    if not {"dialogue", "utterance"} <= set(table.columns):
        return [[] for _ in range(n)]
    split = table["split"].astype(str).to_numpy() if "split" in table.columns else np.full(n, "")
    dia = table["dialogue"].astype(int).to_numpy()
    utt = table["utterance"].astype(int).to_numpy()
    out: list[list[int]] = [[] for _ in range(n)]
    groups: dict[tuple[str, int], list[int]] = {}
    for i in range(n):
        groups.setdefault((str(split[i]), int(dia[i])), []).append(i)
    for rows in groups.values():
        rows.sort(key=lambda r: int(utt[r]))
        for j, r in enumerate(rows):
            out[r] = rows[max(0, j - k_max) : j]
    return out


def attach_dialogue_context(table: pd.DataFrame, feats: dict[str, Any], k_max: int = CONTEXT_MAX) -> int:
    """Set ``text_ctx`` (tuple of earlier embeddings) and ``text_ctx_same`` ``(K,)`` on each sample.

    Earlier utterances without an embedding are skipped. Returns the number of samples
    that got at least one earlier utterance (0 for a table that is not a dialogue corpus).
    """
    ids = table["id"].astype(str).to_numpy()
    speakers = table["speaker"].astype(str).to_numpy()
    count = 0
    for i, prev in enumerate(previous_rows(table, k_max)):
        f = feats.get(ids[i])
        if f is None:
            continue
        kept = [p for p in prev if getattr(feats.get(ids[p]), "text_emb", None) is not None]
        f.text_ctx = tuple(feats[ids[p]].text_emb for p in kept)
        f.text_ctx_same = np.array([speakers[p] == speakers[i] for p in kept], dtype=bool)
        count += bool(kept)
    return count
