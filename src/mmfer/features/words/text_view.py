"""The fuser's view of a sentence embedding: which cached layers, and the dialogue context.

Features keep every hidden state the config extracted (``text.embedding_layers``, e.g.
all seven of MiniLM: each mean-pooled, L2-normalised, concatenated and scaled by
``1/sqrt(n)``) and, for dialogue corpora, references to the embeddings of the
previous utterances of the same dialogue (:mod:`mmfer.features.words.dialogue`).
The text block then applies two *fuser* settings, so nested selection can search
them on the inner validation rows without extracting anything again:

* ``text.layers``: the layers used (a subset of ``embedding_layers``), each block
  re-normalised to unit norm, concatenated and scaled by ``1/sqrt(len(layers))``;
* ``text.context = k``: beside the utterance's vector, the mean vector of its
  previous ``k`` utterances spoken by the *same* speaker and the mean of those by
  *other* speakers (zeros when there are none), i.e. a ``3 x`` wider block. Only
  earlier utterances of the same dialogue are used, never later ones or other
  dialogues, and never a label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmfer.config import TextConfig
from mmfer.errors import ConfigError

__all__ = ["context_steps", "pick_layers", "text_sequence", "text_vector"]


def context_steps(cfg: TextConfig) -> int:
    """Time steps the text block needs: ``context + 1`` in steps mode, else 0 (any)."""
    return int(cfg.context) + 1 if cfg.context_steps and cfg.context > 0 else 0


def pick_layers(emb: np.ndarray, cfg: TextConfig) -> np.ndarray:
    """The ``text.layers`` view of one extracted embedding ``(n_extracted * H,)`` -> ``(len(layers) * H,)``.

    Raises
    ------
    ConfigError
        ``text.layers`` set without a multi-layer extraction, or naming a layer that
        was not extracted.
    """
    e = np.asarray(emb, dtype=np.float32).reshape(-1)
    if not cfg.layers:
        return e
    extracted = [int(i) for i in cfg.embedding_layers]
    missing = [i for i in cfg.layers if i not in extracted]
    if not extracted or missing:
        raise ConfigError(
            f"text.layers={list(cfg.layers)}: layers {missing or list(cfg.layers)} were not extracted "
            f"(text.embedding_layers={extracted})"
        )
    blocks = e.reshape(len(extracted), -1)[[extracted.index(int(i)) for i in cfg.layers]]  # (n, H)
    norms = np.linalg.norm(blocks, axis=1, keepdims=True)
    blocks = blocks / np.maximum(norms, np.float32(1e-12))
    return (blocks.reshape(-1) / np.sqrt(len(cfg.layers))).astype(np.float32)


def text_vector(f: Any, cfg: TextConfig) -> np.ndarray | None:
    """The embedding part of one sample's text block (``None`` when it has no embedding).

    ``(D,)`` without context, ``(3 D,)`` with ``text.context > 0``: the utterance, the mean
    of its previous ``k`` same-speaker utterances, the mean of its previous ``k`` utterances
    by others (``f.text_ctx``: tuple of earlier embeddings, oldest first; ``f.text_ctx_same``:
    ``(K,)`` bool, same speaker as the sample).
    """
    e = getattr(f, "text_emb", None)
    if e is None:
        return None
    cur = pick_layers(e, cfg)  # (D,)
    k = int(cfg.context)
    if k < 0:
        raise ConfigError(f"text.context must be >= 0, got {k}")
    if context_steps(cfg):
        return np.append(cur, np.float32(1.0))  # (D + 1,): the last step of text_sequence
    if k == 0:
        return cur
    d = cur.shape[0]
    out = np.zeros(3 * d, dtype=np.float32)  # (3 D,)
    out[:d] = cur
    prev = tuple(getattr(f, "text_ctx", None) or ())[-k:]
    if prev:
        same = np.asarray(getattr(f, "text_ctx_same", ()), dtype=bool)[-k:]  # (k',)
        vecs = np.stack([pick_layers(p, cfg) for p in prev])  # (k', D)
        if same.any():
            out[d : 2 * d] = vecs[same].mean(axis=0)
        if (~same).any():
            out[2 * d :] = vecs[~same].mean(axis=0)
    return out


def text_sequence(f: Any, cfg: TextConfig) -> np.ndarray | None:
    """Steps mode (``text.context_steps``): ``(k' + 1, D + 1)`` rows, the up to ``k`` earlier
    utterances of the dialogue (oldest first) then the sample's own, each its ``text.layers``
    view plus a flag = 1 when said by the sample's speaker (the last row's flag is 1)."""
    cur = text_vector(f, cfg)
    if cur is None:
        return None
    k = int(cfg.context)
    prev = tuple(getattr(f, "text_ctx", None) or ())[-k:] if k > 0 else ()
    same = np.asarray(getattr(f, "text_ctx_same", ()), dtype=np.float32)[-k:] if prev else np.zeros(0)
    rows = [np.append(pick_layers(p, cfg), np.float32(s)) for p, s in zip(prev, same, strict=True)]
    return np.stack([*rows, cur]).astype(np.float32)
