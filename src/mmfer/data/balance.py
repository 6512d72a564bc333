"""Corpus-balanced training rows (``data.corpus_balance: balanced``).

When one training fold joins corpora of very different sizes (7442 CREMA-D clips beside
1440 RAVDESS clips), every estimator mostly learns the big corpus's recording conditions.
:func:`balanced_rows` repeats the rows of the smaller training corpora a whole number of
times so that every corpus contributes about as many rows as the largest: integer repeats
are deterministic (no sampling seed to record) and work with every estimator, neural or
not, without a sample-weight API. The repeats only change how often a row is seen:
:func:`mmfer.pipeline.fit_rows` still records each component's *distinct* ids for the
leakage audit (the fitted-on sets are sets of ids).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["balanced_rows", "pretrain_flags", "repeat_factors"]


def repeat_factors(counts: dict[str, int]) -> dict[str, int]:
    """Whole repeat factor per corpus: ``round(max count / count)``, at least 1.

    Parameters
    ----------
    counts
        ``{corpus: training rows}`` (positive counts).

    Returns
    -------
    dict[str, int]
        ``{corpus: factor}``; the largest corpus gets 1, e.g. ``{"cremad": 7442,
        "ravdess": 1440}`` -> ``{"cremad": 1, "ravdess": 5}`` (7200 vs 7442 rows).
    """
    if not counts:
        return {}
    top = max(counts.values())
    return {c: max(1, round(top / n)) for c, n in counts.items() if n > 0}


def balanced_rows(table: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """``rows`` with the rows of smaller corpora repeated when the table asks for it.

    Parameters
    ----------
    table
        Sample table; balancing is on when ``table.attrs["corpus_balance"] == "balanced"``
        (set from ``data.corpus_balance`` by :func:`mmfer.data.multi.load_tables`).
    rows
        ``(n,)`` positional indices of the training rows.

    Returns
    -------
    numpy.ndarray
        ``(n',)`` int64 positional indices, ``n' >= n``: ``rows`` itself when balancing is
        off or the rows come from one corpus; else every row repeated its corpus's
        :func:`repeat_factors` times, in place (each row's copies next to each other), so
        the result does not depend on anything but ``rows``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if table.attrs.get("corpus_balance", "none") != "balanced" or "corpus" not in table.columns:
        return rows
    corpus = table["corpus"].astype(str).to_numpy()[rows]  # (n,)
    names, counts = np.unique(corpus, return_counts=True)
    if len(names) < 2:
        return rows
    factors = repeat_factors(dict(zip(names.tolist(), counts.tolist(), strict=True)))
    return np.repeat(rows, [factors[c] for c in corpus]).astype(np.int64)


def pretrain_flags(table: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    """Which fitted rows come from a train-only corpus (``data.extra_train``).

    What ``train.pretrain_epochs`` pretrains on (:class:`mmfer.estimators.neural.NeuralEstimator`).

    Parameters
    ----------
    table
        Sample table (column ``train_only``, :func:`mmfer.data.splits.train_only_mask`).
    ids
        ``(n,)`` ids of the rows about to be fitted; augmented copies (``<id>#aug<k>``)
        take the flag of the sample they were made from.

    Returns
    -------
    numpy.ndarray or None
        ``(n,)`` bool, or None when the table has no train-only rows.
    """
    from mmfer.data.splits import train_only_mask
    from mmfer.evaluation.audit import source_id

    mask = train_only_mask(table)
    if not mask.any():
        return None
    flag = dict(zip(table["id"].astype(str), mask, strict=True))
    return np.array([bool(flag[source_id(str(i))]) for i in ids], dtype=bool)
