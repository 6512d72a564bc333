"""Significance tests against hand-computed cases and scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from mmfer.errors import DataError
from mmfer.evaluation.significance import holm, mcnemar, paired_fold_tests


def _mcnemar_case(b: int, c: int, both_right: int = 5, both_wrong: int = 3):
    """Predictions with exactly b (A right, B wrong) and c (A wrong, B right) discordant samples."""
    y = np.zeros(b + c + both_right + both_wrong, dtype=int)
    pa = np.concatenate([np.zeros(b), np.ones(c), np.zeros(both_right), np.ones(both_wrong)]).astype(int)
    pb = np.concatenate([np.ones(b), np.zeros(c), np.zeros(both_right), np.ones(both_wrong)]).astype(int)
    return y, pa, pb


def test_mcnemar_exact_hand_case_b10_c2() -> None:
    y, pa, pb = _mcnemar_case(10, 2)
    r = mcnemar(y, pa, pb)
    assert (r["b"], r["c"], r["both_correct"], r["both_wrong"]) == (10, 2, 5, 3)
    # Two-sided exact: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    assert r["exact_p"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
    # Continuity-corrected chi2 = (|10 - 2| - 1)^2 / 12 = 49 / 12.
    assert r["chi2"] == pytest.approx(49 / 12)
    assert r["chi2_p"] == pytest.approx(stats.chi2.sf(49 / 12, 1))
    assert r["acc_a"] == pytest.approx(15 / 20)
    assert r["acc_b"] == pytest.approx(7 / 20)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 3), (0, 7), (25, 11), (1, 0)])
def test_mcnemar_matches_binomtest_and_symmetry(b: int, c: int) -> None:
    y, pa, pb = _mcnemar_case(b, c)
    r = mcnemar(y, pa, pb)
    swapped = mcnemar(y, pb, pa)
    assert (swapped["b"], swapped["c"]) == (c, b)
    assert swapped["exact_p"] == pytest.approx(r["exact_p"])
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert r["exact_p"] == pytest.approx(expected)
    if b == c:
        assert r["chi2"] == 0.0 and r["chi2_p"] == pytest.approx(1.0)


def test_mcnemar_length_mismatch() -> None:
    with pytest.raises(DataError):
        mcnemar([0, 1], [0, 1], [0])


def test_wilcoxon_exact_hand_case() -> None:
    # Five positive differences with distinct sizes: exact two-sided p = 2 / 2**5.
    a = [0.80, 0.82, 0.79, 0.85, 0.90]
    b = [0.70, 0.80, 0.76, 0.81, 0.85]
    r = paired_fold_tests(a, b)
    assert r["wilcoxon_p"] == pytest.approx(2 / 32)
    assert r["wilcoxon_method"] == "exact"
    assert r["min_wilcoxon_p"] == pytest.approx(2 / 32)
    assert any("smallest attainable" in n for n in r["notes"])
    assert r["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    t = stats.ttest_rel(a, b)
    assert r["ttest_p"] == pytest.approx(t.pvalue)
    assert r["ttest_stat"] == pytest.approx(t.statistic)


def test_wilcoxon_matches_brute_force_sign_flips_with_ties_and_zeros() -> None:
    # Differences with a zero (dropped) and tied magnitudes: enumerate all sign flips by hand.
    diff = np.array([0.0, 0.05, -0.05, 0.1, 0.1, 0.2, -0.02])
    b = np.full(diff.size, 0.5)
    a = b + diff
    r = paired_fold_tests(a, b)
    nz = diff[diff != 0]
    ranks = stats.rankdata(np.abs(nz))
    observed = min(ranks[nz > 0].sum(), ranks[nz < 0].sum())
    total = ranks.sum()
    count = 0
    for signs in itertools.product([0, 1], repeat=nz.size):
        r_plus = float(np.dot(signs, ranks))
        if min(r_plus, total - r_plus) <= observed + 1e-12:
            count += 1
    assert r["wilcoxon_p"] == pytest.approx(count / 2**nz.size)
    assert r["n_zero_diff"] == 1
    assert r["wilcoxon_method"].startswith("exact")


def test_all_zero_differences_give_p_one() -> None:
    r = paired_fold_tests([0.7, 0.8, 0.6, 0.9], [0.7, 0.8, 0.6, 0.9])
    assert r["wilcoxon_p"] == 1.0
    assert r["ttest_p"] == 1.0
    assert r["mean_diff"] == 0.0
    assert r["wilcoxon_method"] == "all differences zero"


def test_large_n_matches_scipy_auto() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=12)
    b = a + rng.normal(0.05, 0.1, size=12)
    r = paired_fold_tests(a, b)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert r["mean_diff"] == pytest.approx(np.mean(a - b))
    assert r["std_diff"] == pytest.approx(np.std(a - b, ddof=1))


def test_single_fold_and_mismatch() -> None:
    r = paired_fold_tests([0.5], [0.4])
    assert math.isnan(r["wilcoxon_p"]) and math.isnan(r["ttest_p"])
    assert r["notes"]
    with pytest.raises(DataError):
        paired_fold_tests([0.5, 0.6], [0.4])
    with pytest.raises(DataError):
        paired_fold_tests([0.5, float("nan")], [0.4, 0.3])


def test_holm_hand_case() -> None:
    # Sorted p 0.01, 0.02, 0.04 -> 3*0.01, max(.03, 2*0.02), max(.04, 1*0.04); NaN stays NaN.
    out = holm([0.04, 0.01, float("nan"), 0.02])
    assert out[1] == pytest.approx(0.03)
    assert out[3] == pytest.approx(0.04)
    assert out[0] == pytest.approx(0.04)
    assert math.isnan(out[2])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_speaker_level_test_uses_speakers_as_units() -> None:
    from mmfer.evaluation.significance import cluster_bootstrap_accuracy, speaker_accuracy, speaker_level_test

    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i:02d}" for i in range(20)], 30)  # 20 speakers x 30 clips
    y = rng.integers(0, 4, size=len(speakers))
    good = np.where(rng.random(len(y)) < 0.8, y, (y + 1) % 4)  # ~80 % right
    bad = np.where(rng.random(len(y)) < 0.5, y, (y + 1) % 4)  # ~50 % right
    acc = speaker_accuracy(y, good, speakers)
    assert len(acc) == 20 and acc["s00"] == np.mean(good[:30] == y[:30])
    res = speaker_level_test(y, good, bad, speakers)
    assert res["n_speakers"] == 20 and res["a_better"] >= 18
    assert res["wilcoxon_p"] < 1e-3
    lo, hi = res["diff_ci"]
    assert 0.2 < lo < hi < 0.4
    same = speaker_level_test(y, good, good, speakers)
    assert same["wilcoxon_p"] == 1.0 and same["diff_ci"] == (0.0, 0.0)
    lo, hi = cluster_bootstrap_accuracy(y, good, speakers)
    assert lo < np.mean(good == y) < hi and hi - lo < 0.1


def test_speaker_level_test_on_uar() -> None:
    """Per-speaker UAR: the mean of that speaker's per-class recalls, hand-computed."""
    from mmfer.evaluation.significance import cluster_bootstrap, speaker_level_test

    # Speaker s1: classes 0,0,0,1; s2: classes 0,1,1,1.
    y = [0, 0, 0, 1, 0, 1, 1, 1]
    spk = ["s1"] * 4 + ["s2"] * 4
    a = [0, 0, 0, 1, 0, 1, 1, 1]  # perfect: UAR 1 for both speakers
    b = [0, 0, 0, 0, 0, 0, 0, 0]  # always 0: UAR 0.5 for both (accuracy 0.75 and 0.25)
    res = speaker_level_test(y, a, b, spk, metric="uar")
    assert res["metric"] == "uar"
    assert res["mean_diff"] == pytest.approx(0.5)
    assert res["a_better"] == 2 and res["b_better"] == 0
    acc = speaker_level_test(y, a, b, spk)
    assert acc["mean_diff"] == pytest.approx(((1 - 0.75) + (1 - 0.25)) / 2)
    # Pooled UAR of b is 0.5 in every resample that has both classes.
    lo, hi = cluster_bootstrap(y, b, spk, metric="uar", n_boot=200)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    lo, hi = cluster_bootstrap(y, b, spk, metric="accuracy", n_boot=200)
    assert lo < 0.5 < hi
    with pytest.raises(DataError):
        speaker_level_test(y, a, b, spk, metric="macro_f1")
