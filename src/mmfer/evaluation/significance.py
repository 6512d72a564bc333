"""Significance tests between two models evaluated on the same folds / the same samples.

Two complementary views:

- :func:`paired_fold_tests`: one score per fold and model (e.g. fold accuracy),
  paired by fold. Wilcoxon signed-rank (no normality assumption) and the paired
  t-test. With k folds the exact Wilcoxon test cannot give a two-sided p below
  ``2 / 2**k``: 0.0625 for 5 folds, 0.03125 for 6, so a handful of folds can
  never be "significant" at 0.01, whatever the models do.
- :func:`mcnemar`: pooled per-sample predictions of both models on the same test
  samples; exact binomial McNemar on the discordant pairs (plus the
  chi-square version with continuity correction, for reference).

Folds are not independent (training sets overlap), so fold-level p-values are
optimistic; samples within a speaker are not independent either, so McNemar is
optimistic too. Treat both as screening, not proof.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from mmfer.errors import DataError

#: Paired differences are rounded to this many decimals before ranking.
_DIFF_DECIMALS = 12
#: Above this many non-zero differences, Wilcoxon uses the normal approximation.
_EXACT_MAX_N = 50
#: Up to this many non-zero differences with ties, the sign-flip distribution is enumerated (2**13 < 9999).
_PERMUTATION_MAX_N = 13


def _wilcoxon(diff: np.ndarray) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank on paired differences ``(n,)``; zeros dropped (Wilcoxon's method)."""
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        # No evidence of any difference; scipy would divide by zero here.
        return 0.0, 1.0, "all differences zero"
    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    method: Any
    if nonzero.size <= _EXACT_MAX_N and not has_ties:
        method, name = "exact", "exact"
    elif has_ties and nonzero.size <= _PERMUTATION_MAX_N:
        # Exact null of the signed ranks with tied (mid-)ranks, by enumerating all sign flips.
        method, name = stats.PermutationMethod(n_resamples=2**_PERMUTATION_MAX_N), "exact (ties, sign-flip)"
    else:
        method, name = "approx", "normal approximation"
    res = stats.wilcoxon(nonzero, zero_method="wilcox", method=method)
    return float(res.statistic), float(res.pvalue), name


def paired_fold_tests(
    scores_a: Sequence[float] | np.ndarray, scores_b: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """Paired tests of two models' per-fold scores (fold ``i`` of A paired with fold ``i`` of B).

    Parameters
    ----------
    scores_a, scores_b
        ``(k,)`` per-fold scores (e.g. accuracy) of models A and B on the same folds.

    Returns
    -------
    dict
        ``n`` (folds), ``mean_a``, ``mean_b``, ``mean_diff`` (A - B, the effect
        size in the scores' units), ``std_diff`` (ddof=1), ``n_zero_diff``,
        ``wilcoxon_stat``, ``wilcoxon_p`` (two-sided), ``wilcoxon_method``,
        ``ttest_stat``, ``ttest_p`` (two-sided, :func:`scipy.stats.ttest_rel`),
        ``min_wilcoxon_p`` (smallest two-sided p the exact test can reach with
        these non-zero differences) and ``notes`` (list of str).
        All-zero differences give p = 1.0 for both tests; fewer than 2 folds
        give NaN p-values and a note.

    Raises
    ------
    DataError
        Lengths differ or a score is not finite.
    """
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(None, f"paired tests need equal fold counts, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError(None, "paired tests: scores contain NaN or inf")
    # Rounded so float noise (0.5 + 0.05 - 0.5 != 0.05) neither breaks ties nor fakes non-zero differences.
    diff = np.round(a - b, _DIFF_DECIMALS)  # (k,)
    n = int(diff.size)
    nan = float("nan")
    out: dict[str, Any] = {
        "n": n,
        "mean_a": float(a.mean()) if n else nan,
        "mean_b": float(b.mean()) if n else nan,
        "mean_diff": float(diff.mean()) if n else nan,
        "std_diff": float(diff.std(ddof=1)) if n > 1 else nan,
        "n_zero_diff": int(np.sum(diff == 0)),
        "notes": [],
    }
    notes: list[str] = out["notes"]
    if n < 2:
        out.update(wilcoxon_stat=nan, wilcoxon_p=nan, wilcoxon_method="none", ttest_stat=nan, ttest_p=nan)
        out["min_wilcoxon_p"] = nan
        notes.append(f"only {n} fold(s): no paired test possible")
        return out

    w_stat, w_p, w_method = _wilcoxon(diff)
    out.update(wilcoxon_stat=w_stat, wilcoxon_p=w_p, wilcoxon_method=w_method)
    n_nonzero = n - out["n_zero_diff"]
    out["min_wilcoxon_p"] = min(1.0, 2.0 / 2**n_nonzero) if n_nonzero else 1.0
    if out["n_zero_diff"]:
        notes.append(f"{out['n_zero_diff']} zero difference(s) dropped by Wilcoxon")
    if 0 < n_nonzero < 6:
        notes.append(
            f"exact Wilcoxon on {n_nonzero} non-zero differences: smallest attainable two-sided "
            f"p = {out['min_wilcoxon_p']:.4g}"
        )

    if np.all(diff == diff[0]):
        # Constant differences have zero variance: t is undefined (scipy returns NaN).
        if diff[0] == 0:
            out.update(ttest_stat=0.0, ttest_p=1.0)
        else:
            out.update(ttest_stat=float(np.sign(diff[0]) * np.inf), ttest_p=0.0)
            notes.append("identical non-zero differences in every fold: t-test degenerate (p = 0)")
    else:
        t = stats.ttest_rel(a, b)
        out.update(ttest_stat=float(t.statistic), ttest_p=float(t.pvalue))
    return out


def mcnemar(
    y_true: Sequence[Hashable] | np.ndarray,
    pred_a: Sequence[Hashable] | np.ndarray,
    pred_b: Sequence[Hashable] | np.ndarray,
) -> dict[str, Any]:
    """McNemar's test of two classifiers on the same samples (pooled over folds).

    Parameters
    ----------
    y_true, pred_a, pred_b
        ``(N,)`` true labels and the two models' predictions for the same samples,
        in the same order.

    Returns
    -------
    dict
        ``n``; the 2x2 counts ``both_correct``, ``b`` (A right, B wrong), ``c``
        (A wrong, B right), ``both_wrong``; ``exact_p`` (two-sided binomial test
        of ``b`` successes in ``b + c`` trials at 0.5, :func:`scipy.stats.binomtest`);
        ``chi2`` = ``max(|b - c| - 1, 0)**2 / (b + c)`` (Edwards' continuity
        correction) and ``chi2_p`` (1 d.o.f.); ``acc_a``, ``acc_b``. No discordant
        pairs give ``exact_p = chi2_p = 1.0``.

    Raises
    ------
    DataError
        Lengths differ or there are no samples.
    """
    yt = np.asarray(y_true).ravel()
    pa = np.asarray(pred_a).ravel()
    pb = np.asarray(pred_b).ravel()
    if not (yt.shape == pa.shape == pb.shape):
        raise DataError(None, f"McNemar needs equal lengths, got {yt.size}, {pa.size}, {pb.size}")
    if yt.size == 0:
        raise DataError(None, "McNemar: no samples")
    ok_a = pa == yt  # (N,) bool
    ok_b = pb == yt
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    discordant = b + c
    if discordant == 0:
        exact_p, chi2, chi2_p = 1.0, 0.0, 1.0
    else:
        exact_p = float(stats.binomtest(b, discordant, 0.5, alternative="two-sided").pvalue)
        # max(.,0): with b == c the correction must not turn "no difference" into a positive statistic.
        chi2 = max(abs(b - c) - 1, 0) ** 2 / discordant
        chi2_p = float(stats.chi2.sf(chi2, df=1))
    return {
        "n": int(yt.size),
        "both_correct": int(np.sum(ok_a & ok_b)),
        "b": b,
        "c": c,
        "both_wrong": int(np.sum(~ok_a & ~ok_b)),
        "exact_p": exact_p,
        "chi2": float(chi2),
        "chi2_p": chi2_p,
        "acc_a": float(ok_a.mean()),
        "acc_b": float(ok_b.mean()),
    }


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control), same order as the input.

    NaN inputs stay NaN and do not count towards the family size.

    Parameters
    ----------
    pvalues
        ``(m,)`` raw p-values.

    Returns
    -------
    list[float]
        ``(m,)`` adjusted p-values, monotone in the raw order and capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))  # step-down: never below a smaller p's value
        out[idx] = running
    return out.tolist()


def speaker_accuracy(
    y_true: Sequence[int], y_pred: Sequence[int], speakers: Sequence[Hashable]
) -> dict[Hashable, float]:
    """Accuracy of each speaker's pooled test samples, ``{speaker: accuracy}`` (sorted by speaker)."""
    t, p, s = np.asarray(y_true), np.asarray(y_pred), np.asarray([str(x) for x in speakers])
    if not (len(t) == len(p) == len(s)):
        raise DataError(None, f"y_true {len(t)}, y_pred {len(p)} and speakers {len(s)} differ in length")
    return {spk: float(np.mean(t[s == spk] == p[s == spk])) for spk in sorted(set(s.tolist()))}


#: Metrics the speaker-level test and the speaker bootstrap can compute from per-speaker counts.
SPEAKER_METRICS: tuple[str, ...] = ("accuracy", "uar")


def cluster_bootstrap_accuracy(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    speakers: Sequence[Hashable],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of pooled accuracy when whole speakers are resampled with replacement.

    Speakers, not clips, are the independent units of a speaker-independent
    evaluation, so the interval is as wide as the variation between people.
    """
    return cluster_bootstrap(
        y_true, y_pred, speakers, metric="accuracy", n_boot=n_boot, seed=seed, level=level
    )


def cluster_bootstrap(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    speakers: Sequence[Hashable],
    *,
    metric: str = "accuracy",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of a pooled metric (accuracy or UAR) over speakers resampled with replacement.

    Parameters
    ----------
    y_true, y_pred
        ``(N,)`` true and predicted class indices.
    speakers
        ``(N,)`` speaker of each sample.
    metric
        One of :data:`SPEAKER_METRICS`; ``uar`` is recomputed on the pooled counts of
        each resample (classes absent from a resample are left out of its mean).
    n_boot, seed, level
        Number of resamples, their seed and the interval's coverage.

    Returns
    -------
    tuple[float, float]
        ``(lo, hi)`` as fractions.
    """
    n, (correct,) = _class_counts(y_true, [y_pred], speakers)  # (S, C) each
    boots = _resample(n, n_boot, seed)  # (B, S) speaker indices
    if metric == "accuracy":
        scores = correct.sum(axis=1)[boots].sum(axis=1) / n.sum(axis=1)[boots].sum(axis=1)  # (B,)
    else:
        scores = _score(correct[boots].sum(axis=1), n[boots].sum(axis=1), metric)  # (B,)
    return _interval(scores, level)


def speaker_level_test(
    y_true: Sequence[int],
    y_pred_a: Sequence[int],
    y_pred_b: Sequence[int],
    speakers: Sequence[Hashable],
    *,
    metric: str = "accuracy",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Paired comparison of two models with the speaker as the unit.

    Wilcoxon signed-rank on per-speaker scores (A − B, one pair per speaker), and a
    cluster-bootstrap interval of the pooled difference (speakers resampled with
    replacement).

    Parameters
    ----------
    y_true, y_pred_a, y_pred_b
        ``(N,)`` true classes and the two models' predictions of the same samples.
    speakers
        ``(N,)`` speaker of each sample.
    metric
        ``accuracy`` or ``uar`` (:data:`SPEAKER_METRICS`): each speaker's score is
        computed on that speaker's samples (UAR over the classes the speaker has).
    n_boot, seed, level
        Bootstrap resamples, seed and interval coverage.

    Returns
    -------
    dict
        ``n_speakers``, ``metric``, ``mean_diff`` (mean over speakers of A − B),
        ``wilcoxon_p``, ``wilcoxon_method``, ``diff_ci`` ``(lo, hi)`` of the pooled
        difference, ``a_better`` / ``b_better`` (speakers where one model scores higher).
    """
    n, (ca, cb) = _class_counts(y_true, [y_pred_a, y_pred_b], speakers)  # (S, C) each
    diff = _diff(ca, cb, n, metric)  # (S,) per-speaker difference
    _, p, method = _wilcoxon(np.round(diff, _DIFF_DECIMALS))
    boots = _resample(n, n_boot, seed)  # (B, S)
    d = _diff(ca[boots].sum(axis=1), cb[boots].sum(axis=1), n[boots].sum(axis=1), metric)  # (B,)
    return {
        "n_speakers": len(n),
        "metric": metric,
        "mean_diff": float(diff.mean()),
        "wilcoxon_p": p,
        "wilcoxon_method": method,
        "diff_ci": _interval(d, level),
        "a_better": int((diff > 0).sum()),
        "b_better": int((diff < 0).sum()),
    }


def _score(correct: np.ndarray, n: np.ndarray, metric: str) -> np.ndarray:
    """Accuracy or UAR of per-class counts ``(..., C)`` (correct predictions, samples)."""
    if metric == "accuracy":
        return correct.sum(axis=-1) / n.sum(axis=-1)
    if metric != "uar":
        raise DataError(None, f"speaker-level metric must be one of {SPEAKER_METRICS}, got {metric!r}")
    present = n > 0
    recall = np.divide(correct, n, out=np.zeros_like(correct), where=present)
    return recall.sum(axis=-1) / present.sum(axis=-1)


def _diff(ca: np.ndarray, cb: np.ndarray, n: np.ndarray, metric: str) -> np.ndarray:
    """Score of A minus score of B from per-class counts ``(..., C)``."""
    if metric == "accuracy":  # one division: the difference of correct counts over the samples
        return (ca.sum(axis=-1) - cb.sum(axis=-1)) / n.sum(axis=-1)
    return _score(ca, n, metric) - _score(cb, n, metric)


def _class_counts(
    y_true: Sequence[int], preds: Sequence[Sequence[int]], speakers: Sequence[Hashable]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per speaker (sorted) and true class: sample counts and each model's correct counts, all ``(S, C)``."""
    t = np.asarray(y_true)
    s = np.asarray([str(x) for x in speakers])
    ps = [np.asarray(p) for p in preds]
    if any(len(p) != len(t) for p in ps) or len(s) != len(t):
        raise DataError(None, "y_true, predictions and speakers must have the same length")
    if len(t) == 0:
        raise DataError(None, "no samples to compare")
    spk_ids, spk = np.unique(s, return_inverse=True)  # sorted speakers
    cls_ids, cls = np.unique(t, return_inverse=True)
    shape = (len(spk_ids), len(cls_ids))
    n = np.zeros(shape)
    np.add.at(n, (spk, cls), 1.0)
    correct = []
    for p in ps:
        c = np.zeros(shape)
        np.add.at(c, (spk, cls), (p == t).astype(np.float64))
        correct.append(c)
    return n, correct


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Central percentile interval ``(lo, hi)`` holding ``level`` of the bootstrap ``draws`` ``(B,)``."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _resample(per: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, S)`` speaker indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(per), size=(n_boot, len(per)))
