"""Glue from a config to results: corpus -> features -> folds -> models -> report.

Every function takes only the config sections it needs. The fold loop is the
one place where fitting happens, and it fits only on training rows: the Fuser
(TF-IDF vocabulary, standardisers) and the model never see a test sample.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from mmfer.config import (
    MODALITIES,
    DataConfig,
    ExperimentConfig,
    FeatureConfig,
    FusionConfig,
    ModelConfig,
    TextConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from mmfer.emotions import label_order
from mmfer.errors import ConfigError, DataError
from mmfer.estimators import Estimator
from mmfer.estimators.neural import NeuralEstimator
from mmfer.estimators.selection import Selection
from mmfer.evaluation.audit import FitRecord, LeakageAudit
from mmfer.fusion import Fuser

if TYPE_CHECKING:
    from mmfer.evaluation.results import RunResult

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- corpus


def load_corpus(cfg: DataConfig) -> pd.DataFrame:
    """Build the sample table of ``cfg.corpus`` (filtered to ``cfg.emotions``)."""
    from mmfer.data.corpora import load_corpus as _load

    if cfg.corpus == "synthetic":
        opts = {
            "speakers": cfg.synthetic_speakers,
            "clips_per_emotion": cfg.synthetic_clips_per_emotion,
            "seed": cfg.synthetic_seed,
        }
        return _load("synthetic", cfg.root, emotions=cfg.emotions, **opts, **cfg.options)
    if not cfg.root:
        raise ConfigError(f"data.root: corpus {cfg.corpus!r} needs a root folder (data.root=PATH)")
    return _load(cfg.corpus, cfg.root, emotions=cfg.emotions, **cfg.options)


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

    return extract_features(table, cfg, cache_dir, modalities=tuple(modalities), progress=progress)


# ----------------------------------------------------------------------------- recogniser


@dataclass
class Recognizer:
    """A fitted fuser + estimator + label set: everything prediction needs.

    Saved as one safetensors file whose metadata carries the configs, labels,
    the estimator's name and parameters, and the fuser state (TF-IDF
    vocabulary, standardisers) as JSON; loading never unpickles anything.
    """

    fuser: Fuser
    estimator: Estimator
    labels: list[str]
    features_cfg: FeatureConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.fuser.modalities

    @property
    def model(self) -> torch.nn.Module:
        """The network of a neural estimator (ONNX export, benchmarks)."""
        module = getattr(self.estimator, "module", None)
        if module is None:
            raise ConfigError(f"{self.estimator.name} is not a neural network (no torch module to use)")
        return module

    @property
    def model_cfg(self) -> ModelConfig:
        """Model config of a neural estimator; for other estimators only ``name`` is meaningful."""
        cfg = getattr(self.estimator, "model_cfg", None)
        return cfg if cfg is not None else ModelConfig(name=self.estimator.name)

    def predict_proba(
        self, feats: list[Any], *, speakers: list[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Class probabilities ``(N, C)`` for per-sample features.

        ``speakers`` (one id per sample) is needed when the fuser normalises per
        speaker: each speaker is normalised with statistics of its own given clips.
        """
        fused = self.fuser.transform(feats, speakers=speakers)
        return self.estimator.predict_proba(fused.x, fused.mask)

    def save(self, path: str | Path) -> Path:
        from mmfer.training.checkpoint import save_checkpoint

        tensors, meta = self.to_state()
        save_checkpoint(path, tensors, meta)
        return Path(path)

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of the checkpoint (also embedded in composed models)."""
        arrays, est_meta = self.estimator.state()
        neural = isinstance(self.estimator, NeuralEstimator)
        meta = {
            "format": "mmfer-recognizer/1",
            "labels": self.labels,
            "model": to_dict(self.model_cfg),
            "estimator": {
                "name": self.estimator.name,
                "neural": neural,
                "params": self.estimator.get_params(),
                "state": est_meta,
            },
            "features": to_dict(self.features_cfg),
            "fuser": self.fuser.get_state(),
            "in_features": self.fuser.n_features,
            "extra": self.extra,
        }
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return tensors, meta

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        from mmfer.training.checkpoint import load_checkpoint

        tensors, meta = load_checkpoint(path)
        return cls.from_state(tensors, meta, path)

    @classmethod
    def from_state(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: str | Path | None = None
    ) -> Recognizer:
        """Inverse of :meth:`to_state`; ``path`` is named in errors."""
        from mmfer.estimators import create_estimator
        from mmfer.models import create_model

        if meta.get("format") != "mmfer-recognizer/1":
            raise DataError(path, "not an mmfer model checkpoint (train one with `mmfer train`)")
        labels = list(meta["labels"])
        est_meta = meta.get("estimator") or {"neural": True, "params": {}}
        estimator: Estimator
        if est_meta.get("neural", True):
            model_cfg = from_dict(ModelConfig, meta["model"])
            model = create_model(
                model_cfg.name, in_features=int(meta["in_features"]), num_classes=len(labels), cfg=model_cfg
            )
            model.load_state_dict(tensors)
            params = {k: v for k, v in to_dict(model_cfg).items() if k != "name"}
            params |= {k: v for k, v in est_meta.get("params", {}).items() if k not in params}
            estimator = NeuralEstimator(model_cfg.name, **params).load_module(model, len(labels))
        else:
            estimator = create_estimator(est_meta["name"], **est_meta.get("params", {}))
            arrays = {k: v.numpy() for k, v in tensors.items()}
            estimator.load_state(arrays, est_meta.get("state", {}))
        return cls(
            fuser=Fuser.from_state(meta["fuser"]),
            estimator=estimator,
            labels=labels,
            features_cfg=from_dict(FeatureConfig, meta["features"]),
            extra=meta.get("extra", {}),
        )


# ----------------------------------------------------------------------------- estimators


def make_estimator(name: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Estimator:
    """The registered estimator ``name`` with its fixed settings taken from the config.

    Neural estimators start from ``model_cfg`` + ``train_cfg`` (progress bars off);
    the scikit-learn baselines from their own defaults (seeded with ``train_cfg.seed``).
    """
    from mmfer.estimators import create_estimator

    est = create_estimator(name)
    base_name = getattr(est, "base_name", None)
    if base_name is not None:
        # late fusion: the per-modality heads take the fixed settings of their base estimator
        return est.clone(**make_estimator(base_name, model_cfg, train_cfg).params)
    if isinstance(est, NeuralEstimator):
        m = {k: v for k, v in to_dict(model_cfg).items() if k != "name"}
        return est.clone(**m, **to_dict(replace(train_cfg, progress=False)))
    fixed = {k: v for k, v in (("seed", train_cfg.seed), ("threads", train_cfg.threads)) if k in est.params}
    return est.clone(**fixed)


def search_space(est: Estimator, overrides: dict[str, Any]) -> dict[str, list[Any]]:
    """The declared search space of ``est``, or the one ``eval.search`` gives for its name
    (key = estimator name, or ``neural`` for every network)."""
    neural = isinstance(getattr(est, "base_estimator", est), NeuralEstimator)  # late_<neural> too
    key = est.name if est.name in overrides else ("neural" if neural else None)
    if key is not None and key in overrides:
        space = overrides[key]
        if not isinstance(space, dict) or not all(isinstance(v, list) for v in space.values()):
            raise ConfigError(f"eval.search.{key}: expected a mapping of parameter -> list of values")
        est.clone(**{k: v[0] for k, v in space.items() if v})  # unknown parameter -> ConfigError now
        return {k: list(v) for k, v in space.items()}
    return dict(est.search_space)


# ----------------------------------------------------------------------------- one fold


@dataclass
class FitOutcome:
    recognizer: Recognizer
    history: list[dict[str, Any]]
    train_seconds: float
    fit_ids: list[str]


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
) -> Recognizer:
    """Fit a fresh Fuser and a clone of ``estimator`` on ``rows`` only.

    Parameters
    ----------
    rows
        ``(n,)`` positional indices of the rows to fit on; nothing else is read.
    records
        If given, one :class:`~mmfer.evaluation.audit.FitRecord` per fitted
        component is appended (with the ids it saw), for the leakage audit.
    fold, stage
        Outer fold index and a prefix such as ``"inner "`` for those records.
    """
    ids = table["id"].astype(str).to_numpy()[rows]
    y = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()[rows].astype(np.int64)
    speakers = table["speaker"].astype(str).to_numpy()[rows]
    rows_feats = [feats[i] for i in ids]
    fuser = Fuser(fusion_cfg, text_cfg).fit(rows_feats, speakers=speakers, ids=ids)
    fused = fuser.transform(rows_feats, speakers=speakers)  # x (n, T, F), mask (n, T)
    est = estimator.clone().set_layout(fuser.layout())  # late fusion / modality dropout read it
    if hasattr(estimator, "out_dir"):
        est.out_dir = estimator.out_dir  # type: ignore[attr-defined]
    est.fit(fused.x, fused.mask, y, num_classes=len(labels), groups=speakers, ids=ids)
    if records is not None:
        records.append(FitRecord(fold, f"{stage}fuser (TF-IDF, standardisers)", fuser.fitted_on_))
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
    est = make_estimator(model_cfg.name, model_cfg, train_cfg).clone(**(params or {}))
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


def accuracy_on(rec: Recognizer, table: pd.DataFrame, feats: dict[str, Any], rows: np.ndarray) -> float:
    """Accuracy of a fitted recogniser on ``rows``."""
    ids = table["id"].astype(str).to_numpy()[rows]
    y = table["emotion"].map({e: i for i, e in enumerate(rec.labels)}).to_numpy()[rows]
    speakers = table["speaker"].astype(str).tolist()
    pred = rec.predict_proba([feats[i] for i in ids], speakers=[speakers[i] for i in rows]).argmax(axis=1)
    return float(np.mean(pred == y))


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
) -> Selection:
    """Nested selection inside one outer training fold.

    Candidates come from the estimator's search space (``eval.select_budget`` of
    them, the same number for every estimator); each is fitted on the inner
    training rows and scored on the inner validation rows of
    :func:`mmfer.data.splits.inner_splits`, which are all drawn from
    ``train_idx``. The outer test rows are never passed in.
    """
    from mmfer.data.splits import inner_splits, is_speaker_independent
    from mmfer.estimators.selection import candidate_grid, select

    space = search_space(estimator, cfg.eval.search)
    cands = candidate_grid(space, cfg.eval.select_budget, seed=cfg.eval.seed)
    if len(cands) <= 1:
        return select(cands, lambda p: 0.0)
    inner = inner_splits(
        table,
        train_idx,
        speaker_independent=is_speaker_independent(protocol),
        folds=cfg.eval.inner_folds,
        seed=cfg.eval.seed + fold,
        protocol=protocol,
    )

    def score(params: dict[str, Any]) -> float:
        accs = []
        for itr, iva in inner:
            rec = fit_rows(
                table,
                feats,
                itr,
                labels=labels,
                estimator=estimator.clone(**params),
                fusion_cfg=fusion_cfg,
                text_cfg=cfg.features.text,
                features_cfg=cfg.features,
                records=records,
                fold=fold,
                stage="inner ",
            )
            accs.append(accuracy_on(rec, table, feats, iva))
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


#: Parts of the default and paper feature stacks that are never fitted on any fold.
FROZEN_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("face encoder", "pretrained, frozen (not fitted on any fold)"),
    ("voice encoder / MFCC", "pretrained or stateless (not fitted on any fold)"),
)


def cross_validate(
    table: pd.DataFrame,
    feats: dict[str, Any],
    cfg: ExperimentConfig,
    *,
    model_name: str,
    modalities: list[str],
    protocol: str | None = None,
    hashes: list[str | None] | None = None,
) -> tuple[RunResult, LeakageAudit]:
    """Run one estimator on one modality subset over every fold of ``protocol``.

    With ``eval.select`` (the default) the settings of each fold are chosen by
    :func:`select_settings` on inner splits of that fold's training rows;
    otherwise the fixed settings of the config are used (and the report says so).
    """
    from mmfer.data.splits import describe_protocol, make_splits
    from mmfer.evaluation.audit import audit_folds
    from mmfer.evaluation.metrics import classification_metrics
    from mmfer.evaluation.results import RunResult

    protocol = protocol or cfg.eval.protocol
    splits = make_splits(table, protocol, cfg.eval.folds, cfg.eval.seed)
    labels = label_order(set(table["emotion"]))
    y_all = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    ids = table["id"].astype(str).to_numpy()
    speakers = table["speaker"].astype(str).to_numpy()
    fusion_cfg = replace(cfg.fusion, modalities=list(modalities))
    base = make_estimator(model_name, cfg.model, cfg.train)
    fold_metrics, y_true, y_pred, sample_ids, spk_out = [], [], [], [], []
    train_s, select_s, test_s, n_test, histories, selected = [], [], 0.0, 0, [], []
    records: list[FitRecord] = []
    unusable: set[str] = set()
    if cfg.eval.unusable == "count_wrong":
        from mmfer.features.summary import unusable_samples

        unusable = set(unusable_samples({i: feats[i] for i in ids})) & set(ids.tolist())
    from mmfer.progress import Heartbeat

    beat = Heartbeat(len(splits), f"cv {model_name} {'+'.join(modalities)}")
    for k, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        est = base
        if cfg.eval.select:
            sel = select_settings(
                table,
                feats,
                tr,
                estimator=base,
                cfg=cfg,
                labels=labels,
                fusion_cfg=fusion_cfg,
                protocol=protocol,
                records=records,
                fold=k,
            )
            est = base.clone(**sel.params)
            selected.append(
                {
                    "params": sel.params,
                    "inner_accuracy": sel.best_score,
                    "candidates": len(sel.candidates),
                    "inner_folds": sel.inner_folds,
                }
            )
        t1 = time.perf_counter()
        rec = fit_rows(
            table,
            feats,
            tr,
            labels=labels,
            estimator=est,
            fusion_cfg=fusion_cfg,
            text_cfg=cfg.features.text,
            features_cfg=cfg.features,
            records=records,
            fold=k,
        )
        t2 = time.perf_counter()
        proba = rec.predict_proba([feats[i] for i in ids[te]], speakers=speakers[te].tolist())
        test_s += time.perf_counter() - t2
        n_test += len(te)
        pred = proba.argmax(axis=1)
        if cfg.eval.unusable == "count_wrong" and unusable:
            # a sample with no evidence left is scored as an error (a conservative choice)
            dead = np.isin(ids[te], list(unusable))
            pred[dead] = (y_all[te][dead] + 1) % len(labels)
        fold_metrics.append(
            classification_metrics(y_all[te], pred, labels=list(range(len(labels))), names=labels)
        )
        y_true += y_all[te].tolist()
        y_pred += pred.tolist()
        sample_ids += ids[te].tolist()
        spk_out += speakers[te].tolist()
        select_s.append(t1 - t0)
        train_s.append(t2 - t1)
        histories.append(list(getattr(rec.estimator, "history", [])))
        beat.tick(acc=round(float(fold_metrics[-1]["accuracy"]), 4))
        log.info(
            "%s %s fold %d/%d acc=%.3f%s (select %.0fs, fit %.0fs)",
            model_name,
            "+".join(modalities),
            k + 1,
            len(splits),
            fold_metrics[-1]["accuracy"],
            f" {selected[-1]['params']}" if selected and selected[-1]["params"] else "",
            t1 - t0,
            t2 - t1,
        )
    described = describe_protocol(protocol, len(splits))
    if cfg.fusion.speaker_norm:
        described += (
            ", per-speaker normalisation (transductive: from each test speaker's own unlabelled clips)"
        )
    run = RunResult(
        model=model_name,
        modalities=tuple(modalities),
        protocol=described,
        fold_metrics=fold_metrics,
        y_true=y_true,
        y_pred=y_pred,
        labels=labels,
        train_seconds=train_s,
        test_seconds_per_sample=test_s / max(n_test, 1),
        history=histories,
        sample_ids=sample_ids,
        speakers=spk_out,
        selected=selected,
        select_seconds=select_s,
    )
    frozen = list(FROZEN_COMPONENTS)
    if cfg.fusion.speaker_norm:
        frozen.append(
            (
                "per-speaker statistics",
                "training speakers from their own rows; each test speaker from its own unlabelled test "
                "clips at prediction (transductive, no labels)",
            )
        )
    return run, audit_folds(table, splits, records, hashes=hashes, frozen=frozen)


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
