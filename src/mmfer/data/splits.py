"""Cross-validation protocols over a sample table.

Speaker-independent protocols (``loso``, ``group_kfold``) never put a
speaker in both the training and the test rows of a fold, so a score says how
well the model recognises emotions of *new* people. ``stratified_kfold``
mixes every speaker's clips across folds (speaker-dependent); it is the
likely setting of the paper and is kept for comparison only, because it
lets a model score by recognising voices and faces rather than emotions.

Every splitter is registered in :data:`mmfer.registry.SPLITTERS` and has
the signature ``split(table, *, folds=5, seed=0) -> list[(train_idx, test_idx)]``
where both index arrays are sorted positional row indices (``int64``,
shape ``(n_train,)`` and ``(n_test,)``), usable with ``table.iloc``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from mmfer.errors import ConfigError
from mmfer.registry import SPLITTERS

Fold = tuple[np.ndarray, np.ndarray]
Splitter = Callable[..., list[Fold]]


def _protocol(
    name: str,
    *,
    speaker_independent: bool,
    describe: str,
    tests_all: bool = True,
    closed_set: bool = False,
) -> Callable[[Splitter], Splitter]:
    """Register a splitter and attach what :func:`describe_protocol` and
    :func:`is_speaker_independent` report about it (``tests_all``: every row is
    tested exactly once; False for a fixed official test split; ``closed_set``: a
    fold is scored over its test rows' own label set, :func:`is_closed_set`)."""

    def deco(fn: Splitter) -> Splitter:
        fn.speaker_independent = speaker_independent  # type: ignore[attr-defined]
        fn.describe = describe  # type: ignore[attr-defined]
        fn.tests_all = tests_all  # type: ignore[attr-defined]
        fn.closed_set = closed_set  # type: ignore[attr-defined]
        return SPLITTERS.register(name)(fn)

    return deco


def _columns(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Speaker and emotion columns as string arrays, shape ``(n,)`` each."""
    missing = [c for c in ("speaker", "emotion") if c not in table.columns]
    if missing:
        raise ConfigError(f"cannot split a table without column(s) {missing}")
    return table["speaker"].astype(str).to_numpy(), table["emotion"].astype(str).to_numpy()


def _check_folds(folds: int, what: str, available: int, unit: str) -> None:
    if not isinstance(folds, int | np.integer) or folds < 2:
        raise ConfigError(f"eval.folds must be an integer >= 2; got {folds!r}")
    if folds > available:
        raise ConfigError(
            f"{what} with {folds} folds needs at least {folds} {unit}, but the table has "
            f"{available}; lower eval.folds to {available} or fewer"
            + (" or use protocol=loso" if unit == "speakers" else "")
        )


def _as_folds(splits: Any) -> list[Fold]:
    return [(np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)) for tr, te in splits]


@_protocol(
    "loso",
    speaker_independent=True,
    describe="leave-one-speaker-out (speaker-independent, one fold per speaker)",
)
def loso(table: pd.DataFrame, *, folds: int = 5, seed: int = 0) -> list[Fold]:
    """Leave-one-speaker-out: fold ``k`` tests the ``k``-th speaker (sorted by name).

    ``folds`` and ``seed`` are accepted for a uniform signature and ignored:
    there is exactly one fold per speaker and no randomness.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``n_speakers`` pairs ``(train_idx (n_train,), test_idx (n_test,))``.

    Raises
    ------
    ConfigError
        Fewer than two speakers.
    """
    speakers, _ = _columns(table)
    n = len(np.unique(speakers))
    if n < 2:
        raise ConfigError(f"loso needs at least 2 speakers; the table has {n}")
    # LeaveOneGroupOut iterates groups in sorted order, which keeps fold k stable.
    return _as_folds(LeaveOneGroupOut().split(speakers, groups=speakers))


@_protocol(
    "group_kfold",
    speaker_independent=True,
    describe="speaker-independent {folds}-fold (grouped by speaker)",
)
def group_kfold(table: pd.DataFrame, *, folds: int = 5, seed: int = 0) -> list[Fold]:
    """Speaker-independent k-fold: whole speakers per fold, emotions balanced.

    Uses :class:`sklearn.model_selection.StratifiedGroupKFold` (shuffled with
    ``seed``) so each fold's emotion mix is as close as possible to the
    whole table's; falls back to a shuffled :class:`GroupKFold` if that leaves
    a fold without test rows.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``folds`` pairs ``(train_idx (n_train,), test_idx (n_test,))``.

    Raises
    ------
    ConfigError
        ``folds`` < 2 or more folds than speakers.
    """
    speakers, emotions = _columns(table)
    _check_folds(folds, "group_kfold", len(np.unique(speakers)), "speakers")
    with warnings.catch_warnings():
        # Warns when a class has fewer members than folds, which is fine here.
        warnings.simplefilter("ignore", UserWarning)
        out = _as_folds(
            StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
                speakers, emotions, groups=speakers
            )
        )
    if any(len(te) == 0 for _, te in out):
        out = _as_folds(
            GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(speakers, groups=speakers)
        )
    return out


@_protocol(
    "stratified_kfold",
    speaker_independent=False,
    describe="speaker-dependent stratified {folds}-fold (speakers shared between train and test)",
)
def stratified_kfold(table: pd.DataFrame, *, folds: int = 5, seed: int = 0) -> list[Fold]:
    """Speaker-dependent stratified k-fold (shuffled with ``seed``), as in the paper.

    Rows of one recording sequence (column ``sequence``, e.g. the 3 consecutive
    frames CK+48 keeps per sequence) are near-duplicates, so when the table
    has that column they stay on one side of every fold
    (:class:`~sklearn.model_selection.StratifiedGroupKFold` grouped by sequence).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``folds`` pairs ``(train_idx (n_train,), test_idx (n_test,))``.

    Raises
    ------
    ConfigError
        ``folds`` < 2, more folds than samples (or sequences), or more folds
        than the samples of every emotion.
    """
    _, emotions = _columns(table)
    seqs = sequence_groups(table)
    units = len(np.unique(seqs)) if seqs is not None else len(emotions)
    _check_folds(folds, "stratified_kfold", units, "sequences" if seqs is not None else "samples")
    _, counts = np.unique(emotions, return_counts=True)
    if folds > counts.max():
        raise ConfigError(
            f"stratified_kfold with {folds} folds needs an emotion with at least {folds} samples; "
            f"the largest class has {counts.max()}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rare classes: fewer members than folds
        if seqs is not None:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            return _as_folds(splitter.split(emotions, emotions, groups=seqs))
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(emotions, emotions)
        return _as_folds(splits)


@_protocol(
    "official_split",
    speaker_independent=False,
    describe="official train/dev/test split (train+dev fitted, selection on dev, scored on test)",
    tests_all=False,
)
def official_split(table: pd.DataFrame, *, folds: int = 1, seed: int = 0) -> list[Fold]:
    """The corpus's own split (column ``split``: ``train``/``dev``/``test``), as one fold.

    The final model is fitted on train + dev and scored once on test; nested
    selection (:func:`inner_splits`) fits on train and scores on dev.
    ``folds`` and ``seed`` are ignored.

    Raises
    ------
    ConfigError
        No ``split`` column, or no train or test rows.
    """
    if "split" not in table.columns:
        raise ConfigError("protocol official_split needs a 'split' column (train/dev/test), e.g. corpus meld")
    split = table["split"].astype(str).str.lower().to_numpy()
    tr = np.flatnonzero(np.isin(split, ["train", "dev"]))
    te = np.flatnonzero(split == "test")
    if len(tr) == 0 or len(te) == 0:
        raise ConfigError(f"official_split: {len(tr)} train/dev rows and {len(te)} test rows; need both")
    return [(tr, te)]


@_protocol(
    "loco",
    speaker_independent=True,
    describe="leave-one-corpus-out ({folds} corpora tested, closed set over each target's labels)",
    tests_all=False,
    closed_set=True,
)
def loco(
    table: pd.DataFrame, *, folds: int = 5, seed: int = 0, targets: list[str] | None = None
) -> list[Fold]:
    """Leave-one-corpus-out: fold ``k`` tests every row of the ``k``-th target corpus
    (sorted by name) with a model fitted on every row of the other corpora.

    ``folds`` and ``seed`` are ignored (one fold per target, no randomness). Speakers are
    prefixed with their corpus in a multi-corpus table (:mod:`mmfer.data.multi`), so no
    speaker is on both sides either.

    Parameters
    ----------
    targets
        Corpora to test (``eval.loco_targets``); ``None``/empty = every corpus.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``n_targets`` pairs ``(train_idx (n_train,), test_idx (n_test,))``.

    Raises
    ------
    ConfigError
        No ``corpus`` column, fewer than two corpora, or a target not in the table.
    """
    if "corpus" not in table.columns:
        raise ConfigError("protocol loco needs a 'corpus' column")
    corpus = table["corpus"].astype(str).to_numpy()
    names = sorted(set(corpus.tolist()))
    if len(names) < 2:
        raise ConfigError(
            f"protocol loco needs at least 2 corpora in the table; it has {len(names)} "
            f"({', '.join(names)}): add data.sources (e.g. [{{corpus: cremad, root: PATH}}])"
        )
    unknown = [t for t in targets or [] if t not in names]
    if unknown:
        where = ", ".join(names)
        raise ConfigError(f"eval.loco_targets: {unknown[0]!r} is not a corpus of the table ({where})")
    return [
        (np.flatnonzero(corpus != t).astype(np.int64), np.flatnonzero(corpus == t).astype(np.int64))
        for t in sorted(set(targets or names))
    ]


def sequence_groups(table: pd.DataFrame) -> np.ndarray | None:
    """``(n,)`` recording-sequence id per row when the corpus knows it (CK+), else ``None``.

    Rows with an empty sequence cell form their own singleton group.
    """
    if "sequence" not in table.columns:
        return None
    col = table["sequence"]
    if col.isna().all():
        return None
    ids = table["id"].astype(str).to_numpy()
    return np.array(
        [str(s) if isinstance(s, str) and s else f"__row_{i}" for s, i in zip(col, ids, strict=True)]
    )


def inner_splits(
    table: pd.DataFrame,
    train_idx: np.ndarray,
    *,
    speaker_independent: bool,
    folds: int = 3,
    seed: int = 0,
    protocol: str | None = None,
) -> list[Fold]:
    """Splits of an outer *training* fold for nested selection; only ``train_idx`` rows appear.

    Speaker-independent outer protocols get speaker-grouped inner folds (so a
    setting is chosen for its performance on unseen speakers); speaker-dependent
    ones get stratified inner folds that still keep recording sequences whole.

    Parameters
    ----------
    table
        The whole sample table (only rows in ``train_idx`` are used).
    train_idx
        ``(n_train,)`` positional indices of the outer training rows.
    speaker_independent
        Whether the outer protocol is speaker-independent.
    folds
        Inner folds (lowered to the number of groups available, at least 2).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(inner_train_idx, inner_val_idx)``, positional indices into ``table``,
        both subsets of ``train_idx``.

    Raises
    ------
    ConfigError
        Fewer than two groups in the training rows.
    """
    idx = np.asarray(train_idx, dtype=np.int64)
    extra = idx[train_only_mask(table)[idx]]
    if len(extra):
        # train-only rows (data.extra_train) join every inner training part, never a validation one
        inner = inner_splits(
            table,
            idx[~np.isin(idx, extra)],
            speaker_independent=speaker_independent,
            folds=folds,
            seed=seed,
            protocol=protocol,
        )
        return [(np.sort(np.concatenate([tr, extra])), va) for tr, va in inner]
    if protocol == "official_split":
        split = table["split"].astype(str).str.lower().to_numpy()[idx]
        fit, dev = idx[split == "train"], idx[split == "dev"]
        if len(fit) == 0 or len(dev) == 0:
            raise ConfigError("official_split: nested selection needs train and dev rows")
        return [(np.sort(fit), np.sort(dev))]
    speakers, emotions = _columns(table)
    seqs = sequence_groups(table)
    if speaker_independent:
        groups = speakers[idx]
    else:
        groups = seqs[idx] if seqs is not None else np.arange(len(idx)).astype(str)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError(f"nested selection needs at least 2 groups in a training fold; got {n_groups}")
    k = max(2, min(int(folds), n_groups))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parts = list(
            StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
                idx, emotions[idx], groups=groups
            )
        )
    if any(len(va) == 0 for _, va in parts):
        parts = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, groups=groups))
    return [(np.sort(idx[tr]), np.sort(idx[va])) for tr, va in parts]


def make_splits(
    table: pd.DataFrame,
    protocol: str = "loso",
    folds: int = 5,
    seed: int = 0,
    *,
    targets: list[str] | None = None,
) -> list[Fold]:
    """Split ``table`` with a registered protocol and check the result.

    Rows marked ``train_only`` (``data.extra_train``, :func:`train_only_mask`) are left
    out of the split and appended to every fold's training rows: they are never tested.

    Parameters
    ----------
    table
        Sample table (needs ``speaker`` and ``emotion``), ``n`` rows.
    protocol
        Registered splitter name (``loso``, ``group_kfold``, ``stratified_kfold``, ``loco``).
    folds
        Number of folds (ignored by ``loso`` and ``loco``).
    seed
        Shuffling seed.
    targets
        ``loco`` only: the corpora tested (``eval.loco_targets``).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_idx (n_train,), test_idx (n_test,))`` per fold; every row but the
        train-only ones is tested exactly once (``loco`` with targets: every target row).

    Raises
    ------
    ConfigError
        Unknown protocol (the message lists valid names), too few speakers
        or samples for ``folds``, ``targets`` with another protocol than ``loco``.
    """
    splitter = SPLITTERS.get(protocol)
    extra = np.flatnonzero(train_only_mask(table))
    core = np.setdiff1d(np.arange(len(table)), extra)  # (n_core,) rows the protocol splits
    if len(core) == 0:
        raise ConfigError("data.extra_train marks every row train-only; nothing is left to test")
    sub = table.iloc[core].reset_index(drop=True) if len(extra) else table
    if targets and protocol != "loco":
        raise ConfigError(f"eval.loco_targets is for protocol loco only (protocol is {protocol!r})")
    kw: dict[str, Any] = {"targets": list(targets)} if targets else {}
    part: list[Fold] = splitter(sub, folds=folds, seed=seed, **kw)  # type: ignore[assignment]
    out = [(np.sort(np.concatenate([core[tr], extra])).astype(np.int64), core[te]) for tr, te in part]
    tested = np.concatenate([te for _, te in out]) if out else np.array([], dtype=np.int64)
    if getattr(splitter, "tests_all", True) and (
        len(tested) != len(core) or len(np.unique(tested)) != len(core)
    ):
        raise ConfigError(f"protocol {protocol!r} did not test every sample exactly once")
    _check_folds_disjoint(table, protocol, out)
    return out


def train_only_mask(table: pd.DataFrame) -> np.ndarray:
    """``(n,)`` bool: rows that are only ever training rows (column ``train_only``; none if absent)."""
    if "train_only" not in table.columns:
        return np.zeros(len(table), dtype=bool)
    return table["train_only"].fillna(False).astype(bool).to_numpy()


def _check_folds_disjoint(table: pd.DataFrame, protocol: str, out: list[Fold]) -> None:
    """No row, recording sequence, speaker (speaker-independent protocols) or corpus
    (``loco``) on both sides of a fold."""
    for k, (tr, te) in enumerate(out):
        if len(np.intersect1d(tr, te)):
            raise ConfigError(f"protocol {protocol!r} fold {k} has rows in both train and test")
    seqs = sequence_groups(table)
    if seqs is not None:
        for k, (tr, te) in enumerate(out):
            if set(seqs[tr]) & set(seqs[te]):
                raise ConfigError(f"protocol {protocol!r} fold {k} splits a recording sequence")
    checks = [("speaker", is_speaker_independent(protocol)), ("corpus", protocol == "loco")]
    for col, on in checks:
        if not on:
            continue
        values = table[col].astype(str).to_numpy()
        for k, (tr, te) in enumerate(out):
            if set(values[tr]) & set(values[te]):
                raise ConfigError(f"protocol {protocol!r} fold {k} shares a {col} between train and test")


def group_holdout(groups: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold whole groups (speakers) of a training fold out for validation (early stopping).

    The one holdout splitter of mmfer: :class:`~mmfer.estimators.neural.NeuralEstimator`
    uses it on the speakers of its training rows.

    Parameters
    ----------
    groups
        ``(N,)`` group (speaker, sequence ...) of each training row. Rows without a
        grouping are passed as ``np.arange(N)`` (every row its own group).
    fraction
        Share of the groups held out, in ``[0, 1)``. Rounded (half to even), but at
        least one group when ``fraction > 0`` and there are >= 2 groups, and never all
        of them.
    seed
        Seed of the group draw (the groups are sorted first, so the draw depends on
        the seed and the set of groups only, not on the row order).

    Returns
    -------
    fit_idx, val_idx : numpy.ndarray
        Sorted disjoint positional indices into ``groups`` (``int64``, shapes
        ``(n_fit,)`` and ``(n_val,)``) covering every row; no group is on both sides.
        ``val_idx`` is empty when ``fraction == 0``, when there is a single group
        (nothing to hold out without emptying the fit side) and when ``groups`` is
        empty (then ``fit_idx`` is empty too).

    Raises
    ------
    ConfigError
        ``groups`` is None or not one-dimensional, or ``fraction`` is outside ``[0, 1)``.
    """
    if groups is None:
        raise ConfigError("group_holdout needs a groups array; pass np.arange(n) for ungrouped rows")
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ConfigError(f"group_holdout: groups must be one-dimensional (N,), got shape {g.shape}")
    if not 0.0 <= float(fraction) < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1); got {fraction!r}")
    unique = np.unique(g)  # sorted
    n_val = 0
    if fraction > 0 and len(unique) >= 2:
        n_val = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    held = np.random.default_rng(seed).permutation(unique)[:n_val]
    is_val = np.isin(g, held)  # (N,)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def describe_protocol(protocol: str, folds: int = 5) -> str:
    """Human description, e.g. ``"speaker-independent 5-fold (grouped by speaker)"``.

    Raises
    ------
    ConfigError
        Unknown protocol.
    """
    splitter = SPLITTERS.get(protocol)
    text = getattr(splitter, "describe", protocol)
    return text.format(folds=folds)


def is_closed_set(protocol: str) -> bool:
    """Whether folds of ``protocol`` are scored closed set (``loco``): only the labels
    the fold's test rows (the target corpus) have may be predicted, and test rows whose
    label no training row has are not scored (:mod:`mmfer.closedset`).

    Raises
    ------
    ConfigError
        Unknown protocol.
    """
    return bool(getattr(SPLITTERS.get(protocol), "closed_set", False))


def is_speaker_independent(protocol: str) -> bool:
    """Whether the registered splitter ``protocol`` keeps every speaker on one side of each fold.

    Asks the splitter itself (its ``speaker_independent`` attribute). The CV loop records
    the answer in the fold audit when it splits (:attr:`LeakageAudit.speaker_independent`).

    Raises
    ------
    ConfigError
        Unknown protocol.
    """
    return bool(getattr(SPLITTERS.get(protocol), "speaker_independent", False))
