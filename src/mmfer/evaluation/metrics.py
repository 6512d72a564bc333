"""Classification metrics of the paper (eqs. 12-16), computed honestly for many classes.

The paper writes every metric for one class against the rest (TP, TN, FP, FN),
without saying how the per-class numbers are combined. We report:

- ``accuracy``: the overall fraction of samples classified correctly,
  ``trace(C) / N``. This is **not** eq. 12 applied per class: eq. 12 one-vs-rest,
  ``(TP + TN) / N`` of one class, counts every correctly *rejected* sample of
  the other classes as a success, so with 7 balanced classes a classifier that
  is always wrong still scores about 71 % on it. That per-class number is kept
  as ``per_class[label]["accuracy_ovr"]`` for comparison, never as "accuracy".
- Per class, one-vs-rest: PPV (eq. 13), specificity (eq. 14), sensitivity
  (eq. 15), MCC (eq. 16).
- ``macro``: the unweighted mean of each one-vs-rest metric over the classes
  present in ``y_true`` (a class that never occurs in the test fold has no
  defined sensitivity, so it is left out of every macro mean; its row stays in
  ``per_class``).
- ``uar``: unweighted average recall (balanced accuracy), the mean of the
  per-class recalls over the classes present in ``y_true``; on imbalanced data
  it differs from accuracy, which weights each class by its support. Equal to
  ``macro["sensitivity"]`` and to :func:`sklearn.metrics.balanced_accuracy_score`.
- ``macro_f1``: the unweighted mean of the per-class F1 (``2 PPV sens / (PPV + sens)``)
  over the classes present in ``y_true``, i.e. ``sklearn.metrics.f1_score(...,
  labels=<classes present in y_true>, average="macro", zero_division=0)``.
- ``mcc_multiclass``: the multiclass MCC of Gorodkin (2004),
  :func:`sklearn.metrics.matthews_corrcoef`, which is not the mean of the
  one-vs-rest MCCs.

Every division by zero (e.g. PPV of a class never predicted) gives ``0.0``,
the convention of scikit-learn's ``zero_division=0``; no warning is emitted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, matthews_corrcoef

from mmfer.errors import DataError

#: One-vs-rest metric names kept per class and macro-averaged.
OVR_METRICS: tuple[str, ...] = ("ppv", "specificity", "sensitivity", "mcc_ovr")
#: Headline metrics of every report table: key -> display name.
HEADLINE_METRICS: dict[str, str] = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1"}


def _as_1d(values: Sequence[Hashable] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(None, f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """Validate inputs; unlike scikit-learn, refuse values missing from ``labels``.

    scikit-learn silently drops samples whose label is not in ``labels``, which
    would inflate every metric; here that is an error.
    """
    yt = _as_1d(y_true, "y_true")
    yp = _as_1d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise DataError(None, f"y_true has {yt.size} samples but y_pred has {yp.size}")
    if yt.size == 0:
        raise DataError(None, "no samples: y_true and y_pred are empty")
    labs = list(np.asarray(labels).tolist())
    if not labs:
        raise DataError(None, "labels is empty")
    if len(set(labs)) != len(labs):
        raise DataError(None, f"labels contains duplicates: {labs}")
    known = set(labs)
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        unknown = sorted({v for v in arr.tolist() if v not in known}, key=str)
        if unknown:
            raise DataError(None, f"{name} contains values not in labels {labs}: {unknown[:10]}")
    return yt, yp, labs


def confusion(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Parameters
    ----------
    y_true, y_pred
        ``(N,)`` true and predicted labels (values from ``labels``).
    labels
        ``(C,)`` label values giving the row/column order.

    Returns
    -------
    np.ndarray
        ``(C, C)`` int64 counts; ``out[i, j]`` = samples of ``labels[i]``
        predicted as ``labels[j]``.

    Raises
    ------
    DataError
        Lengths differ, no samples, or a value is not in ``labels``.
    """
    yt, yp, labs = _check(y_true, y_pred, labels)
    return confusion_matrix(yt, yp, labels=labs).astype(np.int64)


def _safe_div(num: float, den: float) -> float:
    # Zero denominator means the quantity is undefined; 0.0 matches sklearn's zero_division=0.
    return float(num / den) if den != 0 else 0.0


def _ovr_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """One-vs-rest counts and metrics for every class of a ``(C, C)`` confusion matrix."""
    cm = cm.astype(np.float64)  # float64 so TP*TN products cannot overflow
    n = cm.sum()
    tp = np.diag(cm)  # (C,)
    fp = cm.sum(axis=0) - tp  # predicted as the class but something else
    fn = cm.sum(axis=1) - tp  # the class but predicted as something else
    tn = n - tp - fp - fn
    c = cm.shape[0]
    out: dict[str, np.ndarray] = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    out["ppv"] = np.array([_safe_div(tp[i], tp[i] + fp[i]) for i in range(c)])  # eq. 13
    out["specificity"] = np.array([_safe_div(tn[i], tn[i] + fp[i]) for i in range(c)])  # eq. 14
    out["sensitivity"] = np.array([_safe_div(tp[i], tp[i] + fn[i]) for i in range(c)])  # eq. 15
    mcc = []
    for i in range(c):  # eq. 16
        den = math.sqrt((tp[i] + fp[i]) * (tp[i] + fn[i]) * (tn[i] + fp[i]) * (tn[i] + fn[i]))
        mcc.append(_safe_div(tp[i] * tn[i] - fp[i] * fn[i], den))
    out["mcc_ovr"] = np.array(mcc)
    # F1 = 2 PPV sens / (PPV + sens) = 2 TP / (2 TP + FP + FN), from the counts
    out["f1"] = np.array([_safe_div(2 * tp[i], 2 * tp[i] + fp[i] + fn[i]) for i in range(c)])
    out["accuracy_ovr"] = (tp + tn) / n  # eq. 12 per class; n > 0 is checked upstream
    return out


def classification_metrics(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class and macro one-vs-rest metrics (eqs. 12-16) and multiclass MCC.

    Parameters
    ----------
    y_true, y_pred
        ``(N,)`` true and predicted labels, values from ``labels``.
    labels
        ``(C,)`` label values, fixing the class order of ``confusion``.
    names
        Optional ``(C,)`` display names used as ``per_class``/``support`` keys
        (e.g. emotion names when ``labels`` are class indices). Default: the
        label values themselves.

    Returns
    -------
    dict
        ``accuracy`` (float, overall fraction correct = trace/N; see the module
        docstring for why this differs from eq. 12 one-vs-rest),
        ``uar`` (unweighted average recall = balanced accuracy),
        ``macro_f1`` (mean per-class F1 over classes present in ``y_true``),
        ``weighted_f1`` (per-class F1 weighted by true support, as scikit-learn's
        ``f1_score(average="weighted")``; MELD's usual metric),
        ``macro`` ({"ppv", "specificity", "sensitivity", "mcc_ovr"}: unweighted
        means over classes present in ``y_true``),
        ``mcc_multiclass`` (float, Gorodkin/scikit-learn),
        ``per_class`` ({name: {"ppv", "specificity", "sensitivity", "mcc_ovr",
        "f1", "accuracy_ovr", "support", "tp", "fp", "fn", "tn"}}),
        ``support`` ({name: int}), ``confusion`` (``C x C`` nested list of ints,
        rows true) and ``n`` (int). All fractions are in [0, 1] (MCC in [-1, 1]);
        undefined ratios are 0.0. The dict is JSON-serialisable when ``names``
        (or the labels) are strings or ints.

    Raises
    ------
    DataError
        Lengths differ, no samples, duplicate labels or a value not in ``labels``.
    """
    yt, yp, labs = _check(y_true, y_pred, labels)
    keys: list[Any] = list(labs) if names is None else list(names)
    if len(keys) != len(labs):
        raise DataError(None, f"names has {len(keys)} entries but labels has {len(labs)}")
    cm = confusion_matrix(yt, yp, labels=labs).astype(np.int64)  # (C, C)
    ovr = _ovr_from_confusion(cm)
    support = cm.sum(axis=1)  # (C,) true samples per class
    present = support > 0

    per_class: dict[Any, dict[str, float | int]] = {}
    for i, key in enumerate(keys):
        row: dict[str, float | int] = {m: float(ovr[m][i]) for m in (*OVR_METRICS, "f1", "accuracy_ovr")}
        row["support"] = int(support[i])
        for count in ("tp", "fp", "fn", "tn"):
            row[count] = int(ovr[count][i])
        per_class[key] = row

    macro = {m: float(np.mean(ovr[m][present])) for m in OVR_METRICS}
    with warnings.catch_warnings():
        # sklearn warns when only one class occurs; it then returns 0.0, our documented convention.
        warnings.simplefilter("ignore")
        mcc_multi = float(matthews_corrcoef(yt, yp))
    return {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "uar": macro["sensitivity"],
        "macro_f1": float(np.mean(ovr["f1"][present])),
        "weighted_f1": float(np.sum(ovr["f1"] * support) / max(int(support.sum()), 1)),
        "macro": macro,
        "mcc_multiclass": mcc_multi,
        "per_class": per_class,
        "support": {key: int(support[i]) for i, key in enumerate(keys)},
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def uar(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
) -> float:
    """Unweighted average recall (balanced accuracy): mean recall over the classes present in ``y_true``.

    Parameters
    ----------
    y_true, y_pred
        ``(N,)`` true and predicted labels, values from ``labels``.
    labels
        ``(C,)`` label values.

    Returns
    -------
    float
        In [0, 1]; ``1 / C_present`` times the sum of per-class recalls.

    Raises
    ------
    DataError
        As :func:`classification_metrics`.

    Examples
    --------
    Nine samples of class 0 and one of class 1, everything predicted as 0:
    accuracy 0.9, but UAR (1.0 + 0.0) / 2 = 0.5.

    >>> uar([0] * 9 + [1], [0] * 10, [0, 1])
    0.5
    """
    yt, yp, labs = _check(y_true, y_pred, labels)
    return recall_uar(confusion_matrix(yt, yp, labels=labs))


def recall_uar(cm: np.ndarray) -> float:
    """UAR of a ``(C, C)`` confusion matrix (rows true): mean of ``diag / row sum`` over non-empty rows."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)  # (C,)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
) -> float:
    """Macro-F1 in [0, 1]: mean per-class F1 over the classes present in ``y_true`` (0 where undefined).

    Same parameters and errors as :func:`uar`; the value is ``classification_metrics(...)["macro_f1"]``.
    """
    return float(classification_metrics(y_true, y_pred, labels)["macro_f1"])


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _collect(dicts: list[Mapping[str, Any]]) -> dict[str, Any]:
    keys: list[str] = []
    for d in dicts:
        keys.extend(k for k in d if k not in keys)
    out: dict[str, Any] = {}
    for key in keys:
        values = [d[key] for d in dicts if key in d]
        if all(isinstance(v, Mapping) for v in values):
            out[key] = _collect(values)
        elif all(_is_scalar(v) for v in values):
            arr = np.asarray(values, dtype=np.float64)  # (n_folds,)
            std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
            out[key] = {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}
        # lists (confusion matrices) and mixed values are not summarised
    return out


def summarise_folds(fold_metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over folds of every scalar metric.

    Parameters
    ----------
    fold_metrics
        One :func:`classification_metrics` dict per fold (any nested dict of
        numbers works).

    Returns
    -------
    dict
        Same nesting as the input, each scalar replaced by
        ``{"mean": float, "std": float, "n": int}`` where ``std`` uses
        ``ddof=1`` (NaN for a single fold) and ``n`` is the number of folds
        holding that key. Non-scalar entries (``confusion``) are dropped.

    Raises
    ------
    DataError
        If ``fold_metrics`` is empty.
    """
    if len(fold_metrics) == 0:
        raise DataError(None, "summarise_folds: no fold metrics given")
    return _collect(list(fold_metrics))


def format_pm(mean: float, std: float, pct: bool = True, digits: int = 1) -> str:
    """Format ``mean ± std``, e.g. ``format_pm(0.7843, 0.031) == "78.4 ± 3.1"``.

    Parameters
    ----------
    mean, std
        Values as fractions when ``pct`` (multiplied by 100 for display).
    pct
        Show as percentages (without the % sign).
    digits
        Decimals shown.

    Returns
    -------
    str
        ``"m ± s"``; ``"m ± n/a"`` when ``std`` is NaN (one fold), ``"n/a"`` when
        ``mean`` is NaN.
    """
    scale = 100.0 if pct else 1.0
    if mean is None or math.isnan(mean):
        return "n/a"
    m = f"{mean * scale:.{digits}f}"
    if std is None or math.isnan(std):
        return f"{m} ± n/a"
    return f"{m} ± {std * scale:.{digits}f}"
