"""Evaluation report: Markdown, one CSV per table, PNG plots and a self-contained HTML page.

The pipeline fills :class:`~mmfer.evaluation.results.ReportData` (plain data:
per-fold metric dicts from :func:`mmfer.evaluation.metrics.classification_metrics`,
pooled predictions, timings, training histories, significance rows, a leakage
audit) and calls :func:`write_report`. Nothing here trains or evaluates a model.

This module only assembles the document and writes the files; each concern has
its own module, imported in one direction::

    audit (typed audit + leak policy) <- results (dataclasses, shared helpers,
    compare_runs) <- tables, figures <- render (Markdown, Jinja2 HTML, CSV) <- report

Principles the report enforces:

- every table and figure title names the corpus and the evaluation protocol;
- synthetic corpora get a loud warning at the top of every output;
- a leakage audit that shows speakers shared between train and test under a
  speaker-independent protocol, a component fitted on test data, or identical
  clips on both sides of a split is flagged as ``LEAK`` at the top
  (:func:`mmfer.evaluation.audit.audit_findings`);
- the paper's numbers (:mod:`mmfer.evaluation.paper`) are shown beside ours,
  labelled as the paper's claims with an unstated protocol.

All files are written atomically (:mod:`mmfer.io`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmfer.errors import DataError
from mmfer.evaluation.audit import audit_findings
from mmfer.evaluation.figures import Figure, fig_confusion, fig_fold_accuracy, fig_training
from mmfer.evaluation.render import Block, csv_text, to_html, to_markdown
from mmfer.evaluation.results import (
    SYNTHETIC_WARNING,
    ReportData,
    corpus_label,
    full_modality_runs,
    runs_of_model,
)
from mmfer.evaluation.tables import (
    Table,
    per_fold_tables,
    table_ablation,
    table_front_ends,
    table_modalities,
    table_models,
    table_paper,
    table_protocols,
    table_selection,
    table_significance,
    table_timing,
)
from mmfer.evaluation.tables_conditions import table_conditions, table_verify, verify_lines
from mmfer.io import atomic_write_bytes, atomic_write_text

__all__ = ["write_report"]


def _validate(data: ReportData) -> None:
    """Refuse inconsistent results before anything is written (DataError naming the run)."""
    protocols = [data.main()] + ([data.second] if data.second else [])
    if not data.runs:
        raise DataError(None, "ReportData.runs is empty: nothing to report")
    for pr in protocols:
        for r in pr.runs:
            where = f"run {r.name} ({pr.protocol})"
            if not r.fold_metrics:
                raise DataError(None, f"{where}: no fold metrics")
            if len(r.y_true) != len(r.y_pred):
                raise DataError(None, f"{where}: y_true has {len(r.y_true)} samples, y_pred {len(r.y_pred)}")
            if not r.labels:
                raise DataError(None, f"{where}: no class labels")
            c = len(r.labels)
            bad = [v for v in (*r.y_true, *r.y_pred) if not 0 <= int(v) < c]
            if bad:
                raise DataError(None, f"{where}: class index {bad[0]} outside 0..{c - 1} ({c} labels)")
            if r.train_seconds and len(r.train_seconds) != len(r.fold_metrics):
                raise DataError(
                    None, f"{where}: {len(r.train_seconds)} training times for {len(r.fold_metrics)} folds"
                )
            for i, m in enumerate(r.fold_metrics):
                if "accuracy" not in m or "macro" not in m or "mcc_multiclass" not in m:
                    raise DataError(
                        None, f"{where}: fold {i + 1} metrics are not a classification_metrics dict"
                    )


@dataclass
class _Parts:
    """The tables and figures of one report, built before any block is laid out."""

    t1: Table
    t3: Table
    t5: Table
    t6: Table
    significance: Table
    per_fold_csv: Table
    per_fold_md: Table
    protocols: Table | None
    ablation: Table | None
    selection: Table | None
    front_ends: Table | None
    figures: list[Figure]
    curves: Figure | None
    conditions: Table | None = None
    verify: Table | None = None

    def csv_tables(self) -> list[Table]:
        """Every table with a CSV, in the order they are written."""
        opt = (self.protocols, self.ablation, self.selection, self.front_ends, self.conditions, self.verify)
        extra = [t for t in opt if t is not None]
        return [self.t1, self.t3, self.t5, self.t6, self.significance, self.per_fold_csv, *extra]

    def pngs(self) -> list[Figure]:
        """Every figure, the training curves last."""
        return [*self.figures, *([self.curves] if self.curves else [])]


AuditLines = list[tuple[str, list[str], list[str]]]


def _audit(data: ReportData) -> tuple[list[str], AuditLines]:
    """Leak banners and, per protocol, ``(protocol, leaks, info)`` lines of the leakage audit."""
    protocols = [data.main()] + ([data.second] if data.second else [])
    leaks: list[str] = []
    audit_lines: AuditLines = []
    for pr in protocols:
        lk, info = audit_findings(pr.leakage, pr.protocol, pr.speaker_independent)
        leaks += lk
        audit_lines.append((pr.protocol, lk, info))
    if data.verify_failed:
        leaks.append(f"LEAK: perturbation check failed ({'; '.join(data.verify_failed)})")
    return leaks, audit_lines


def _build(data: ReportData) -> _Parts:
    """Every table and figure of the report."""
    t1, t3, t5, t6 = table_modalities(data), table_models(data), table_timing(data), table_paper(data)
    tsig = table_significance(data)
    per_fold_csv, per_fold_md = per_fold_tables(data)
    tproto = table_protocols(data)
    full_runs = full_modality_runs(data.runs)
    figures = [fig_confusion(r, data) for r in full_runs]
    figures.append(fig_fold_accuracy(full_runs, data))
    primary_full = runs_of_model(full_runs, data.primary_model)
    curves = fig_training(primary_full[0], data) if primary_full else None
    t_abl, t_sel, t_fe = table_ablation(data), table_selection(data), table_front_ends(data)
    return _Parts(
        t1,
        t3,
        t5,
        t6,
        tsig,
        per_fold_csv,
        per_fold_md,
        tproto,
        t_abl,
        t_sel,
        t_fe,
        figures,
        curves,
        table_conditions(data),
        table_verify(data),
    )


def _head(data: ReportData, leaks: list[str]) -> list[Block]:
    """Title, the synthetic and leak banners, and the run summary list."""
    blocks: list[Block] = [("h1", f"{data.title} — {corpus_label(data)}")]
    if data.is_synthetic:
        blocks.append(("banner-warn", SYNTHETIC_WARNING + "."))
    for lk in leaks:
        blocks.append(("banner-leak", lk + " — the affected numbers are not trustworthy."))
    blocks.append(
        (
            "ul",
            [
                f"Corpus: {corpus_label(data)}",
                f"Protocol: {data.protocol}"
                + (f"; second protocol: {data.second.protocol}" if data.second else ""),
                f"Models: {', '.join(dict.fromkeys(r.model for r in data.runs))}",
                f"Classes: {', '.join(data.runs[0].labels)}",
                *data.notes,
            ],
        )
    )
    return blocks


def _blocks(data: ReportData, p: _Parts, leaks: list[str], audit_lines: AuditLines) -> list[Block]:
    """The whole document, top to bottom."""
    blocks = _head(data, leaks)
    blocks += [("h2", "Results"), ("table", p.t1), ("table", p.t3)]
    for t in (p.conditions, p.ablation, p.front_ends, p.protocols, p.selection):
        if t is not None:
            blocks.append(("table", t))
    blocks += [
        ("table", p.t5),
        ("h2", "Comparison with the paper"),
        ("table", p.t6),
        ("h2", "Significance"),
        ("table", p.significance),
        ("h2", "Per fold"),
        ("table", p.per_fold_md),
        ("h2", "Figures"),
    ]
    blocks += [("figure", f) for f in p.figures]
    if p.curves is not None:
        blocks.append(("figure", p.curves))
    else:
        blocks.append(("p", f"No training history for {data.primary_model}: no training-curve plot."))
    blocks.append(("h2", "Leakage audit"))
    for proto, lk, info in audit_lines:
        blocks.append(("p", f"Protocol: {proto}"))
        blocks.append(("ul", lk + info))
    if data.verify:
        blocks.append(
            ("p", "Perturbation check (outer test rows replaced, every fold re-fitted; verify.csv)")
        )
        blocks.append(("ul", verify_lines(data)))
    if data.is_synthetic:
        blocks.append(("banner-warn", SYNTHETIC_WARNING + "."))
    return blocks


def _write(out: Path, data: ReportData, p: _Parts, blocks: list[Block]) -> dict[str, Path]:
    """Write PNGs and CSVs first, so report.md never points to a missing file, then report.md/html."""
    written: dict[str, Path] = {}
    for f in p.pngs():
        written[f.filename] = atomic_write_bytes(out / f.filename, f.png)
    for t in p.csv_tables():
        if t.stem is None:  # pragma: no cover - every table listed here has a CSV stem
            continue
        written[f"{t.stem}.csv"] = atomic_write_text(out / f"{t.stem}.csv", csv_text(t))
    written["report.md"] = atomic_write_text(out / "report.md", to_markdown(blocks))
    written["report.html"] = atomic_write_text(
        out / "report.html", to_html(blocks, f"{data.title} — {data.corpus}")
    )
    return written


def write_report(results: ReportData, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html, the table CSVs and the PNG plots into ``out_dir``.

    Parameters
    ----------
    results
        What to report (see :class:`ReportData`).
    out_dir
        Output folder (created if missing). Existing files of the same name are
        replaced atomically.

    Returns
    -------
    dict[str, Path]
        File name -> path of every file written: ``report.md``, ``report.html``,
        ``table1_modalities.csv``, ``table3_models.csv``, ``table5_timing.csv``,
        ``table6_paper_vs_ours.csv``, ``significance.csv``, ``per_fold.csv``,
        ``protocol_comparison.csv`` (with a second protocol), ``confusion_*.png``,
        ``fold_accuracy.png`` and ``training_curves_<model>.png`` (when the
        primary model has a training history).

    Raises
    ------
    DataError
        No runs, or a run whose predictions, labels, timings or metrics are inconsistent.
    """
    _validate(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    leaks, audit_lines = _audit(results)  # leakage first: it decides the banners at the top
    parts = _build(results)
    return _write(out, results, parts, _blocks(results, parts, leaks, audit_lines))
