"""Metrics (eqs. 12-16) checked against scikit-learn on the same predictions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, matthews_corrcoef, precision_score, recall_score

from mmfer.errors import DataError
from mmfer.evaluation.metrics import classification_metrics, confusion, format_pm, summarise_folds

SEEDS = range(40)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Random labels with varied class count, size and skill; some classes may be absent."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 9))
    n = int(rng.integers(1, 120))
    y_true = rng.integers(0, c, size=n)
    # Mix correct and random predictions so metrics span the range, not just chance.
    skill = rng.uniform(0, 1)
    y_pred = np.where(rng.uniform(size=n) < skill, y_true, rng.integers(0, c, size=n))
    return y_true, y_pred, list(range(c))


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_and_macro_match_sklearn(seed: int) -> None:
    y_true, y_pred, labels = _random_case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our function must not warn, even on degenerate folds
        m = classification_metrics(y_true, y_pred, labels)

    ppv = precision_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    sens = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    n = cm.sum()
    for i, lab in enumerate(labels):
        row = m["per_class"][lab]
        assert row["ppv"] == pytest.approx(ppv[i])
        assert row["sensitivity"] == pytest.approx(sens[i])
        # Specificity by hand from the confusion matrix: TN / (TN + FP) of class i.
        fp = cm[:, i].sum() - cm[i, i]
        tn = n - cm[i, :].sum() - cm[:, i].sum() + cm[i, i]
        assert row["specificity"] == pytest.approx(tn / (tn + fp) if tn + fp else 0.0)
        assert row["accuracy_ovr"] == pytest.approx((cm[i, i] + tn) / n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mcc_bin = matthews_corrcoef(y_true == lab, y_pred == lab)
        assert row["mcc_ovr"] == pytest.approx(mcc_bin, abs=1e-12)
        assert row["support"] == int(np.sum(y_true == lab))

    present = sorted(set(y_true.tolist()))
    assert m["macro"]["ppv"] == pytest.approx(
        precision_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    assert m["macro"]["sensitivity"] == pytest.approx(
        recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    for key in ("specificity", "mcc_ovr"):
        assert m["macro"][key] == pytest.approx(np.mean([m["per_class"][lab][key] for lab in present]))
    assert m["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["mcc_multiclass"] == pytest.approx(matthews_corrcoef(y_true, y_pred), abs=1e-12)
    assert np.array_equal(np.asarray(m["confusion"]), cm)
    assert m["n"] == len(y_true)


def test_confusion_rows_true_cols_pred_and_string_labels() -> None:
    y_true = ["a", "a", "b", "c", "c", "c"]
    y_pred = ["a", "b", "b", "c", "a", "c"]
    cm = confusion(y_true, y_pred, ["a", "b", "c"])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.dtype == np.int64


def test_overall_accuracy_differs_from_eq12_one_vs_rest() -> None:
    # Always-wrong classifier on 4 balanced classes: overall accuracy 0, eq. 12 per class 0.5.
    y_true = np.repeat(np.arange(4), 5)
    y_pred = (y_true + 1) % 4
    m = classification_metrics(y_true, y_pred, range(4))
    assert m["accuracy"] == 0.0
    for lab in range(4):
        assert m["per_class"][lab]["accuracy_ovr"] == pytest.approx(1 - 10 / 20)


def test_zero_division_gives_zero_and_absent_classes_left_out_of_macro() -> None:
    # Class 2 never occurs nor is predicted; class 1 is never predicted.
    y_true = [0, 0, 1, 1]
    y_pred = [0, 0, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y_true, y_pred, [0, 1, 2], names=["x", "y", "z"])
    assert m["per_class"]["y"]["ppv"] == 0.0
    assert m["per_class"]["z"]["sensitivity"] == 0.0
    assert m["per_class"]["z"]["specificity"] == 1.0
    assert m["per_class"]["y"]["mcc_ovr"] == 0.0
    assert m["macro"]["sensitivity"] == pytest.approx((1.0 + 0.0) / 2)  # z excluded
    assert m["support"] == {"x": 2, "y": 2, "z": 0}


def test_bad_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="samples"):
        classification_metrics([0, 1], [0], [0, 1])
    with pytest.raises(DataError, match="not in labels"):
        classification_metrics([0, 5], [0, 1], [0, 1])
    with pytest.raises(DataError, match="empty"):
        classification_metrics([], [], [0, 1])
    with pytest.raises(DataError, match="names"):
        classification_metrics([0, 1], [0, 1], [0, 1], names=["a"])


def test_summarise_folds_mean_and_sample_std() -> None:
    rng = np.random.default_rng(3)
    folds = []
    for _ in range(5):
        y = rng.integers(0, 3, size=30)
        p = np.where(rng.uniform(size=30) < 0.6, y, rng.integers(0, 3, size=30))
        folds.append(classification_metrics(y, p, [0, 1, 2]))
    s = summarise_folds(folds)
    acc = np.array([f["accuracy"] for f in folds])
    assert s["accuracy"]["mean"] == pytest.approx(acc.mean())
    assert s["accuracy"]["std"] == pytest.approx(acc.std(ddof=1))
    assert s["accuracy"]["n"] == 5
    sens = np.array([f["macro"]["sensitivity"] for f in folds])
    assert s["macro"]["sensitivity"]["std"] == pytest.approx(sens.std(ddof=1))
    assert s["per_class"][1]["ppv"]["mean"] == pytest.approx(
        np.mean([f["per_class"][1]["ppv"] for f in folds])
    )
    assert "confusion" not in s
    one = summarise_folds(folds[:1])
    assert math.isnan(one["accuracy"]["std"])
    with pytest.raises(DataError):
        summarise_folds([])


def test_format_pm() -> None:
    assert format_pm(0.7843, 0.031) == "78.4 ± 3.1"
    assert format_pm(12.345, 0.5, pct=False, digits=2) == "12.35 ± 0.50"
    assert format_pm(0.5, float("nan")) == "50.0 ± n/a"
    assert format_pm(float("nan"), 0.1) == "n/a"


@pytest.mark.parametrize("seed", SEEDS)
def test_uar_and_macro_f1_match_sklearn(seed: int) -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from mmfer.evaluation.metrics import macro_f1, uar

    y_true, y_pred, labels = _random_case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y_true, y_pred, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes only in y_pred
        bal = balanced_accuracy_score(y_true, y_pred)
    present = sorted(set(y_true.tolist()))
    f1 = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    per_class_f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert m["uar"] == pytest.approx(bal) == pytest.approx(uar(y_true, y_pred, labels))
    assert m["uar"] == m["macro"]["sensitivity"]
    assert m["macro_f1"] == pytest.approx(f1) == pytest.approx(macro_f1(y_true, y_pred, labels))
    for i, lab in enumerate(labels):
        assert m["per_class"][lab]["f1"] == pytest.approx(per_class_f1[i])


def test_uar_and_f1_hand_computed_imbalanced() -> None:
    """8 of class a, 2 of class b: predicting a always is 80 % accurate but has UAR 50 %."""
    from mmfer.evaluation.metrics import macro_f1, recall_uar, uar

    y_true = ["a"] * 8 + ["b"] * 2
    always_a = ["a"] * 10
    m = classification_metrics(y_true, always_a, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["uar"] == pytest.approx(0.5)  # recall a = 8/8, recall b = 0/2
    # F1(a) = 2*8 / (2*8 + 2 + 0) = 16/18; F1(b) = 0
    assert m["macro_f1"] == pytest.approx((16 / 18 + 0) / 2)
    assert uar(y_true, always_a, ["a", "b"]) == pytest.approx(0.5)
    assert macro_f1(y_true, always_a, ["a", "b"]) == pytest.approx(8 / 18)

    # One error of each kind: a predicted as b once, b predicted as a once.
    pred = ["a"] * 7 + ["b"] + ["a", "b"]
    m = classification_metrics(y_true, pred, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["uar"] == pytest.approx((7 / 8 + 1 / 2) / 2)  # 0.6875 != accuracy
    f1_a = 2 * 7 / (2 * 7 + 1 + 1)
    f1_b = 2 * 1 / (2 * 1 + 1 + 1)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    # A class absent from y_true is left out of UAR (its recall is undefined).
    assert recall_uar(np.array([[3, 1, 0], [0, 0, 0], [1, 0, 1]])) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_summarise_folds_carries_uar_and_f1() -> None:
    folds = [classification_metrics([0, 0, 0, 1], p, [0, 1]) for p in ([0, 0, 0, 0], [0, 0, 1, 1])]
    s = summarise_folds(folds)
    assert s["uar"]["mean"] == pytest.approx((0.5 + (2 / 3 + 1) / 2) / 2)
    assert s["macro_f1"]["n"] == 2
