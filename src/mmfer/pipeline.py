"""Glue from a config to results: corpus -> features -> folds -> models -> report.

Every function takes only the config sections it needs. The fold loop is the
one place where fitting happens, and it fits only on training rows: the Fuser
(TF-IDF vocabulary, standardisers) and the model never see a test sample
(:mod:`mmfer.evaluation.verify` checks this by intervention).

:func:`cross_validate` = :func:`prepare_cv` + :func:`run_fold` per outer fold:
:func:`fit_fold` (nested selection, then the fit on all training rows), the
optional ``on_fold_fit(fold, settings, recognizer)`` hook, then
:func:`predict_fold` (speaker-normalisation condition, enrolment rows left out of
scoring). :class:`~mmfer.recognizer.Recognizer` lives in :mod:`mmfer.recognizer`
(re-exported here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.augmented_rows import with_augmented
from mmfer.closedset import closed_set_predict, fold_metrics
from mmfer.config import (
    MODALITIES,
    DataConfig,
    ExperimentConfig,
    FeatureConfig,
    FusionConfig,
    ModelConfig,
    TextConfig,
    TrainConfig,
    to_dict,
)
from mmfer.data.balance import balanced_rows, pretrain_flags
from mmfer.emotions import label_order
from mmfer.epoch_selection import EpochScorer, selects_epochs
from mmfer.errors import ConfigError
from mmfer.estimators import Estimator
from mmfer.estimators.neural import NeuralEstimator
from mmfer.estimators.selection import Selection
from mmfer.evaluation.audit import FitRecord, LeakageAudit
from mmfer.folds import FROZEN_COMPONENTS, CVSetup, FoldResult, OnFoldFit, fold_audit, run_result
from mmfer.fusion import Fuser
from mmfer.recognizer import Recognizer
from mmfer.tuning import accuracy_on, base_model, fold_configs, score_on

if TYPE_CHECKING:
    from mmfer.evaluation.results import RunResult

__all__ = [
    "FROZEN_COMPONENTS",
    "CVSetup",
    "FitOutcome",
    "FoldResult",
    "OnFoldFit",
    "Recognizer",
    "accuracy_on",
    "available_modalities",
    "cache_dir_for",
    "cross_validate",
    "extract",
    "fit_fold",
    "fit_fuser",
    "fit_recognizer",
    "fit_rows",
    "load_corpus",
    "make_estimator",
    "media_hash",
    "modality_subsets",
    "predict_fold",
    "prepare_cv",
    "run_fold",
    "search_space",
    "select_settings",
]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- corpus


def load_corpus(cfg: DataConfig) -> pd.DataFrame:
    """Build the sample table of ``cfg.corpus`` and ``cfg.sources`` (:mod:`mmfer.data.multi`)."""
    from mmfer.data.multi import load_tables

    return load_tables(cfg)


def cache_dir_for(cfg: ExperimentConfig) -> Path:
    return Path(cfg.features.cache_dir or Path(cfg.output_dir) / "cache")


def extract(
    table: pd.DataFrame,
    cfg: FeatureConfig,
    cache_dir: str | Path,
    modalities: list[str],
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-sample features for ``modalities`` (cached).

    See :func:`mmfer.features.extract.extract_features`.
    """
    from mmfer.features.extract import extract_features
    from mmfer.features.words.dialogue import attach_dialogue_context

    feats = extract_features(table, cfg, cache_dir, modalities=tuple(modalities), progress=progress)
    attach_dialogue_context(table, feats)  # earlier utterances of a dialogue (MELD); else a no-op
    return feats


# ----------------------------------------------------------------------------- estimators


def make_estimator(name: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Estimator:
    """The registered estimator ``name`` with its fixed settings taken from the config.

    Neural estimators start from ``model_cfg`` + ``train_cfg`` (progress bars off);
    the scikit-learn baselines from their own defaults (seeded with ``train_cfg.seed``).
    """
    from mmfer.estimators import create_estimator

    est = create_estimator(base_model(name))  # a variant "<estimator>@<tag>" is its estimator
    base_name = getattr(est, "base_name", None)
    if base_name is not None:
        # late fusion: the per-modality heads take the fixed settings of their base estimator
        return est.clone(**make_estimator(base_name, model_cfg, train_cfg).params)
    if isinstance(est, NeuralEstimator):
        m = {k: v for k, v in to_dict(model_cfg).items() if k != "name"}
        return est.clone(**m, **to_dict(replace(train_cfg, progress=False)))
    fixed = {k: v for k, v in (("seed", train_cfg.seed), ("threads", train_cfg.threads)) if k in est.params}
    return est.clone(**fixed)


def search_space(est: Estimator, overrides: dict[str, Any], name: str | None = None) -> dict[str, list[Any]]:
    """The declared search space of ``est``, or the one ``eval.search`` gives for its model
    name ``name`` (a variant ``logreg@context``), its estimator name, or ``neural`` for every
    network; ``eval.search.all`` (fuser settings, e.g. ``fusion.audio_layers``) is added to
    every model's space. ``text.``/``fusion.`` keys are fuser settings (:mod:`mmfer.tuning`)."""
    neural = isinstance(getattr(est, "base_estimator", est), NeuralEstimator)  # late_<neural> too
    keys = [k for k in (name, est.name, "neural" if neural else None) if k is not None and k in overrides]
    # "all": fuser settings searched for every model on top of its own space (same for each)
    spaces = [(k, overrides[k]) for k in keys[:1] + (["all"] if "all" in overrides else [])]
    merged: dict[str, list[Any]] = {} if keys else dict(est.search_space)
    for key, space in spaces:
        if not isinstance(space, dict) or not all(isinstance(v, list) for v in space.values()):
            raise ConfigError(f"eval.search.{key}: expected a mapping of parameter -> list of values")
        first_est, _, _ = fold_configs({k: v[0] for k, v in space.items() if v}, TextConfig(), FusionConfig())
        est.clone(**first_est)  # unknown parameter -> ConfigError now
        merged.update({k: list(v) for k, v in space.items()})
    return merged


# ----------------------------------------------------------------------------- one fold


@dataclass
class FitOutcome:
    recognizer: Recognizer
    history: list[dict[str, Any]]
    train_seconds: float
    fit_ids: list[str]


def fit_fuser(
    table: pd.DataFrame,
    feats: dict[str, Any],
    rows: np.ndarray,
    *,
    fusion_cfg: FusionConfig,
    text_cfg: TextConfig,
) -> Fuser:
    """A fresh Fuser fitted on ``rows`` only (``(n,)`` positional indices); ``fitted_on_`` = their ids."""
    ids = table["id"].astype(str).to_numpy()[rows]
    speakers = table["speaker"].astype(str).to_numpy()[rows]
    return Fuser(fusion_cfg, text_cfg).fit([feats[i] for i in ids], speakers=speakers, ids=ids)


def fit_rows(
    table: pd.DataFrame,
    feats: dict[str, Any],
    rows: np.ndarray,
    *,
    labels: list[str],
    estimator: Estimator,
    fusion_cfg: FusionConfig,
    text_cfg: TextConfig,
    features_cfg: FeatureConfig,
    records: list[FitRecord] | None = None,
    fold: int = 0,
    stage: str = "",
    before_fit: Callable[[Fuser, Estimator], None] | None = None,
) -> Recognizer:
    """Fit a fresh Fuser (:func:`fit_fuser`) and a clone of ``estimator`` on ``rows`` only.

    Parameters
    ----------
    rows
        ``(n,)`` positional indices of the rows to fit on; nothing else is read.
    records
        If given, one :class:`~mmfer.evaluation.audit.FitRecord` per fitted
        component is appended (with the ids it saw), for the leakage audit.
    fold, stage
        Outer fold index and a prefix such as ``"inner "`` for those records.
    before_fit
        Called with the fitted Fuser and the estimator clone just before it is fitted.
    """
    rows = balanced_rows(table, rows)  # data.corpus_balance: smaller corpora repeated (else as given)
    ids = table["id"].astype(str).to_numpy()[rows]
    y = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()[rows].astype(np.int64)
    speakers = table["speaker"].astype(str).to_numpy()[rows]
    raw = list(dict.fromkeys([*fusion_cfg.raw, *estimator.raw_modalities]))  # e.g. fer2013_ft's pixels
    fuser = fit_fuser(table, feats, rows, fusion_cfg=replace(fusion_cfg, raw=raw), text_cfg=text_cfg)
    fused = fuser.transform([feats[i] for i in ids], speakers=speakers)  # x (n, T, F), mask (n, T)
    fused, y, speakers, ids = with_augmented(fuser, feats, fused, ids, y, speakers, features_cfg)  # + copies
    est = estimator.clone().set_layout(fuser.layout())  # late fusion / modality dropout read it
    if hasattr(estimator, "out_dir"):
        est.out_dir = estimator.out_dir  # type: ignore[attr-defined]
    if before_fit is not None:
        before_fit(fuser, est)  # e.g. the inner epoch scorer's hook (mmfer/epoch_selection.py)
    pre = pretrain_flags(table, ids)  # train-only corpus rows: what train.pretrain_epochs pretrains on
    est.fit(fused.x, fused.mask, y, num_classes=len(labels), groups=speakers, ids=ids, pretrain=pre)
    if records is not None:
        records.append(FitRecord(fold, f"{stage}fuser (TF-IDF, standardisers)", fuser.fitted_on_))
        if fuser.cfg.speaker_norm:
            comp = f"{stage}per-speaker statistics (training speakers)"
            records.append(FitRecord(fold, comp, fuser.fitted_on_, label_free=True))
        records.append(FitRecord(fold, f"{stage}estimator {est.name}", est.fitted_on_))
    return Recognizer(fuser=fuser, estimator=est, labels=labels, features_cfg=features_cfg)


def fit_recognizer(
    table: pd.DataFrame,
    feats: dict[str, Any],
    train_idx: np.ndarray,
    *,
    labels: list[str],
    model_cfg: ModelConfig,
    fusion_cfg: FusionConfig,
    text_cfg: TextConfig,
    train_cfg: TrainConfig,
    features_cfg: FeatureConfig,
    speaker_independent: bool = True,
    out_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
) -> FitOutcome:
    """Fit fuser and the estimator ``model_cfg.name`` on ``train_idx`` rows.

    Settings come from the configs, with ``params`` (e.g. chosen by
    :func:`select_settings`) on top. A neural estimator holds out whole
    training speakers for early stopping when ``train_cfg.patience`` and
    ``train_cfg.val_fraction`` are set.
    """
    t0 = time.perf_counter()
    est_params, text_cfg, fusion_cfg = fold_configs(params or {}, text_cfg, fusion_cfg)
    est = make_estimator(model_cfg.name, model_cfg, train_cfg).clone(**est_params)
    if hasattr(est, "out_dir"):
        est.out_dir = out_dir  # type: ignore[attr-defined]
    rec = fit_rows(
        table,
        feats,
        np.asarray(train_idx),
        labels=labels,
        estimator=est,
        fusion_cfg=fusion_cfg,
        text_cfg=text_cfg,
        features_cfg=features_cfg,
    )
    history = list(getattr(rec.estimator, "history", []))
    ids = table["id"].astype(str).to_numpy()[np.asarray(train_idx)]
    return FitOutcome(rec, history, time.perf_counter() - t0, list(ids))


def select_settings(
    table: pd.DataFrame,
    feats: dict[str, Any],
    train_idx: np.ndarray,
    *,
    estimator: Estimator,
    cfg: ExperimentConfig,
    labels: list[str],
    fusion_cfg: FusionConfig,
    protocol: str,
    records: list[FitRecord] | None = None,
    fold: int = 0,
    name: str | None = None,
) -> Selection:
    """Nested selection inside one outer training fold.

    Candidates come from the estimator's search space (``eval.select_budget`` of
    them, the same number for every estimator); each is fitted on the inner
    training rows and scored on the inner validation rows of
    :func:`mmfer.data.splits.inner_splits`, which are all drawn from
    ``train_idx``; the outer test rows are never passed in. Candidates are scored
    with ``eval.headline_metric``; ``text.*`` settings go to the fold's Fuser. A network's
    epoch count comes from per-epoch inner scores (:mod:`mmfer.epoch_selection`).
    """
    from mmfer.data.splits import inner_splits, is_speaker_independent
    from mmfer.estimators.selection import candidate_grid, select

    space = search_space(estimator, cfg.eval.search, name)
    # Each model draws with its own seed (and each fold anew), so models with the same space
    # do not all try the same settings; the budget is the same for every model.
    cands = candidate_grid(space, cfg.eval.select_budget, seed=cfg.eval.seed + fold, model=estimator.name)
    if len(cands) <= 1 and not selects_epochs(estimator, cfg):
        return select(cands, lambda p: 0.0)
    inner = inner_splits(
        table,
        train_idx,
        speaker_independent=is_speaker_independent(protocol),
        folds=cfg.eval.inner_folds,
        seed=cfg.eval.seed + fold,
        protocol=protocol,
    )
    if selects_epochs(estimator, cfg):
        scorer = EpochScorer(table, feats, inner, estimator, cfg, labels, fusion_cfg, fit_rows, records, fold)
        return scorer.finish(select(cands, scorer))

    def score(params: dict[str, Any]) -> float:
        accs = []
        est_params, text_cfg, cand_fusion = fold_configs(params, cfg.features.text, fusion_cfg)
        for itr, iva in inner:
            rec = fit_rows(
                table,
                feats,
                itr,
                labels=labels,
                estimator=estimator.clone(**est_params),
                fusion_cfg=cand_fusion,
                text_cfg=text_cfg,
                features_cfg=cfg.features,
                records=records,
                fold=fold,
                stage="inner ",
            )
            accs.append(score_on(rec, table, feats, iva, cfg.eval.headline_metric))
        return float(np.mean(accs))

    sel = select(cands, score)
    sel.inner_folds = len(inner)
    return sel


# ----------------------------------------------------------------------------- cross-validation


def media_hash(row: dict[str, Any]) -> str | None:
    """Content hash of a sample's first media file (to find duplicate clips across splits).

    Uses the feature cache's memoised digest, so files already hashed during
    extraction are not read again.
    """
    from mmfer.features.cache import file_digest

    for col in ("video", "audio", "image"):
        p = row.get(col)
        # pandas may hand back NaN instead of None for an empty cell
        if isinstance(p, str) and p and Path(p).is_file():
            return file_digest(p)
    return None


def prepare_cv(
    table: pd.DataFrame,
    feats: dict[str, Any],
    cfg: ExperimentConfig,
    *,
    model_name: str,
    modalities: list[str],
    protocol: str | None = None,
) -> tuple[CVSetup, list[tuple[np.ndarray, np.ndarray]]]:
    """The shared fold context and the outer ``(train_idx, test_idx)`` splits of ``protocol``."""
    from mmfer.data.splits import is_speaker_independent, make_splits
    from mmfer.fusion.enrol import norm_condition

    protocol = protocol or cfg.eval.protocol
    splits = make_splits(table, protocol, cfg.eval.folds, cfg.eval.seed, targets=cfg.eval.loco_targets)
    setup = CVSetup(
        table=table,
        cfg=cfg,
        model_name=model_name,
        modalities=list(modalities),
        protocol=protocol,
        labels=label_order(set(table["emotion"])),
        fusion_cfg=replace(cfg.fusion, modalities=list(modalities)),
        base=make_estimator(model_name, cfg.model, cfg.train),
        condition=norm_condition(cfg.fusion, announce=True),
        speaker_independent=is_speaker_independent(protocol),
    )
    if cfg.eval.unusable == "count_wrong":
        from mmfer.features.summary import unusable_samples

        ids = setup.ids
        setup.unusable = set(unusable_samples({i: feats[i] for i in ids})) & set(ids.tolist())
    return setup, splits


def fit_fold(
    setup: CVSetup, feats: dict[str, Any], fold: int, train_idx: np.ndarray, records: list[FitRecord]
) -> tuple[dict[str, Any], Recognizer, float, float]:
    """Choose the settings of one outer fold on its training rows, then fit on all of them.

    Returns
    -------
    tuple
        ``(settings, recognizer, select_seconds, fit_seconds)``; ``settings`` is
        ``{"params": {...}}`` plus, with ``eval.select``, ``inner_accuracy``,
        ``candidates`` and ``inner_folds``.
    """
    cfg, t0 = setup.cfg, time.perf_counter()
    settings: dict[str, Any] = {"params": {}}
    est, text_cfg, fusion_cfg = setup.base, cfg.features.text, setup.fusion_cfg
    if cfg.eval.select:
        sel = select_settings(
            setup.table,
            feats,
            train_idx,
            estimator=setup.base,
            cfg=cfg,
            labels=setup.labels,
            fusion_cfg=fusion_cfg,
            protocol=setup.protocol,
            records=records,
            fold=fold,
            name=setup.model_name,
        )
        est_params, text_cfg, fusion_cfg = fold_configs(sel.params, cfg.features.text, setup.fusion_cfg)
        est = setup.base.clone(**est_params)
        settings = {
            "params": sel.params,
            "inner_accuracy": sel.best_score,
            "candidates": len(sel.candidates),
            "tried": sel.tried,
            "space_size": sel.space_size,
            "inner_folds": sel.inner_folds,
        }
    t1 = time.perf_counter()
    rec = fit_rows(
        setup.table,
        feats,
        train_idx,
        labels=setup.labels,
        estimator=est,
        fusion_cfg=fusion_cfg,
        text_cfg=text_cfg,
        features_cfg=cfg.features,
        records=records,
        fold=fold,
    )
    return settings, rec, t1 - t0, time.perf_counter() - t1


def predict_fold(
    setup: CVSetup,
    feats: dict[str, Any],
    rec: Recognizer,
    fold: int,
    test_idx: np.ndarray,
    records: list[FitRecord],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict one fold's test rows under the speaker-normalisation condition.

    Enrolment conditions first take each test speaker's enrolment clips
    (:func:`mmfer.fusion.enrol.enrolment_rows`), compute its statistics from them
    only and drop them from scoring; ``transductive`` normalises each test speaker
    with all its test clips. What the test speakers' statistics came from is recorded.

    Returns
    -------
    tuple
        ``(scored_rows (n,), enrol_rows (m,), pred (n,))``.
    """
    from mmfer.fusion.enrol import enrolment_rows, enrolment_statistics

    ids, spk = setup.ids, setup.speakers
    k = setup.fusion_cfg.enrol_k
    enrol = enrolment_rows(setup.table, test_idx, setup.condition, k, seed=setup.cfg.eval.seed + fold)
    test_idx = np.asarray(test_idx)
    scored = test_idx[~np.isin(test_idx, enrol)]  # the fold's order kept
    stats = None
    if len(enrol):
        stats = enrolment_statistics(rec.fuser, [feats[i] for i in ids[enrol]], spk[enrol].tolist())
    if setup.condition != "none":
        used = ids[enrol] if setup.condition != "transductive" else ids[scored]
        comp = f"per-speaker statistics (test speakers, {setup.condition})"
        records.append(FitRecord(fold, comp, frozenset(used.tolist()), label_free=True))
    proba = rec.predict_proba([feats[i] for i in ids[scored]], speakers=spk[scored].tolist(), stats=stats)
    scored, pred = closed_set_predict(setup, rec, test_idx, scored, proba)  # loco: target labels only
    if setup.unusable:
        # a sample with no evidence left is scored as an error (a conservative choice)
        dead = np.isin(ids[scored], list(setup.unusable))
        pred[dead] = (setup.y[scored][dead] + 1) % len(setup.labels)
    return scored, enrol, pred


def run_fold(
    setup: CVSetup,
    feats: dict[str, Any],
    fold: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    on_fold_fit: OnFoldFit | None = None,
    score: bool = True,
) -> FoldResult | None:
    """One outer fold: select and fit on ``train_idx``, call ``on_fold_fit``, score ``test_idx``.

    ``feats`` may differ from fold to fold (:mod:`mmfer.evaluation.verify` perturbs the
    test rows of one fold at a time). With ``score=False`` the fold stops after the hook
    (nothing is predicted) and None is returned.
    """
    records: list[FitRecord] = []
    settings, rec, select_s, fit_s = fit_fold(setup, feats, fold, train_idx, records)
    if on_fold_fit is not None:
        on_fold_fit(fold, settings, rec)
    if not score:
        return None
    t0 = time.perf_counter()
    scored, enrol, pred = predict_fold(setup, feats, rec, fold, test_idx, records)
    test_s = time.perf_counter() - t0
    metrics = fold_metrics(setup, test_idx, scored, enrol, pred)  # closed set under loco
    selected = settings if setup.cfg.eval.select else None
    history = list(getattr(rec.estimator, "history", []))
    return FoldResult(fold, scored, enrol, pred, metrics, selected, select_s, fit_s, test_s, history, records)


def cross_validate(
    table: pd.DataFrame,
    feats: dict[str, Any],
    cfg: ExperimentConfig,
    *,
    model_name: str,
    modalities: list[str],
    protocol: str | None = None,
    hashes: list[str | None] | None = None,
    on_fold_fit: OnFoldFit | None = None,
) -> tuple[RunResult, LeakageAudit]:
    """Run one estimator on one modality subset over every fold of ``protocol``.

    With ``eval.select`` (the default) the settings of each fold are chosen by
    :func:`select_settings` on inner splits of that fold's training rows;
    otherwise the fixed settings of the config are used (and the report says so).
    Each fold is :func:`run_fold`; ``on_fold_fit(fold, settings, recognizer)`` is
    called after a fold's model is fitted, before its test rows are predicted.
    """
    from mmfer.progress import Heartbeat

    setup, splits = prepare_cv(
        table, feats, cfg, model_name=model_name, modalities=modalities, protocol=protocol
    )
    beat = Heartbeat(len(splits), f"cv {model_name} {'+'.join(modalities)}")
    folds: list[FoldResult] = []
    for k, (tr, te) in enumerate(splits):
        res = run_fold(setup, feats, k, tr, te, on_fold_fit=on_fold_fit)
        assert res is not None
        folds.append(res)
        acc = float(res.metrics["accuracy"])
        beat.tick(acc=round(acc, 4))
        params = res.selected["params"] if res.selected else {}
        log.info(
            "%s %s fold %d/%d acc=%.3f%s (select %.0fs, fit %.0fs)",
            model_name,
            "+".join(modalities),
            k + 1,
            len(splits),
            acc,
            f" {params}" if params else "",
            res.select_seconds,
            res.train_seconds,
        )
    return run_result(setup, splits, folds), fold_audit(setup, splits, folds, hashes)


def available_modalities(table: pd.DataFrame, feats: dict[str, Any]) -> list[str]:
    """Modalities that at least one sample actually has features for."""
    have = []
    for m in MODALITIES:
        if any(getattr(feats[i], m) is not None for i in table["id"]):
            have.append(m)
    return have


def modality_subsets(mods: list[str]) -> list[tuple[str, ...]]:
    """Singles, pairs, then all (Tables 1-2 order)."""
    from itertools import combinations

    out: list[tuple[str, ...]] = []
    for r in range(1, len(mods) + 1):
        out += list(combinations(mods, r))
    return out
