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


def _protocol(name: str, *, speaker_independent: bool, describe: str) -> Callable[[Splitter], Splitter]:
    """Register a splitter and attach what :func:`describe_protocol` and
    :func:`is_speaker_independent` report about it."""

    def deco(fn: Splitter) -> Splitter:
        fn.speaker_independent = speaker_independent  # type: ignore[attr-defined]
        fn.describe = describe  # type: ignore[attr-defined]
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

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``folds`` pairs ``(train_idx (n_train,), test_idx (n_test,))``.

    Raises
    ------
    ConfigError
        ``folds`` < 2, more folds than samples, or more folds than the
        samples of every emotion.
    """
    _, emotions = _columns(table)
    _check_folds(folds, "stratified_kfold", len(emotions), "samples")
    _, counts = np.unique(emotions, return_counts=True)
    if folds > counts.max():
        raise ConfigError(
            f"stratified_kfold with {folds} folds needs an emotion with at least {folds} samples; "
            f"the largest class has {counts.max()}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rare classes: fewer members than folds
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(emotions, emotions)
        return _as_folds(splits)


def make_splits(table: pd.DataFrame, protocol: str = "loso", folds: int = 5, seed: int = 0) -> list[Fold]:
    """Split ``table`` with a registered protocol and check the result.

    Parameters
    ----------
    table
        Sample table (needs ``speaker`` and ``emotion``), ``n`` rows.
    protocol
        Registered splitter name (``loso``, ``group_kfold``, ``stratified_kfold``).
    folds
        Number of folds (ignored by ``loso``).
    seed
        Shuffling seed.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_idx (n_train,), test_idx (n_test,))`` per fold; every row is
        tested exactly once.

    Raises
    ------
    ConfigError
        Unknown protocol (the message lists valid names), too few speakers
        or samples for ``folds``.
    """
    splitter = SPLITTERS.get(protocol)
    out: list[Fold] = splitter(table, folds=folds, seed=seed)  # type: ignore[assignment]
    tested = np.concatenate([te for _, te in out]) if out else np.array([], dtype=np.int64)
    if len(tested) != len(table) or len(np.unique(tested)) != len(table):
        raise ConfigError(f"protocol {protocol!r} did not test every sample exactly once")
    if is_speaker_independent(protocol):
        speakers = table["speaker"].astype(str).to_numpy()
        for k, (tr, te) in enumerate(out):
            if set(speakers[tr]) & set(speakers[te]):
                raise ConfigError(f"protocol {protocol!r} fold {k} shares speakers between train and test")
    return out


def speaker_holdout(
    table: pd.DataFrame,
    train_idx: np.ndarray | None = None,
    fraction: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Take whole speakers out of a training fold for validation (early stopping).

    Parameters
    ----------
    table
        Sample table with a ``speaker`` column.
    train_idx
        Positional indices of the training fold, shape ``(n_train,)``;
        ``None`` means every row.
    fraction
        Share of the fold's speakers held out, in ``[0, 1)``. Rounded, but at
        least one speaker when ``fraction > 0`` and the fold has >= 2
        speakers, and never all of them.
    seed
        Seed of the speaker draw.

    Returns
    -------
    fit_idx, val_idx : numpy.ndarray
        Sorted disjoint subsets of ``train_idx`` (shapes ``(n_fit,)`` and
        ``(n_val,)``); no speaker is in both. ``val_idx`` is empty when
        ``fraction == 0`` or the fold has a single speaker.

    Raises
    ------
    ConfigError
        ``fraction`` outside ``[0, 1)``.
    """
    if not 0.0 <= float(fraction) < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1); got {fraction!r}")
    idx = np.arange(len(table)) if train_idx is None else np.asarray(train_idx, dtype=np.int64)
    speakers = table["speaker"].astype(str).to_numpy()[idx]
    unique = np.unique(speakers)  # sorted, so the draw depends on the seed only
    n_val = 0
    if fraction > 0 and len(unique) >= 2:
        n_val = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    held = np.random.default_rng(seed).permutation(unique)[:n_val]
    is_val = np.isin(speakers, held)
    return np.sort(idx[~is_val]), np.sort(idx[is_val])


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


def is_speaker_independent(protocol: str) -> bool:
    """Whether ``protocol`` keeps every speaker on one side of each fold.

    Raises
    ------
    ConfigError
        Unknown protocol.
    """
    return bool(getattr(SPLITTERS.get(protocol), "speaker_independent", False))
