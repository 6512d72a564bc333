"""The report's extra checks on the main folds: speaker-normalisation conditions and the perturbation check.

``eval.norm_conditions`` runs every model of ``eval.norm_condition_models`` once per
``fusion.speaker_norm`` condition on the same outer folds as the headline
(:func:`condition_runs`); ``eval.verify`` re-fits every fold of the listed models with
the outer test rows replaced by noise/NaN and checks nothing fitted changed
(:func:`verify_rows`, :func:`mmfer.evaluation.verify.verify_folds`).

The runs go through the caller's cached cross-validation (``run_cv``, i.e.
:func:`mmfer.experiment.cached_cross_validate`), so they are kept in ``runs_done/``
and recorded in the provenance ledger like every other run of the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from mmfer.config import ExperimentConfig
from mmfer.errors import ConfigError
from mmfer.evaluation.results import ConditionRun, ReportData
from mmfer.fusion.enrol import NORM_CONDITIONS, norm_condition

__all__ = [
    "condition_runs",
    "condition_source",
    "headline_condition",
    "raise_if_verify_failed",
    "verify_rows",
]

log = logging.getLogger(__name__)


def condition_source(condition: str, k: int) -> str:
    """Where a test speaker's normalisation statistics come from under ``condition`` (one table cell)."""
    return {
        "none": "none: no test-speaker statistics",
        "enrol": f"enrol: k={k} unlabelled clips per test speaker, not scored",
        "neutral_enrol": f"neutral_enrol: k={k} neutral/calm clips per test speaker, not scored",
        "transductive": "TRANSDUCTIVE: all of the test speaker's clips (for comparison only; "
        "uses test-speaker statistics)",
    }[condition]


def condition_runs(
    cfg: ExperimentConfig,
    table: pd.DataFrame,
    feats: dict[str, Any],
    mods: list[str],
    run_cv: Callable[..., Any],
    **cv_kw: Any,
) -> list[ConditionRun]:
    """Every ``eval.norm_condition_models`` model under each ``eval.norm_conditions`` condition.

    The config's own condition (the headline's) comes first even when not listed; its runs
    are the headline's (same key), so they are read back, not computed again.

    Parameters
    ----------
    cfg, table, feats, mods
        The report's config, sample table, features and modalities (the headline's folds).
    run_cv
        ``run_cv(table, feats, cfg, model_name=..., modalities=..., **cv_kw) -> (RunResult, audit)``.
    cv_kw
        Passed on (``hashes``, ``ledger``).

    Returns
    -------
    list[ConditionRun]
        One per (condition, model): the headline condition, then the others in config order;
        empty when ``eval.norm_conditions`` is.
    """
    out: list[ConditionRun] = []
    if not cfg.eval.norm_conditions:
        return out
    head = headline_condition(cfg)
    for cond in dict.fromkeys([head, *cfg.eval.norm_conditions]):  # the headline's own row first
        if cond not in NORM_CONDITIONS:
            raise ConfigError(f"eval.norm_conditions: {cond!r} is not one of {list(NORM_CONDITIONS)}")
        # the headline condition runs with the config as is: the same key as the headline's runs
        sub = cfg if cond == head else replace(cfg, fusion=replace(cfg.fusion, speaker_norm=cond))
        source = condition_source(cond, cfg.fusion.enrol_k)
        for model in dict.fromkeys(cfg.eval.norm_condition_models):
            log.info("speaker_norm=%s: %s on %s", cond, model, "+".join(mods))
            run, _ = run_cv(table, feats, sub, model_name=model, modalities=mods, **cv_kw)
            out.append(ConditionRun(cond, source, run, headline=cond == head))
    return out


def headline_condition(cfg: ExperimentConfig) -> str:
    """The config's own condition, as the conditions table names it (``none`` ... ``transductive``)."""
    return norm_condition(cfg.fusion)


def verify_rows(
    cfg: ExperimentConfig, table: pd.DataFrame, feats: dict[str, Any], mods: list[str]
) -> list[dict[str, Any]]:
    """The perturbation check of every ``eval.verify`` model: one row per model and fold.

    Each row: ``model``, ``fold`` (1-based), ``how``, ``verdict`` (``identical`` or
    ``CHANGED: <parts>``) and ``changed`` (the parts that changed, ``""`` if none).
    """
    from mmfer.evaluation.verify import verify_folds

    rows = []
    for model in dict.fromkeys(cfg.eval.verify):
        log.info("perturbation check: %s on %s (test rows -> %s)", model, "+".join(mods), cfg.eval.verify_how)
        res = verify_folds(table, feats, cfg, model_name=model, modalities=mods, how=cfg.eval.verify_how)
        for f in res.folds:
            changed = ", ".join(f.differs)
            verdict = "CHANGED: " + changed if changed else "identical"
            rows.append(
                {"model": model, "fold": f.fold + 1, "how": res.how, "verdict": verdict, "changed": changed}
            )
    return rows


def raise_if_verify_failed(data: ReportData, where: Path) -> None:
    """After the report is written: :class:`~mmfer.evaluation.verify.TestInfluenceError` naming the
    folds whose perturbation check changed what was fitted (``where`` = the report that says so)."""
    if data.verify_failed:
        from mmfer.evaluation.verify import TestInfluenceError

        raise TestInfluenceError(
            f"perturbation check failed: outer test rows influenced what was fitted "
            f"({'; '.join(data.verify_failed)}); the report ({where}) says so in its leakage audit"
        )
