"""Closed-set scoring of a cross-corpus fold (protocols with ``closed_set``, i.e. ``loco``).

A model fitted on other corpora knows the union of their labels, the target corpus has
its own label set (RAVDESS has calm and surprised, CREMA-D has neither). Cross-corpus work
(EmoBox and most of its predecessors) scores such a fold *closed set*: the target's label
set is part of the task definition, so

* the probability columns of labels the target does not have are removed before argmax
  (:func:`closed_set_predict`), and only labels the training rows have can be predicted;
* a test row whose label no training row has cannot be right and is not scored; the fold's
  metrics say how many were left out (``unscored_unknown_label``);
* the fold's metrics are over the scored target labels only (:func:`fold_metrics`): a
  macro average over 8 classes of which 2 can never occur would be meaningless.

Within-corpus protocols are untouched: knowing which labels a test fold holds would be
test information there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mmfer.data.splits import is_closed_set

if TYPE_CHECKING:
    from mmfer.folds import CVSetup
    from mmfer.recognizer import Recognizer

__all__ = ["closed_set_predict", "fold_metrics"]


def closed_set_predict(
    setup: CVSetup, rec: Recognizer, test_idx: np.ndarray, scored: np.ndarray, proba: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of ``proba`` and the rows to score, closed set under a closed-set protocol.

    Parameters
    ----------
    setup
        The fold context (labels ``setup.labels``, table, protocol).
    rec
        The fold's fitted recognizer; its Fuser's ``fitted_on_`` ids give the training labels.
    test_idx
        ``(m,)`` the fold's test rows (the whole target corpus under ``loco``).
    scored
        ``(n,)`` the rows predicted (``test_idx`` minus enrolment rows), order of ``proba``.
    proba
        ``(n, C)`` class probabilities, columns in ``setup.labels`` order.

    Returns
    -------
    tuple
        ``(scored (n',), pred (n',))``: the rows kept (those whose label a training row
        has; all of them outside closed-set protocols) and their predicted class indices,
        each one a label of the target that training had.
    """
    if not is_closed_set(setup.protocol):
        return scored, proba.argmax(axis=1)
    y = setup.y
    ids = setup.ids
    trained = set(y[np.isin(ids, list(rec.fuser.fitted_on_))].tolist())  # label indices seen in training
    target = set(y[np.asarray(test_idx)].tolist())
    allowed = np.array(sorted(target & trained), dtype=np.int64)  # (K,)
    keep = np.isin(y[scored], allowed)  # (n,) a label training never had cannot be scored
    masked = np.full_like(proba, -np.inf)
    masked[:, allowed] = proba[:, allowed]  # other columns can never win the argmax
    return scored[keep], masked[keep].argmax(axis=1)


def fold_metrics(
    setup: CVSetup, test_idx: np.ndarray, scored: np.ndarray, enrol: np.ndarray, pred: np.ndarray
) -> dict[str, Any]:
    """The fold's :func:`~mmfer.evaluation.metrics.classification_metrics`.

    Over every label of ``setup.labels``; under a closed-set protocol over the scored
    target labels only, plus ``unscored_unknown_label`` (test rows left out because no
    training row has their label), ``scored_labels`` (their names), ``test_corpus`` and
    ``train_corpora`` (every corpus of the table not tested: the loco training side).
    """
    from mmfer.evaluation.metrics import classification_metrics

    y = setup.y[scored]
    if not is_closed_set(setup.protocol):
        return classification_metrics(y, pred, labels=list(range(len(setup.labels))), names=setup.labels)
    labels = sorted(set(y.tolist()) | set(np.asarray(pred).tolist()))
    metrics = classification_metrics(y, pred, labels=labels, names=[setup.labels[i] for i in labels])
    metrics["unscored_unknown_label"] = int(len(test_idx) - len(enrol) - len(scored))
    metrics["scored_labels"] = [setup.labels[i] for i in labels]
    if "corpus" in setup.table.columns:
        # which corpus was tested, which trained on: a report reads them back from the run
        corpus = setup.table["corpus"].astype(str).to_numpy()
        tested = sorted(set(corpus[np.asarray(test_idx)].tolist()))
        metrics["test_corpus"] = "+".join(tested)
        metrics["train_corpora"] = sorted(set(corpus.tolist()) - set(tested))
    return metrics
