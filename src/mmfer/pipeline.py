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
from mmfer.fusion import Fuser

if TYPE_CHECKING:
    from mmfer.evaluation.report import LeakageAudit, RunResult

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
    """A fitted fuser + model + label set: everything prediction needs.

    Saved as one safetensors file whose metadata carries the configs, labels
    and the fuser state (TF-IDF vocabulary, standardisers) as JSON; loading
    never unpickles arbitrary objects.
    """

    fuser: Fuser
    model: torch.nn.Module
    labels: list[str]
    model_cfg: ModelConfig
    features_cfg: FeatureConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.fuser.modalities

    def predict_proba(self, feats: list[Any], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities ``(N, C)`` for per-sample features."""
        from mmfer.training import predict

        fused = self.fuser.transform(feats)
        return predict(
            self.model, torch.from_numpy(fused.x), torch.from_numpy(fused.mask), batch_size=batch_size
        )

    def save(self, path: str | Path) -> Path:
        from mmfer.training.checkpoint import save_checkpoint

        meta = {
            "format": "mmfer-recognizer/1",
            "labels": self.labels,
            "model": to_dict(self.model_cfg),
            "features": to_dict(self.features_cfg),
            "fuser": self.fuser.get_state(),
            "in_features": self.fuser.n_features,
            "extra": self.extra,
        }
        tensors = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        save_checkpoint(path, tensors, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        from mmfer.models import create_model
        from mmfer.training.checkpoint import load_checkpoint

        tensors, meta = load_checkpoint(path)
        if meta.get("format") != "mmfer-recognizer/1":
            raise DataError(path, "not an mmfer model checkpoint (train one with `mmfer train`)")
        model_cfg = from_dict(ModelConfig, meta["model"])
        labels = list(meta["labels"])
        model = create_model(
            model_cfg.name, in_features=int(meta["in_features"]), num_classes=len(labels), cfg=model_cfg
        )
        model.load_state_dict(tensors)
        model.eval()
        return cls(
            fuser=Fuser.from_state(meta["fuser"]),
            model=model,
            labels=labels,
            model_cfg=model_cfg,
            features_cfg=from_dict(FeatureConfig, meta["features"]),
            extra=meta.get("extra", {}),
        )


# ----------------------------------------------------------------------------- one fold


@dataclass
class FitOutcome:
    recognizer: Recognizer
    history: list[dict[str, Any]]
    train_seconds: float
    fit_ids: list[str]


def _val_split(
    table: pd.DataFrame, train_idx: np.ndarray, cfg: TrainConfig, speaker_independent: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validation rows taken from the training rows (whole speakers when speaker-independent)."""
    if cfg.val_fraction <= 0 or cfg.patience <= 0:
        return train_idx, np.array([], dtype=int)
    if speaker_independent:
        from mmfer.data.splits import speaker_holdout

        fit_idx, val_idx = speaker_holdout(table, train_idx, cfg.val_fraction, cfg.seed)
    else:
        from sklearn.model_selection import train_test_split

        y = table["emotion"].to_numpy()[train_idx]
        try:
            fit_idx, val_idx = train_test_split(
                train_idx, test_size=cfg.val_fraction, random_state=cfg.seed, stratify=y
            )
        except ValueError:  # a class too small to stratify
            fit_idx, val_idx = train_test_split(train_idx, test_size=cfg.val_fraction, random_state=cfg.seed)
    return np.asarray(fit_idx), np.asarray(val_idx)


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
) -> FitOutcome:
    """Fit fuser and model on ``train_idx`` rows only (validation split taken from them)."""
    from mmfer.models import create_model
    from mmfer.training import TensorData, Trainer

    t0 = time.perf_counter()
    fit_idx, val_idx = _val_split(table, train_idx, train_cfg, speaker_independent)
    ids = table["id"].to_numpy()
    y_all = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    fit_feats = [feats[i] for i in ids[fit_idx]]
    fuser = Fuser(fusion_cfg, text_cfg).fit(fit_feats)

    def tensors(idx: np.ndarray) -> Any:
        fused = fuser.transform([feats[i] for i in ids[idx]])
        return TensorData(
            torch.from_numpy(fused.x),
            torch.from_numpy(fused.mask),
            torch.from_numpy(y_all[idx].astype(np.int64)),
        )

    torch.manual_seed(train_cfg.seed)
    model = create_model(model_cfg.name, in_features=fuser.n_features, num_classes=len(labels), cfg=model_cfg)
    result = Trainer(train_cfg).fit(
        model,
        tensors(fit_idx),
        tensors(val_idx) if len(val_idx) else None,
        num_classes=len(labels),
        out_dir=out_dir,
    )
    model.eval()
    rec = Recognizer(fuser=fuser, model=model, labels=labels, model_cfg=model_cfg, features_cfg=features_cfg)
    return FitOutcome(rec, list(result.history), time.perf_counter() - t0, list(ids[fit_idx]))


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


def leakage_audit(
    table: pd.DataFrame,
    splits: list[tuple[np.ndarray, np.ndarray]],
    fit_ids: list[list[str]],
    hashes: list[str | None] | None = None,
) -> LeakageAudit:
    """Measure, per fold, speaker overlap, test rows used for fitting, duplicate media across splits.

    Nothing here is a statement taken on trust: each figure is counted from the
    actual fold indices and the ids the fuser/model were fitted on.
    """
    from mmfer.evaluation.report import LeakageAudit

    spk = table["speaker"].to_numpy()
    ids = table["id"].to_numpy()
    overlap, fitted_on_test, dups = [], [], 0
    for (tr, te), fitted in zip(splits, fit_ids, strict=True):
        overlap.append(len(set(spk[tr]) & set(spk[te])))
        fitted_on_test.append(len(set(fitted) & set(ids[te])))
        if hashes is not None:
            tr_h = {hashes[i] for i in tr if hashes[i]}
            dups += sum(1 for i in te if hashes[i] and hashes[i] in tr_h)
    used = sum(fitted_on_test)
    where = "train fold only (0 test rows, counted per fold)" if used == 0 else f"TEST rows too: {used}"
    return LeakageAudit(
        speaker_overlap=overlap,
        fitted_on_test=[
            {"component": "TF-IDF vocabulary and idf", "fitted_on": where},
            {"component": "per-modality standardisers", "fitted_on": where},
            {"component": "model weights and early stopping", "fitted_on": where},
            {"component": "EfficientNet backbone", "fitted_on": "pretrained (ImageNet), frozen"},
            {"component": "MFCC", "fitted_on": "stateless"},
        ],
        duplicate_clips_across_splits=dups,
        notes=[] if hashes is not None else ["duplicate-clip check skipped (no media hashes)"],
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
    """Run one model on one modality subset over every fold of ``protocol``."""
    from mmfer.data.splits import describe_protocol, is_speaker_independent, make_splits
    from mmfer.evaluation.metrics import classification_metrics
    from mmfer.evaluation.report import RunResult

    protocol = protocol or cfg.eval.protocol
    splits = make_splits(table, protocol, cfg.eval.folds, cfg.eval.seed)
    labels = label_order(set(table["emotion"]))
    y_all = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    ids = table["id"].to_numpy()
    model_cfg = replace(cfg.model, name=model_name)
    fusion_cfg = replace(cfg.fusion, modalities=list(modalities))
    train_cfg = replace(cfg.train, progress=False)
    fold_metrics, y_true, y_pred, sample_ids = [], [], [], []
    train_s, test_s, n_test, histories, fit_ids = [], 0.0, 0, [], []
    si = is_speaker_independent(protocol)
    for k, (tr, te) in enumerate(splits):
        out = fit_recognizer(
            table,
            feats,
            tr,
            labels=labels,
            model_cfg=model_cfg,
            fusion_cfg=fusion_cfg,
            text_cfg=cfg.features.text,
            train_cfg=train_cfg,
            features_cfg=cfg.features,
            speaker_independent=si,
        )
        t0 = time.perf_counter()
        proba = out.recognizer.predict_proba([feats[i] for i in ids[te]])
        test_s += time.perf_counter() - t0
        n_test += len(te)
        pred = proba.argmax(axis=1)
        fold_metrics.append(
            classification_metrics(y_all[te], pred, labels=list(range(len(labels))), names=labels)
        )
        y_true += y_all[te].tolist()
        y_pred += pred.tolist()
        sample_ids += ids[te].tolist()
        train_s.append(out.train_seconds)
        histories.append(out.history)
        fit_ids.append(out.fit_ids)
        log.info(
            "%s %s fold %d/%d acc=%.3f",
            model_name,
            "+".join(modalities),
            k + 1,
            len(splits),
            fold_metrics[-1]["accuracy"],
        )
    run = RunResult(
        model=model_name,
        modalities=tuple(modalities),
        protocol=describe_protocol(protocol, len(splits)),
        fold_metrics=fold_metrics,
        y_true=y_true,
        y_pred=y_pred,
        labels=labels,
        train_seconds=train_s,
        test_seconds_per_sample=test_s / max(n_test, 1),
        history=histories,
        sample_ids=sample_ids,
    )
    return run, leakage_audit(table, splits, fit_ids, hashes)


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
