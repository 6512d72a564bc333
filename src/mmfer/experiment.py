"""High-level jobs behind the CLI: prepare, extract, train, evaluate, report, run."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfer.config import ExperimentConfig, dump_config
from mmfer.data.table import write_table
from mmfer.emotions import label_order
from mmfer.io import atomic_write_text
from mmfer.pipeline import (
    CVResult,
    available_modalities,
    cache_dir_for,
    cross_validate,
    extract,
    fit_recognizer,
    load_corpus,
    media_hash,
    modality_subsets,
)

log = logging.getLogger(__name__)


def _out(cfg: ExperimentConfig) -> Path:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    return out


def prepare(cfg: ExperimentConfig) -> tuple[pd.DataFrame, Path]:
    """Build the sample table and write it to ``<output_dir>/samples.csv``."""
    table = load_corpus(cfg.data)
    return table, write_table(table, _out(cfg) / "samples.csv")


def _features(cfg: ExperimentConfig, table: pd.DataFrame) -> dict[str, Any]:
    return extract(table, cfg.features, cache_dir_for(cfg), list(cfg.fusion.modalities),
                   progress=cfg.train.progress)


def extract_all(cfg: ExperimentConfig) -> dict[str, Any]:
    """Extract (or reuse cached) features for every sample; return a summary of issues."""
    from mmfer.features.extract import summarise_issues

    table, _ = prepare(cfg)
    feats = _features(cfg, table)
    return {"samples": len(table), "modalities": available_modalities(table, feats),
            "issues": summarise_issues(feats)}


def train(cfg: ExperimentConfig) -> Path:
    """Train ``cfg.model`` on every sample (validation from held-out speakers); save a checkpoint."""
    out = _out(cfg)
    table, _ = prepare(cfg)
    feats = _features(cfg, table)
    mods = [m for m in cfg.fusion.modalities if m in available_modalities(table, feats)]
    labels = label_order(set(table["emotion"]))
    res = fit_recognizer(
        table, feats, np.arange(len(table)), labels=labels, model_cfg=cfg.model,
        fusion_cfg=replace(cfg.fusion, modalities=mods), text_cfg=cfg.features.text,
        train_cfg=cfg.train, features_cfg=cfg.features, speaker_independent=True,
        out_dir=out / "train",
    )
    res.recognizer.extra = {
        "corpus": cfg.data.corpus,
        "synthetic": bool(cfg.data.corpus == "synthetic"),
        "n_train_samples": len(res.fit_ids),
    }
    return res.recognizer.save(out / "model.safetensors")


def format_cv(res: CVResult) -> str:
    from mmfer.evaluation.metrics import format_pm, summarise_folds

    s = summarise_folds(res.fold_metrics)
    lines = [f"{res.model} on {'+'.join(res.modalities)} — {res.protocol_description}"]
    for key in ("accuracy", "macro.ppv", "macro.sensitivity", "macro.specificity", "macro.mcc_ovr"):
        m = s[key]
        lines.append(f"  {key:<18} {format_pm(m['mean'], m['std'])} %")
    return "\n".join(lines)


def evaluate(cfg: ExperimentConfig) -> str:
    """Cross-validate ``cfg.model`` on ``cfg.fusion.modalities`` under ``cfg.eval.protocol``."""
    out = _out(cfg)
    table, _ = prepare(cfg)
    feats = _features(cfg, table)
    mods = [m for m in cfg.fusion.modalities if m in available_modalities(table, feats)]
    res = cross_validate(table, feats, cfg, model_name=cfg.model.name, modalities=mods)
    from mmfer.evaluation.metrics import summarise_folds

    atomic_write_text(out / f"evaluate_{res.model}_{res.protocol}.json", json.dumps({
        "model": res.model, "modalities": res.modalities, "protocol": res.protocol_description,
        "summary": summarise_folds(res.fold_metrics), "folds": res.fold_metrics,
    }, indent=2, default=float))
    return format_cv(res)
