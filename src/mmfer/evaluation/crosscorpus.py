"""The cross-corpus report (``eval.protocol: loco``): ``mmfer report`` on a multi-corpus table.

:func:`mmfer.experiment.report` hands a ``loco`` config to :func:`crosscorpus_report`,
which runs every model of ``eval.models`` + ``eval.reference`` through the same cached
cross-validation as every other report (``runs_done/``, keyed with the code version;
``eval.reuse``) and writes ``report.md`` + one CSV per table:

(a) the train x test matrix: one leave-one-corpus-out fold per target corpus, scored
    closed set (:mod:`mmfer.closedset`), accuracy and UAR with a 95 % interval from a
    bootstrap over the target's speakers, beside chance (1 / target labels scored);
(b) every named setting of ``eval.settings`` (e.g. EmoBox's 4-class RAVDESS list), each a
    loco run of its own sub-table, beside the figures the config says were published;
(c) the CREMA-D human raters' majority-vote accuracy (``summaryTable.csv`` of a ``cremad``
    corpus of the table), the human reference for the same clips;
(d) each table names the code version and the command.

The caching runner is passed in (``cached_cv``) rather than imported, because
:mod:`mmfer.experiment` imports this module (no import circle).
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.config import CrossSetting, ExperimentConfig
from mmfer.errors import ConfigError
from mmfer.evaluation.table_base import Table, fmt_pct

if TYPE_CHECKING:
    from mmfer.evaluation.results import RunResult
    from mmfer.provenance import RunLedger

__all__ = ["CrossScore", "crosscorpus_report", "fold_scores", "setting_table"]

log = logging.getLogger(__name__)

#: The caching cross-validation runner (:func:`mmfer.experiment.cached_cross_validate`).
CachedCV = Callable[..., tuple[Any, Any]]

#: CSV columns of every score table.
SCORE_FIELDS: list[str] = [
    "setting",
    "model",
    "train",
    "test",
    "labels",
    "n_scored",
    "n_unscored_unknown_label",
    "n_test_speakers",
    "accuracy_pct",
    "accuracy_ci_lo_pct",
    "accuracy_ci_hi_pct",
    "uar_pct",
    "uar_ci_lo_pct",
    "uar_ci_hi_pct",
    "chance_pct",
    "code_version",
]


@dataclass
class CrossScore:
    """One model's score on one target corpus (one loco fold). Fractions, not percentages."""

    model: str
    train: str
    test: str
    labels: list[str]
    n_scored: int
    n_unscored: int
    n_speakers: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    uar: float
    uar_ci: tuple[float, float]

    @property
    def chance(self) -> float:
        """1 / number of target labels scored (uniform guessing over the closed set)."""
        return 1.0 / max(len(self.labels), 1)


def fold_scores(
    run: RunResult, table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> list[CrossScore]:
    """One :class:`CrossScore` per fold of a loco ``run`` (folds in run order).

    A fold's rows are the scored rows of its test corpus (recorded in its metrics,
    :func:`mmfer.closedset.fold_metrics`; ``table`` maps ids to corpora). Intervals resample
    the target's speakers (:func:`mmfer.evaluation.significance.cluster_bootstrap`).
    """
    from mmfer.evaluation.significance import cluster_bootstrap

    corpus_of = dict(zip(table["id"].astype(str), table["corpus"].astype(str), strict=True))
    test_corpus = np.array([corpus_of[i] for i in run.sample_ids], dtype=object)  # (N,)
    y, p, spk = np.asarray(run.y_true), np.asarray(run.y_pred), np.asarray(run.speakers)
    out = []
    for m in run.fold_metrics:
        if "test_corpus" not in m:
            raise ConfigError(f"run {run.model} ({run.protocol}) is not a leave-one-corpus-out run")
        test = str(m["test_corpus"])
        rows = np.flatnonzero(test_corpus == test)  # loco tests each corpus in one fold only
        ci = {
            k: cluster_bootstrap(y[rows], p[rows], spk[rows], metric=k, n_boot=n_boot, seed=seed)
            if len(rows)
            else (math.nan, math.nan)
            for k in ("accuracy", "uar")
        }
        out.append(
            CrossScore(
                model=run.model,
                train=" + ".join(m.get("train_corpora", [])),
                test=test,
                labels=list(m.get("scored_labels", run.labels)),
                n_scored=len(rows),
                n_unscored=int(m.get("unscored_unknown_label", 0)),
                n_speakers=len(set(spk[rows].tolist())),
                accuracy=float(m["accuracy"]),
                accuracy_ci=ci["accuracy"],
                uar=float(m["uar"]),
                uar_ci=ci["uar"],
            )
        )
    return out


def setting_table(table: pd.DataFrame, s: CrossSetting, key: str) -> pd.DataFrame:
    """The sub-table of one named setting: ``s.train`` rows + ``s.test`` rows, both cut to
    ``s.emotions``, the test rows to the stems of ``s.test_subset``.

    Raises
    ------
    ConfigError
        Missing train or test, a corpus not in the table, the test corpus also trained on.
    DataError
        A listed test clip the corpus does not have (names the list file and the stem).
    """
    from mmfer.data.multi import apply_subset
    from mmfer.emotions import canonical_emotion

    names = sorted(set(table["corpus"].astype(str)))
    if not s.train or not s.test:
        raise ConfigError(f"{key} ({s.name!r}): needs train: [corpora] and test: corpus")
    for c in [*s.train, s.test]:
        if c not in names:
            raise ConfigError(f"{key} ({s.name!r}): corpus {c!r} is not in the table ({', '.join(names)})")
    if s.test in s.train:
        raise ConfigError(f"{key} ({s.name!r}): test corpus {s.test!r} is also a training corpus")
    emotions = [canonical_emotion(e, source=f"{key}.emotions") for e in s.emotions]
    keep = table["emotion"].isin(emotions).to_numpy() if emotions else np.ones(len(table), dtype=bool)
    corpus = table["corpus"].astype(str).to_numpy()
    train = table[keep & np.isin(corpus, s.train)]
    test = table[keep & (corpus == s.test)].reset_index(drop=True)
    if s.test_subset:
        test = apply_subset(test, s.test_subset)
    # data.extra_train marks rows of the main table; a setting says itself what is trained on
    sub = pd.concat([train, test], ignore_index=True).drop(columns=["train_only"], errors="ignore")
    sub.attrs.update(table.attrs)
    return sub


def _cells(sc: CrossScore) -> str:
    acc, uar = sc.accuracy * 100, sc.uar * 100
    lo, hi = (x * 100 for x in sc.accuracy_ci)
    ulo, uhi = (x * 100 for x in sc.uar_ci)
    return f"acc {acc:.1f} [{lo:.1f}, {hi:.1f}] · UAR {uar:.1f} [{ulo:.1f}, {uhi:.1f}]"


def _csv_row(setting: str, sc: CrossScore, code: str) -> dict[str, Any]:
    return {
        "setting": setting,
        "model": sc.model,
        "train": sc.train,
        "test": sc.test,
        "labels": " ".join(sc.labels),
        "n_scored": sc.n_scored,
        "n_unscored_unknown_label": sc.n_unscored,
        "n_test_speakers": sc.n_speakers,
        "accuracy_pct": sc.accuracy * 100,
        "accuracy_ci_lo_pct": sc.accuracy_ci[0] * 100,
        "accuracy_ci_hi_pct": sc.accuracy_ci[1] * 100,
        "uar_pct": sc.uar * 100,
        "uar_ci_lo_pct": sc.uar_ci[0] * 100,
        "uar_ci_hi_pct": sc.uar_ci[1] * 100,
        "chance_pct": sc.chance * 100,
        "code_version": code,
    }


def matrix_table(
    scores: list[CrossScore], code: str, command: str, humans: dict[str, str] | None = None
) -> Table:
    """Table (a): rows = (model, training corpora), one column per test corpus, plus chance
    and, when given, a human reference row (``{test corpus: cell}``)."""
    tests = sorted({s.test for s in scores})
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for s in scores:
        rows.setdefault((s.model, s.train), {})[s.test] = _cells(s)
    chance: dict[str, str] = {}
    for s in scores:
        chance.setdefault(s.test, f"{s.chance * 100:.1f} (1/{len(s.labels)})")
    cells = [[m, tr, *(r.get(t, "—") for t in tests)] for (m, tr), r in rows.items()]
    cells.append(["chance", "—", *(chance.get(t, "—") for t in tests)])
    if humans:
        cells.append(["human raters, voice only", "—", *(humans.get(t, "—") for t in tests)])
    unscored = ", ".join(f"{s.test}: {s.n_unscored}" for s in scores if s.model == scores[0].model)
    return Table(
        "crosscorpus_matrix",
        "Train × test (leave-one-corpus-out, closed set): accuracy and UAR in %, 95 % CI over test speakers",
        ["Model", "Trained on", *[f"test: {t}" for t in tests]],
        cells,
        SCORE_FIELDS,
        [_csv_row("loco", s, code) for s in scores],
        [
            "Closed set: the probability columns of labels the test corpus lacks are removed before argmax; "
            f"test clips whose label no training corpus has are not scored ({unscored}).",
            "Intervals: percentile bootstrap (2000 draws) resampling the test corpus's speakers.",
            f"code version {code}; command: {command}",
        ],
    )


def setting_block(s: CrossSetting, scores: list[CrossScore], code: str, command: str, n_test: int) -> Table:
    """Table (b) for one named setting: every model, chance, and the published figures."""
    cells = [[sc.model, sc.train, sc.test, str(sc.n_scored), _cells(sc)] for sc in scores]
    if scores:
        sc = scores[0]
        cells.append(["chance", sc.train, sc.test, str(sc.n_scored), f"acc {sc.chance * 100:.1f}"])
    for label, acc in s.published.items():
        cells.append([f"published: {label}", label.split("→")[0].strip(), s.test, "", f"acc {acc:.2f}"])
    emotions = ", ".join(s.emotions) or "all"
    return Table(
        f"setting_{s.name}",
        f"Setting {s.name}: trained on {' + '.join(s.train)}, tested on {s.test} ({emotions})",
        ["Model", "Trained on", "Test", "Clips scored", "Accuracy / UAR (%, 95 % CI over test speakers)"],
        cells,
        SCORE_FIELDS,
        [_csv_row(s.name, sc, code) for sc in scores],
        [
            f"Test clips: {n_test}"
            + (f" listed in {s.test_subset}" if s.test_subset else "")
            + f"; training rows: every {'+'.join(s.train)} clip of {emotions}.",
            "Published rows are copied from the paper the config names, not computed here.",
            f"code version {code}; command: {command}",
        ],
    )


def raters_table(path: Path, code: str, command: str) -> Table:
    """Table (c): CREMA-D crowd raters' majority vote against the intended emotion."""
    from mmfer.data.cremad import load_rater_votes, rater_accuracy

    votes = load_rater_votes(path)
    strict, lenient = rater_accuracy(votes), rater_accuracy(votes, ties="any")
    cells = [[c, str(len(votes)), fmt_pct(strict[c] * 100, 1), fmt_pct(lenient[c] * 100, 1)] for c in strict]
    csv = [{"raters": c, "clips": len(votes), "accuracy_pct": strict[c] * 100} for c in strict]
    return Table(
        "cremad_raters",
        "CREMA-D human raters: majority vote vs intended emotion (all clips)",
        ["Raters saw", "Clips", "Accuracy (%), tie = wrong", "Accuracy (%), tie incl. intended = right"],
        cells,
        ["raters", "clips", "accuracy_pct"],
        csv,
        [f"From {path} (per clip: the label most raters chose); code version {code}; command: {command}"],
    )


def _command(cfg: ExperimentConfig) -> str:
    """The command that made this report: the CLI's arguments when run as ``mmfer report``."""
    args = sys.argv[1:]
    if "report" in args:
        return "mmfer " + " ".join(shlex.quote(a) for a in args)
    return f"mmfer report (config name {cfg.name!r}, output_dir {cfg.output_dir})"


def _runs(
    cfg: ExperimentConfig,
    table: pd.DataFrame,
    feats: dict[str, Any],
    mods: list[str],
    cached_cv: CachedCV,
    ledger: RunLedger,
) -> list[RunResult]:
    """Every model of ``eval.models`` + ``eval.reference`` under ``loco`` on ``table``."""
    from mmfer.estimators import list_estimators
    from mmfer.estimators.base import ESTIMATORS
    from mmfer.pipeline import media_hash
    from mmfer.tuning import base_model

    list_estimators()
    models = list(dict.fromkeys([*cfg.eval.models, *cfg.eval.reference]))
    for m in models:
        ESTIMATORS.get(base_model(m))  # unknown model -> ConfigError listing the valid names
    hashes = [media_hash(row) for row in table.to_dict("records")]
    return [
        cached_cv(
            table, feats, cfg, model_name=m, modalities=mods, protocol="loco", hashes=hashes, ledger=ledger
        )[0]
        for m in models
    ]


def crosscorpus_report(
    cfg: ExperimentConfig,
    out: Path,
    table: pd.DataFrame,
    feats: dict[str, Any],
    mods: list[str],
    cached_cv: CachedCV,
) -> dict[str, Path]:
    """Run and write the cross-corpus report (see the module docstring).

    Parameters
    ----------
    cfg
        A ``loco`` config over a multi-corpus table (``data.sources``).
    out, table, feats, mods
        What :func:`mmfer.experiment._setup` returns: output folder, sample table, features,
        modalities used.
    cached_cv
        :func:`mmfer.experiment.cached_cross_validate`.

    Returns
    -------
    dict[str, Path]
        ``report.md``, each table's CSV and the provenance files, by name.
    """
    from mmfer.evaluation.render import csv_text, to_html, to_markdown
    from mmfer.io import atomic_write_text
    from mmfer.provenance import RunLedger, code_version, report_provenance

    code = code_version()
    ledger = RunLedger(code, reuse=cfg.eval.reuse)
    command = _command(cfg)
    seed = cfg.eval.seed
    scores = [
        s for r in _runs(cfg, table, feats, mods, cached_cv, ledger) for s in fold_scores(r, table, seed=seed)
    ]
    raters = _raters_path(cfg)
    humans = None
    if raters is not None:
        from mmfer.data.cremad import load_rater_votes, rater_accuracy

        voice = rater_accuracy(load_rater_votes(raters[1]))["voice"] * 100
        humans = {raters[0]: f"acc {voice:.1f} (majority vote of the crowd raters, all clips)"}
    tables = [matrix_table(scores, code, command, humans)]
    for k, s in enumerate(cfg.eval.settings):
        sub = setting_table(table, s, f"eval.settings[{k}]")
        sub_cfg = replace(cfg, eval=replace(cfg.eval, loco_targets=[s.test]))
        runs = _runs(sub_cfg, sub, feats, mods, cached_cv, ledger)
        sub_scores = [sc for r in runs for sc in fold_scores(r, sub, seed=seed)]
        tables.append(setting_block(s, sub_scores, code, command, int((sub["corpus"] == s.test).sum())))
    if raters is not None:
        tables.append(raters_table(raters[1], code, command))
    report_dir = Path(cfg.eval.report_dir) if cfg.eval.report_dir else out / "report"
    written = dict(report_provenance(ledger, report_dir))
    counts = ", ".join(f"{c} {n}" for c, n in table["corpus"].value_counts().sort_index().items())
    blocks: list[tuple[str, Any]] = [
        ("h1", f"mmfer cross-corpus report — {counts} samples"),
        (
            "ul",
            [
                f"command: {command}",
                f"code version: {code}",
                f"modalities: {', '.join(mods)}; provenance: {ledger.summary()} (provenance.md)",
                "protocol: leave-one-corpus-out, closed set over each target's labels; nested selection: "
                + ("on speaker-grouped inner splits of the training corpora" if cfg.eval.select else "off"),
                "raters table: " + (str(raters[1]) if raters else "no cremad corpus with summaryTable.csv"),
                *_ignored(cfg),
            ],
        ),
        *[("table", t) for t in tables],
    ]
    written["report.md"] = atomic_write_text(report_dir / "report.md", to_markdown(blocks))
    written["report.html"] = atomic_write_text(report_dir / "report.html", to_html(blocks, str(blocks[0][1])))
    for t in tables:
        if t.stem:
            written[f"{t.stem}.csv"] = atomic_write_text(report_dir / f"{t.stem}.csv", csv_text(t))
    return written


def _ignored(cfg: ExperimentConfig) -> list[str]:
    """A report line (and a warning) naming the within-corpus report options loco does not run."""
    keys = ["ablations", "front_ends", "norm_conditions", "verify", "both_protocols"]
    ignored = [f"eval.{k}" for k in keys if getattr(cfg.eval, k)]
    if not ignored:
        return []
    line = f"not run under loco (within-corpus report options): {', '.join(ignored)}"
    log.warning(line)
    return [line]


def _raters_path(cfg: ExperimentConfig) -> tuple[str, Path] | None:
    """``(corpus name in the table, summaryTable.csv)`` of the table's CREMA-D corpus, if any."""
    found = [(cfg.data.corpus, cfg.data.root)] if cfg.data.corpus == "cremad" else []
    found += [(s.name or s.corpus, s.root) for s in cfg.data.sources if s.corpus == "cremad"]
    for name, root in found:
        if root and (Path(root) / "summaryTable.csv").is_file():
            return name, Path(root) / "summaryTable.csv"
    return None
