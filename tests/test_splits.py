"""Cross-validation protocols: speaker independence, coverage, stratification, seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmfer.data.splits import (
    describe_protocol,
    group_holdout,
    group_kfold,
    is_speaker_independent,
    loso,
    make_splits,
    stratified_kfold,
)
from mmfer.errors import ConfigError
from mmfer.registry import SPLITTERS

EMOTIONS = ("angry", "happy", "sad", "neutral")


def random_table(seed: int, min_speakers: int = 5) -> pd.DataFrame:
    """A table with a random number of speakers, clips per speaker and emotions."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(int(rng.integers(min_speakers, 13))):
        for k in range(int(rng.integers(3, 21))):
            rows.append({"id": f"s{s}_{k}", "speaker": f"spk{s:02d}", "emotion": str(rng.choice(EMOTIONS))})
    # Shuffle rows so that positional indices do not follow speakers.
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def check_partition(table: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
    n = len(table)
    tested = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tested), np.arange(n)), "every sample tested exactly once"
    for tr, te in folds:
        assert len(te) > 0 and len(tr) > 0
        assert tr.dtype == np.int64 and te.dtype == np.int64
        assert len(np.intersect1d(tr, te)) == 0
        assert len(tr) + len(te) == n


def no_shared_speaker(table: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    spk = table["speaker"].to_numpy()
    return all(not (set(spk[tr]) & set(spk[te])) for tr, te in folds)


def test_registered() -> None:
    assert set(SPLITTERS.names()) >= {"loso", "group_kfold", "stratified_kfold"}
    assert is_speaker_independent("loso") and is_speaker_independent("group_kfold")
    assert not is_speaker_independent("stratified_kfold")
    assert describe_protocol("group_kfold", 5) == "speaker-independent 5-fold (grouped by speaker)"
    assert "3-fold" in describe_protocol("stratified_kfold", 3)
    assert "speaker-dependent" in describe_protocol("stratified_kfold", 3)
    assert "leave-one-speaker-out" in describe_protocol("loso", 5)
    with pytest.raises(ConfigError, match="valid names"):
        describe_protocol("holdout", 5)


@pytest.mark.parametrize("seed", range(8))
def test_loso_properties(seed: int) -> None:
    table = random_table(seed)
    folds = loso(table)
    check_partition(table, folds)
    assert no_shared_speaker(table, folds)
    spk = table["speaker"].to_numpy()
    assert [set(spk[te]) for _, te in folds] == [{s} for s in sorted(set(spk))]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_group_kfold_properties(seed: int, k: int) -> None:
    table = random_table(seed)
    folds = group_kfold(table, folds=k, seed=seed)
    assert len(folds) == k
    check_partition(table, folds)
    assert no_shared_speaker(table, folds)


@pytest.mark.parametrize("seed", range(5))
def test_stratified_kfold_is_stratified(seed: int) -> None:
    table = random_table(seed)
    k = 3
    folds = stratified_kfold(table, folds=k, seed=seed)
    check_partition(table, folds)
    emo = table["emotion"].to_numpy()
    for e in EMOTIONS:
        per_fold = [int((emo[te] == e).sum()) for _, te in folds]
        assert max(per_fold) - min(per_fold) <= 1, (e, per_fold)
    # Speaker-dependent: with many clips per speaker, speakers end up on both sides.
    assert not no_shared_speaker(table, folds)


@pytest.mark.parametrize("protocol", ["loso", "group_kfold", "stratified_kfold"])
def test_determinism(protocol: str) -> None:
    table = random_table(3, min_speakers=10)
    a = make_splits(table, protocol, 5, 0)
    b = make_splits(table, protocol, 5, 0)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    if protocol != "loso":  # loso has no randomness
        c = make_splits(table, protocol, 5, 1)
        assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_make_splits_errors() -> None:
    table = random_table(0)
    n_spk = table["speaker"].nunique()
    with pytest.raises(
        ConfigError,
        match=r"unknown protocol .holdout.*group_kfold, loco, loso, official_split, stratified_kfold",
    ):
        make_splits(table, "holdout", 5, 0)
    with pytest.raises(ConfigError, match=f"at least {n_spk + 1} speakers.*has {n_spk}"):
        make_splits(table, "group_kfold", n_spk + 1, 0)
    with pytest.raises(ConfigError, match=">= 2"):
        make_splits(table, "stratified_kfold", 1, 0)
    one = table.assign(speaker="only")
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        make_splits(one, "loso", 5, 0)
    tiny = pd.DataFrame({"speaker": ["a", "b", "c"], "emotion": ["sad", "happy", "angry"]})
    with pytest.raises(ConfigError, match="largest class has 1"):
        make_splits(tiny, "stratified_kfold", 2, 0)


@pytest.mark.parametrize("seed", range(6))
def test_group_holdout_keeps_speakers_whole_inside_a_training_fold(seed: int) -> None:
    table = random_table(seed)
    spk = table["speaker"].to_numpy()
    for tr, te in group_kfold(table, folds=3, seed=seed):
        fit, val = group_holdout(spk[tr], 0.1, seed)  # positions into tr
        fit, val = tr[fit], tr[val]
        assert len(val) > 0, "at least one speaker held out"
        assert np.array_equal(np.sort(np.concatenate([fit, val])), tr)
        assert not set(spk[val]) & set(spk[fit])
        assert not set(val) & set(te) and not set(spk[val]) & set(spk[te])
        n_train_spk = len(set(spk[tr]))
        assert len(set(spk[val])) == max(1, round(0.1 * n_train_spk))


@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.25, 0.5, 0.7])
def test_group_holdout_respects_the_fraction_of_groups(fraction: float) -> None:
    rng = np.random.default_rng(0)
    for n_groups in (3, 7, 10, 24, 50):
        groups = rng.choice([f"g{i:02d}" for i in range(n_groups)], size=400)
        groups[:n_groups] = [f"g{i:02d}" for i in range(n_groups)]  # every group present
        fit, val = group_holdout(groups, fraction, seed=n_groups)
        held = set(groups[val])
        assert not held & set(groups[fit])
        assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(len(groups)))
        assert fit.dtype == val.dtype == np.int64
        assert 1 <= len(held) <= n_groups - 1
        # within half a group of the asked share, unless clamped to [1, n - 1]
        if 1 < round(fraction * n_groups) < n_groups - 1:
            assert abs(len(held) / n_groups - fraction) <= 0.5 / n_groups + 1e-9


def test_group_holdout_is_deterministic_per_seed_and_ignores_row_order() -> None:
    groups = np.repeat([f"spk{i}" for i in range(12)], 5)
    a = group_holdout(groups, 0.25, seed=3)
    b = group_holdout(groups, 0.25, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    draws = {tuple(sorted(set(groups[group_holdout(groups, 0.25, seed=s)[1]]))) for s in range(8)}
    assert len(draws) > 1, "the seed changes which speakers are held out"
    perm = np.random.default_rng(1).permutation(len(groups))
    shuffled = groups[perm]
    assert set(shuffled[group_holdout(shuffled, 0.25, seed=3)[1]]) == set(groups[a[1]])


def test_group_holdout_degenerate_cases() -> None:
    groups = np.repeat(["a", "b", "c", "d"], 3)
    idx = np.arange(len(groups))
    fit, val = group_holdout(groups, 0.0, 0)  # nothing asked: nothing held out
    assert len(val) == 0 and np.array_equal(fit, idx)
    fit, val = group_holdout(np.full(7, "only"), 0.5, 0)  # one speaker: cannot hold out
    assert len(val) == 0 and np.array_equal(fit, np.arange(7))
    fit, val = group_holdout(groups, 0.99, 0)  # never every speaker
    assert len(set(groups[fit])) == 1 and len(set(groups[val])) == 3
    fit, val = group_holdout(np.array([], dtype=str), 0.5, 0)  # no rows, no groups
    assert len(fit) == 0 and len(val) == 0
    fit, val = group_holdout(np.arange(10), 0.2, 0)  # ungrouped rows: every row its own group
    assert len(val) == 2 and len(fit) == 8
    with pytest.raises(ConfigError, match="fraction"):
        group_holdout(groups, 1.0, 0)
    with pytest.raises(ConfigError, match="fraction"):
        group_holdout(groups, -0.1, 0)
    with pytest.raises(ConfigError, match=r"np\.arange"):
        group_holdout(None, 0.1, 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one-dimensional"):
        group_holdout(groups.reshape(3, 4), 0.1, 0)


def _sequence_table() -> pd.DataFrame:
    """6 subjects x 4 sequences x 3 near-identical frames (like CK+48)."""
    rows = []
    for s in range(6):
        for q in range(4):
            emo = EMOTIONS[(s + q) % len(EMOTIONS)]
            for f in range(3):
                rows.append(
                    {"id": f"S{s}_{q}_{f}", "speaker": f"S{s}", "sequence": f"S{s}_{q}", "emotion": emo}
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speaker_dependent_protocol_keeps_sequences_whole(seed: int) -> None:
    table = _sequence_table()
    seqs = table["sequence"].to_numpy()
    folds = make_splits(table, "stratified_kfold", 4, seed)
    for tr, te in folds:
        assert not set(seqs[tr]) & set(seqs[te])
    # without the sequence column the same protocol splits sequences (what the grouping prevents)
    plain = make_splits(table.drop(columns="sequence"), "stratified_kfold", 4, seed)
    assert any(set(seqs[tr]) & set(seqs[te]) for tr, te in plain)


@pytest.mark.parametrize("independent", [True, False])
def test_inner_splits_stay_inside_the_training_rows(independent: bool) -> None:
    from mmfer.data.splits import inner_splits

    table = _sequence_table()
    spk, seqs = table["speaker"].to_numpy(), table["sequence"].to_numpy()
    for tr, te in make_splits(table, "group_kfold", 3, 0):
        inner = inner_splits(table, tr, speaker_independent=independent, folds=3, seed=0)
        assert len(inner) >= 2
        covered = np.concatenate([va for _, va in inner])
        assert sorted(covered.tolist()) == sorted(tr.tolist())  # every training row validated once
        for itr, iva in inner:
            assert not set(itr) & set(te) and not set(iva) & set(te)
            assert set(itr) <= set(tr) and set(iva) <= set(tr)
            groups = spk if independent else seqs
            assert not set(groups[itr]) & set(groups[iva])


def test_official_split_trains_on_train_dev_and_selects_on_dev() -> None:
    from mmfer.data.splits import inner_splits

    table = random_table(3)
    table["split"] = np.resize(["train", "train", "dev", "test"], len(table))
    ((tr, te),) = make_splits(table, "official_split")
    assert set(table["split"].iloc[te]) == {"test"}
    assert set(table["split"].iloc[tr]) == {"train", "dev"}
    ((fit, dev),) = inner_splits(table, tr, speaker_independent=False, protocol="official_split")
    assert set(table["split"].iloc[fit]) == {"train"} and set(table["split"].iloc[dev]) == {"dev"}
    with pytest.raises(ConfigError, match="needs a 'split' column"):
        make_splits(table.drop(columns="split"), "official_split")
