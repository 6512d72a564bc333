"""High-level jobs behind the CLI: prepare, extract, train, evaluate, report, run."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.config import ExperimentConfig, FeatureConfig, dump_config, to_dict
from mmfer.data.table import describe_samples, write_table
from mmfer.emotions import label_order
from mmfer.errors import ConfigError
from mmfer.io import atomic_write_text
from mmfer.pipeline import (
    available_modalities,
    cache_dir_for,
    cross_validate,
    extract,
    fit_recognizer,
    load_corpus,
    media_hash,
    modality_subsets,
)

if TYPE_CHECKING:
    from mmfer.evaluation.audit import LeakageAudit
    from mmfer.evaluation.results import ProtocolResults, RunResult
    from mmfer.provenance import RunFiles, RunLedger

log = logging.getLogger(__name__)


def _out(cfg: ExperimentConfig) -> Path:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    return out


def prepare(cfg: ExperimentConfig) -> tuple[pd.DataFrame, Path]:
    """Build the sample table and write it to ``<output_dir>/samples.csv``
    (and the files the loader did not take, with why, to ``skipped.csv``)."""
    from mmfer.data.corpora import skipped_files

    table = load_corpus(cfg.data)
    out = _out(cfg)
    skipped = skipped_files(table)
    if skipped:
        atomic_write_text(out / "skipped.csv", pd.DataFrame(skipped).to_csv(index=False))
    return table, write_table(table, out / "samples.csv")


def _features(cfg: ExperimentConfig, table: pd.DataFrame) -> dict[str, Any]:
    return extract(
        table, cfg.features, cache_dir_for(cfg), list(cfg.fusion.modalities), progress=cfg.train.progress
    )


def extract_all(cfg: ExperimentConfig) -> dict[str, Any]:
    """Extract (or reuse cached) features for every sample; return a summary of issues."""
    from mmfer.features.summary import summarise_issues

    table, _ = prepare(cfg)
    feats = _features(cfg, table)
    return {
        "samples": len(table),
        "modalities": available_modalities(table, feats),
        "issues": summarise_issues(feats),
    }


def train(cfg: ExperimentConfig) -> Path:
    """Train ``cfg.model`` on every sample (validation from held-out speakers); save a checkpoint.

    Under ``torchrun`` every rank trains a data-parallel replica: rank 0
    extracts (and caches) the features first, the other ranks then read the
    cache, and only rank 0 writes the checkpoint.
    """
    from mmfer.training.distributed import init_distributed

    dist = init_distributed()
    if not dist.is_main:
        dist.barrier()  # wait for rank 0 to fill the feature cache
    out, table, feats, mods = _setup(cfg)
    if dist.is_main and dist.enabled:
        dist.barrier()
    labels = label_order(set(table["emotion"]))
    chosen: dict[str, Any] = {}
    if cfg.eval.select and not dist.enabled:
        # The shipped model's settings are chosen the way every reported fold's are:
        # on speaker-grouped inner splits (here of all the training speakers).
        from mmfer.pipeline import make_estimator, select_settings

        sel = select_settings(
            table,
            feats,
            np.arange(len(table)),
            estimator=make_estimator(cfg.model.name, cfg.model, cfg.train),
            cfg=cfg,
            labels=labels,
            fusion_cfg=replace(cfg.fusion, modalities=mods),
            protocol=cfg.eval.protocol,
        )
        chosen = sel.params
        log.info("selected settings for %s: %s (inner accuracy %s)", cfg.model.name, chosen, sel.best_score)
    res = fit_recognizer(
        table,
        feats,
        np.arange(len(table)),
        labels=labels,
        params=chosen,
        model_cfg=cfg.model,
        fusion_cfg=replace(cfg.fusion, modalities=mods),
        text_cfg=cfg.features.text,
        train_cfg=cfg.train,
        features_cfg=cfg.features,
        speaker_independent=True,
        out_dir=out / "train",
    )
    res.recognizer.extra = {
        "corpus": cfg.data.corpus,
        "synthetic": bool(cfg.data.corpus == "synthetic"),
        "n_train_samples": len(res.fit_ids),
        "world_size": dist.world_size,
        "selected_params": chosen,
    }
    path = out / "model.safetensors"
    if dist.is_main:
        res.recognizer.save(path)
    return path


def format_cv(run: RunResult) -> str:
    """Mean ± std over folds of the headline metrics, naming the protocol."""
    from mmfer.evaluation.metrics import format_pm, summarise_folds

    s = summarise_folds(run.fold_metrics)
    rows = [("accuracy", s["accuracy"])] + [
        (f"macro {k}", s["macro"][k]) for k in ("ppv", "sensitivity", "specificity", "mcc_ovr")
    ]
    lines = [f"{run.model} on {'+'.join(run.modalities)} — {run.protocol}"]
    lines += [f"  {name:<18} {format_pm(m['mean'], m['std'])} %" for name, m in rows]
    return "\n".join(lines)


def _setup(cfg: ExperimentConfig) -> tuple[Path, pd.DataFrame, dict[str, Any], list[str]]:
    from mmfer.features.summary import masked_samples, unusable_samples

    out = _out(cfg)
    table, _ = prepare(cfg)
    feats = _features(cfg, table)
    masked = masked_samples(feats)
    if len(masked):
        atomic_write_text(out / "masked.csv", masked.to_csv(index=False))
    bad = set(unusable_samples(feats))
    if bad and cfg.eval.unusable == "exclude":
        keep = ~table["id"].astype(str).isin(bad)
        log.warning(
            "%d sample(s) with no usable modality excluded from evaluation (eval.unusable=exclude; "
            "listed in %s): %s",
            len(bad),
            out / "masked.csv",
            ", ".join(sorted(bad)[:10]) + (" ..." if len(bad) > 10 else ""),
        )
        attrs = dict(table.attrs)
        table = table[keep.to_numpy()].reset_index(drop=True)
        table.attrs.update(attrs)
    have = available_modalities(table, feats)
    mods = [m for m in cfg.fusion.modalities if m in have]
    if not mods:
        raise ConfigError(
            f"fusion.modalities: none of {cfg.fusion.modalities} has features in corpus "
            f"{cfg.data.corpus!r} (available: {have})"
        )
    return out, table, feats, mods


def evaluate(cfg: ExperimentConfig) -> str:
    """Cross-validate ``cfg.model`` on ``cfg.fusion.modalities`` under ``cfg.eval.protocol``."""
    from mmfer.evaluation.metrics import summarise_folds

    out, table, feats, mods = _setup(cfg)
    run, audit = cross_validate(table, feats, cfg, model_name=cfg.model.name, modalities=mods)
    path = out / f"evaluate_{run.model}_{cfg.eval.protocol}.json"
    atomic_write_text(
        path,
        json.dumps(
            {
                "model": run.model,
                "modalities": run.modalities,
                "protocol": run.protocol,
                "summary": summarise_folds(run.fold_metrics),
                "folds": run.fold_metrics,
                "leakage": asdict(audit),
            },
            indent=2,
            default=float,
        ),
    )
    return format_cv(run) + f"\n(written to {path})"


def _non_default(cfg: Any, default: Any) -> dict[str, Any]:
    """The fields of a config that differ from the defaults (nested), so a field added later
    with a behaviour-preserving default does not change the key of runs already finished."""
    a, b = to_dict(cfg), to_dict(default)

    def diff(x: Any, y: Any) -> Any:
        if isinstance(x, dict) and isinstance(y, dict):
            return {k: diff(v, y.get(k)) for k, v in x.items() if k not in y or v != y[k]}
        return x

    return diff(a, b)


#: Eval settings that choose which other runs a report makes, or which finished runs it may
#: read back: they do not change a run's result, so they are not in its key.
_EVAL_NOT_IN_KEY = (
    "models",
    "reference",
    "front_ends",
    "front_end_models", "front_end_models_for",
    "ablations",
    "both_protocols",
    "reuse",
    "norm_conditions",
    "norm_condition_models",
    "verify",
    "verify_how",
    "settings", "report_dir",  # the loco report's extra settings are runs of their own (own ids)
)


def _run_key(
    table: pd.DataFrame, cfg: ExperimentConfig, model_name: str, modalities: list[str], protocol: str | None
) -> dict[str, Any]:
    """What a run's result depends on, apart from code and features: the non-default config
    (minus paths, parallelism and the choice of other runs), sample ids, model, modalities, protocol."""
    key_cfg = _non_default(cfg, ExperimentConfig())
    key_cfg.pop("output_dir", None)
    key_cfg.pop("name", None)
    key_cfg.get("features", {}).pop("cache_dir", None)
    key_cfg.get("features", {}).pop("workers", None)
    for k in _EVAL_NOT_IN_KEY:
        key_cfg.get("eval", {}).pop(k, None)
    key_cfg.get("model", {}).pop("name", None)  # model_name is in the key itself
    return {
        "cfg": key_cfg,
        "ids": table["id"].astype(str).tolist(),
        "model": model_name,
        "modalities": list(modalities),
        "protocol": protocol or cfg.eval.protocol,
    }


def _digest(key: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_files(
    table: pd.DataFrame,
    cfg: ExperimentConfig,
    model_name: str,
    modalities: list[str],
    protocol: str | None,
    *,
    code: str,
    features: str,
) -> RunFiles:
    """The ``runs_done/`` files of one run: this code version's, other versions', the legacy one.

    The name is ``<model>_<modalities>_<digest>.v<code tag>.json``, where the digest covers
    :func:`_run_key` plus the feature digest and the tag is :func:`mmfer.provenance.code_tag`
    of the code version.
    """
    from mmfer.provenance import RunFiles, code_tag

    key = _run_key(table, cfg, model_name, modalities, protocol)
    folder = Path(cfg.output_dir) / "runs_done"
    stem = f"{model_name}_{'+'.join(modalities)}_{_digest({**key, 'feature_cache': features})}"
    return RunFiles(
        current=folder / f"{stem}.v{code_tag(code)}.json",
        pattern_dir=folder,
        pattern=f"{stem}.v*.json",
        legacy=folder / f"{model_name}_{'+'.join(modalities)}_{_digest(key)}.json",
    )


def finished_run_path(
    table: pd.DataFrame,
    cfg: ExperimentConfig,
    model_name: str,
    modalities: list[str],
    protocol: str | None,
    *,
    code: str | None = None,
    features: str | None = None,
) -> Path:
    """Where :func:`cached_cross_validate` keeps this run under the current code version.

    ``code`` and ``features`` default to :func:`mmfer.provenance.code_version` and the
    :func:`mmfer.provenance.feature_digest` of ``table`` under ``cfg.features``.
    """
    from mmfer import provenance

    code = code or provenance.code_version()
    if features is None:
        features = provenance.feature_digest(table, cfg.features, cache_dir_for(cfg), modalities)
    return run_files(table, cfg, model_name, modalities, protocol, code=code, features=features).current


def _load_run(path: Path, d: dict[str, Any]) -> tuple[RunResult, LeakageAudit] | None:
    from mmfer.evaluation import RunResult
    from mmfer.evaluation.audit import ComponentFit, LeakageAudit

    try:
        run = RunResult(**{**d["run"], "modalities": tuple(d["run"]["modalities"])})
        a = d["audit"]
        audit = LeakageAudit(**{**a, "components": [ComponentFit(**c) for c in a["components"]]})
    except (ValueError, TypeError, KeyError) as e:
        log.warning("%s: unreadable finished run (%s); computing it again", path, e)
        return None
    return run, audit


def _rel(path: Path, cfg: ExperimentConfig) -> str:
    """``path`` relative to the output folder (``runs_done/...``), as provenance files name it."""
    import os

    return Path(os.path.relpath(path, cfg.output_dir)).as_posix()


def cached_cross_validate(
    table: pd.DataFrame,
    feats: dict[str, Any],
    cfg: ExperimentConfig,
    *,
    model_name: str,
    modalities: list[str],
    protocol: str | None = None,
    hashes: list[str | None] | None = None,
    ledger: RunLedger | None = None,
) -> tuple[RunResult, LeakageAudit]:
    """:func:`cross_validate`, with each finished run kept in ``<output_dir>/runs_done/``.

    A long report that is stopped (or crashes while rendering) loses no finished
    run: rerunning the same command reads them back. The key covers everything
    that can change the result -- the config (minus paths and progress), the
    sample ids, the model, modalities and protocol, the feature-cache keys of the
    samples and the code version (:mod:`mmfer.provenance`); each file records the
    code version and feature digest. ``cfg.eval.reuse`` decides which kept runs
    may be read back (``same``: this code version only; ``any``; ``none``), and
    ``ledger`` (when given) records what was computed and what reused.
    """
    import time

    from mmfer import provenance

    code = ledger.code_version if ledger is not None else provenance.code_version()
    fdig = provenance.feature_digest(table, cfg.features, cache_dir_for(cfg), modalities)
    files = run_files(table, cfg, model_name, modalities, protocol, code=code, features=fdig)
    what = (model_name, list(modalities), protocol or cfg.eval.protocol)
    for path, d in provenance.candidates(files, code, cfg.eval.reuse):
        loaded = _load_run(path, d)
        if loaded is None:
            continue
        version, kept = provenance.recorded_version(d), d.get("provenance", {})
        log.info("reusing finished run %s (code version %s)", path, version)
        if ledger is not None:
            fd = kept.get("feature_digest", "not recorded")
            rec = provenance.RunRecord(*what, "reused", version, fd, _rel(path, cfg), kept.get("seconds"))
            ledger.add(rec)
        return loaded
    others = [v for v in provenance.versions_present(files) if v != code]
    if others:
        msg = "computing %s on %s again: kept runs are from other code versions %s (eval.reuse=%s)"
        log.info(msg, model_name, "+".join(modalities), ", ".join(others), cfg.eval.reuse)
    t0 = time.perf_counter()
    run, audit = cross_validate(
        table, feats, cfg, model_name=model_name, modalities=modalities, protocol=protocol, hashes=hashes
    )
    seconds = round(time.perf_counter() - t0, 3)
    prov = {"code_version": code, "feature_digest": fdig, "seconds": seconds}
    files.current.parent.mkdir(parents=True, exist_ok=True)
    payload = {"run": asdict(run), "audit": asdict(audit), "provenance": prov}
    atomic_write_text(files.current, json.dumps(payload, default=float))
    if ledger is not None:
        where = _rel(files.current, cfg)
        ledger.add(provenance.RunRecord(*what, "computed", code, fdig, where, seconds, others))
    return run, audit


def _protocol_runs(
    cfg: ExperimentConfig,
    table: pd.DataFrame,
    feats: dict[str, Any],
    mods: list[str],
    protocol: str,
    hashes: list[str | None],
    ablations: bool,
    ledger: RunLedger | None = None,
) -> ProtocolResults:
    """Every model on all modalities, plus RMLSTM on each modality subset (Tables 1-4)."""
    from mmfer.estimators import list_estimators
    from mmfer.estimators.base import ESTIMATORS
    from mmfer.evaluation.results import ProtocolResults, compare_runs
    from mmfer.tuning import base_model

    list_estimators()  # registers every estimator

    primary = cfg.model.name
    for m in [primary, *cfg.eval.models, *cfg.eval.reference]:
        ESTIMATORS.get(base_model(m))  # unknown model -> ConfigError listing the valid names
    jobs: list[tuple[str, tuple[str, ...]]] = [
        (m, tuple(mods)) for m in dict.fromkeys([primary, *cfg.eval.models, *cfg.eval.reference])
    ]
    if ablations:
        subsets = (
            [tuple(a.split("+")) for a in cfg.eval.ablations]
            if cfg.eval.ablations
            else modality_subsets(mods)
        )
        jobs += [(primary, s) for s in subsets if tuple(s) != tuple(mods)]
    from mmfer.evaluation.audit import merge_audits

    runs, audits = [], []
    for i, (model, subset) in enumerate(jobs):
        log.info("[%d/%d] %s on %s (%s)", i + 1, len(jobs), model, "+".join(subset), protocol)
        run, a = cached_cross_validate(
            table,
            feats,
            cfg,
            model_name=model,
            modalities=list(subset),
            protocol=protocol,
            hashes=hashes,
            ledger=ledger,
        )
        runs.append(run)
        audits.append(a)
    audit = merge_audits(audits)
    base = runs[0]
    sig = [
        compare_runs(base, r)
        for r in runs[1:]
        if r.modalities == base.modalities and r.model not in cfg.eval.reference
    ]
    return ProtocolResults(protocol=base.protocol, runs=runs, significance=sig, leakage=audit)


def features_for(features: FeatureConfig, front_end: str) -> FeatureConfig:
    """``features`` switched to another front end: a profile name, or ``;``-separated overrides.

    A profile replaces exactly the settings that profile decides
    (:func:`mmfer.config.profile_settings`); everything else is kept.
    """
    from mmfer.config import PROFILES, apply_overrides, from_dict, profile_settings, to_dict

    data = to_dict(features)
    if front_end in PROFILES:
        data["profile"] = front_end
        overrides = [f"{k}={v}" for k, v in profile_settings(front_end, features).items()]
    else:
        overrides = [o.strip() for o in front_end.split(";") if o.strip()]
    return from_dict(FeatureConfig, apply_overrides(data, overrides))


def front_end_label(features: FeatureConfig) -> str:
    """One line naming the front end of every modality (for reports)."""
    f = features
    text = f"text {f.text.representation}" + (
        f" (idf={f.text.idf})" if f.text.representation != "embedding" else ""
    )
    face = f"face {f.face.backbone}" + (" + 68 landmarks" if getattr(f.face, "landmarks", False) else "")
    return f"profile {f.profile}: {face}, audio {f.audio.extractor}, {text}"


def _front_end_runs(
    cfg: ExperimentConfig,
    table: pd.DataFrame,
    mods: list[str],
    hashes: list[str | None],
    ledger: RunLedger | None = None,
) -> list[RunResult]:
    """The front-end ablation: ``eval.front_end_models`` (or that front end's entry of
    ``eval.front_end_models_for``) under each of ``eval.front_ends`` (same folds)."""
    runs = []
    for fe in cfg.eval.front_ends:
        sub = replace(cfg, features=features_for(cfg.features, fe))
        feats = _features(sub, table)
        for model in dict.fromkeys(cfg.eval.front_end_models_for.get(fe, cfg.eval.front_end_models)):
            log.info("front end %r: %s on %s", fe, model, "+".join(mods))
            run, _ = cached_cross_validate(
                table, feats, sub, model_name=model, modalities=mods, hashes=hashes, ledger=ledger
            )
            run.front_end = f"{fe} — {front_end_label(sub.features)}"
            runs.append(run)
    return runs


def report(cfg: ExperimentConfig) -> dict[str, Path]:
    """Regenerate the paper's Tables 1-6 for one corpus under the configured protocol(s)."""
    from mmfer import conditions
    from mmfer.data.splits import is_speaker_independent
    from mmfer.evaluation.report import write_report
    from mmfer.evaluation.results import ReportData
    from mmfer.provenance import RunLedger, code_version, report_provenance

    if cfg.eval.protocol == "loco":  # one fold per corpus: the cross-corpus report
        from mmfer.evaluation.crosscorpus import crosscorpus_report

        return crosscorpus_report(cfg, *_setup(cfg), cached_cross_validate)
    out, table, feats, mods = _setup(cfg)
    ledger = RunLedger(code_version(), reuse=cfg.eval.reuse)
    hashes = [media_hash(row) for row in table.to_dict("records")]
    main = _protocol_runs(cfg, table, feats, mods, cfg.eval.protocol, hashes, ablations=True, ledger=ledger)
    for r in main.runs:
        r.front_end = f"this report's — {front_end_label(cfg.features)}"
    front_ends = _front_end_runs(cfg, table, mods, hashes, ledger=ledger)
    cond = conditions.condition_runs(
        cfg, table, feats, mods, cached_cross_validate, hashes=hashes, ledger=ledger
    )
    second = None
    if cfg.eval.both_protocols:
        other = "stratified_kfold" if is_speaker_independent(cfg.eval.protocol) else "group_kfold"
        second = _protocol_runs(cfg, table, feats, mods, other, hashes, ablations=False, ledger=ledger)
    synthetic = bool(table.get("synthetic", pd.Series([False])).fillna(False).astype(bool).any()) or (
        cfg.data.corpus == "synthetic"
    )
    data = ReportData(
        corpus=cfg.data.corpus,
        is_synthetic=synthetic,
        protocol=main.protocol,
        runs=main.runs,
        significance=main.significance,
        leakage=main.leakage,
        speaker_independent=is_speaker_independent(cfg.eval.protocol),
        second=second,
        primary_model=cfg.model.name,
        title=f"mmfer report — {cfg.data.corpus} ({describe_samples(table)}, "
        f"{table['speaker'].nunique()} speakers)",
        notes=[
            f"config: {out / 'config.yaml'}",
            f"modalities available: {', '.join(mods)}",
            f"front end: {front_end_label(cfg.features)}",
            f"provenance: {ledger.summary()} (provenance.md)",
            *_data_notes(cfg, table, feats, out),
        ],
        front_ends=front_ends,
        norm_conditions=cond,
        headline_norm=conditions.headline_condition(cfg),
        verify=conditions.verify_rows(cfg, table, feats, mods),
        headline_metric=cfg.eval.headline_metric,
    )
    # Written first: a rendering error still leaves the record of what was computed and reused.
    prov = report_provenance(ledger, out / "report")
    # Every run is already in runs_done/ (cached_cross_validate): a rendering error loses no compute.
    written = {**write_report(data, out / "report"), **prov}
    conditions.raise_if_verify_failed(data, out / "report" / "report.md")
    return written


def _data_notes(cfg: ExperimentConfig, table: pd.DataFrame, feats: dict[str, Any], out: Path) -> list[str]:
    """Report lines on files not taken, masked modalities and how unusable samples were scored."""
    from mmfer.features.summary import masked_samples

    notes = []
    if (out / "skipped.csv").is_file():
        n = len(pd.read_csv(out / "skipped.csv"))
        notes.append(f"files not taken by the corpus loader: {n} (listed with the reason in skipped.csv)")
    masked = masked_samples({k: v for k, v in feats.items()})
    if len(masked):
        unusable = sorted(set(masked.loc[masked["unusable"], "id"]))
        policy = (
            "excluded from every fold" if cfg.eval.unusable == "exclude" else "kept and counted as errors"
        )
        notes.append(
            f"masked modalities: {len(masked)} (sample, modality) pairs, listed with the reason in "
            f"masked.csv; samples with no usable modality: {len(unusable)} "
            f"({', '.join(unusable[:8])}{' ...' if len(unusable) > 8 else ''}) -- {policy} "
            f"(eval.unusable={cfg.eval.unusable})"
        )
    else:
        notes.append("masked modalities: none (every sample kept every modality it has)")
    return notes


def run_all(cfg: ExperimentConfig) -> dict[str, Path]:
    """The main job: report (all tables) then a final model trained on every speaker."""
    paths = report(cfg)
    paths["model"] = train(cfg)
    return paths
