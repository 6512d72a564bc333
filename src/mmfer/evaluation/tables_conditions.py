"""The speaker-normalisation conditions table and the perturbation check of the leakage audit."""

from __future__ import annotations

from typing import Any

from mmfer.evaluation.metrics import summarise_folds
from mmfer.evaluation.results import ReportData
from mmfer.evaluation.table_base import HEADLINE_COLUMNS, Table, metric_cells

__all__ = ["table_conditions", "table_verify", "verify_lines"]


def table_conditions(data: ReportData) -> Table | None:
    """One row per (condition, model) of ``data.norm_conditions``; None when there are none."""
    if not data.norm_conditions:
        return None
    headers = ["Condition", "Model", "Statistics of a test speaker from", "Scored clips"]
    headers += [h for h, _ in HEADLINE_COLUMNS]
    built: list[tuple[list[str], dict[str, Any]]] = []
    for c in data.norm_conditions:
        r = c.run
        cells, vals = metric_cells(summarise_folds(r.fold_metrics), HEADLINE_COLUMNS)
        label = c.condition + (" (TRANSDUCTIVE)" if c.condition == "transductive" else "")
        label += " — headline" if c.headline else ""
        scored = len(r.y_true)
        csv = {
            "condition": c.condition,
            "transductive": c.condition == "transductive",
            "headline": c.headline,
            "model": r.model,
            "modalities": r.modality_text,
            "statistics_from": c.source,
            "scored_clips": scored,
            "folds": len(r.fold_metrics),
            **vals,
        }
        built.append(([label, r.model, c.source, str(scored), *cells], csv))
    head = data.headline_norm or "not recorded"
    title = (
        f"Speaker normalisation conditions — the same folds (protocol: {data.protocol}); "
        f"the headline (Table 3) uses this config's own fusion.speaker_norm={head}"
    )
    notes = [
        f"The headline numbers (Table 3 and the tables built from it) use fusion.speaker_norm={head} "
        "(rows marked 'headline', the same runs); the other rows re-run the listed models with each "
        "condition on the same outer folds.",
        "enrol/neutral_enrol: the enrolment clips of each test speaker give its statistics and are "
        "not scored (hence fewer scored clips); at least one clip per speaker is left to score under enrol.",
        "transductive rows normalise each test speaker with all of its own test clips: no deployed "
        "system can do that, so they are for comparison only and not a result.",
        "Mean ± sample std over folds; UAR = unweighted average recall.",
    ]
    return Table.of_rows(("table_norm_conditions", title, headers), built, list(built[0][1]), notes)


def verify_lines(data: ReportData) -> list[str]:
    """The leakage-audit lines of the perturbation check (empty when none was run)."""
    lines = [
        f"perturbation check ({v['model']}, test rows -> {v['how']}): fold {v['fold']}: {v['verdict']}"
        for v in data.verify
    ]
    failed = data.verify_failed
    if failed:
        lines.insert(
            0,
            "PERTURBATION CHECK FAILED: changing the outer test rows changed what was fitted "
            f"({'; '.join(failed)}) — test data influences training; the numbers are not trustworthy.",
        )
    elif lines:
        lines.insert(
            0,
            "perturbation check passed: every fold's settings, Fuser state and model "
            "parameters were bit-identical with the outer test rows perturbed.",
        )
    return lines


def table_verify(data: ReportData) -> Table | None:
    """``verify.csv``: one row per model and fold of the perturbation check (not shown as a table)."""
    if not data.verify:
        return None
    fields = ["model", "fold", "how", "verdict", "changed"]
    rows = [[str(v[f]) for f in fields] for v in data.verify]
    return Table("verify", "Perturbation check", fields, rows, fields, [dict(v) for v in data.verify])
