"""Every figure the README's results section quotes matches the committed results file it comes from.

The table :data:`FIGURES` is the whole design: one row per README phrase (a regular
expression whose groups capture the printed numbers, searched in one block of the
README's "Results on real data" section) and, for each captured number, where the
committed results file keeps it (:class:`Src`: a CSV cell, a Markdown-table cell, or a
regular expression over a file). A printed number agrees when the source value rounds to
it at the printed precision (``73.8`` accepts ``[73.75, 73.85]``).

When a report is regenerated, a failing case names the README phrase, the printed value,
the file and the row/column that disagrees. Figures the README quotes without a committed
source are listed in :data:`NO_COMMITTED_SOURCE` (not checked).
:func:`test_a_number_changed_by_hand_in_the_readme_fails` edits README numbers in memory and
requires the checks to fail, so the table cannot silently stop covering a figure.
"""

from __future__ import annotations

import csv
import json
import re
import struct
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RAV = "docs/reports/ravdess"
CKP = "docs/reports/ckplus48"
MELD = "docs/reports/meld"
XC = "docs/reports/crosscorpus"
DEFAULT_MODEL = "src/mmfer/inference/default_model/default.safetensors"
NUM = r"(-?\d+(?:\.\d+)?)"

#: Blocks of the README (start marker, end marker): each pattern is searched in one block,
#: whitespace collapsed, so a phrase may wrap over lines.
BLOCKS: dict[str, tuple[str, str]] = {
    "intro": ("## Results on real data", "**RAVDESS speech**"),
    "ravdess": ("**RAVDESS speech**", "Per-speaker normalisation conditions"),
    "conditions": ("Per-speaker normalisation conditions", "**CK+48**"),
    "ckplus48": ("**CK+48**", "**Ablation**"),
    "ablation": ("**Ablation**", "What this says"),
    "says": ("What this says", "**MELD text**"),
    "meld": ("**MELD text**", "**Cross-corpus**"),
    "crosscorpus": ("**Cross-corpus**", "**Real video**"),
    "video": ("**Real video**", "The paper reports"),
    "paper": ("The paper reports", "## The shipped default model"),
    "default_model": ("## The shipped default model", "## Front ends"),
}

#: Figures the README quotes for which no committed results file exists (not checked).
NO_COMMITTED_SOURCE: tuple[str, ...] = (
    "Set-up: demo timings (1 min 12 s, 1 min 50 s, 75 s, 7 min 20 s, CPU seconds, loads): measured by hand",
    "Set-up: demo accuracies 44.2 ± 0.4 (RMLSTM), 41.7 ± 8.3 (logreg), 16.7 (majority): runs/ not committed",
    "Results: '2-core CPU machine' (the machine the reports ran on, not a results file)",
    "Results: 'our earlier runs ... 99 % on CK+48 when frames of one sequence were split'",
    "Results: 'held-out speakers cost 10–20 points'",
    "Results: issue targets RAVDESS ≥ 83 %, CK+48 ≥ 95 %, MELD weighted F1 ≥ 0.63 (targets, not results)",
    "Results: CK+48 front end '128 pooled features + 7 logits' (a property of the extractor)",
    "Default model: 'mean-pooled to 8 steps', '~110 kB' (properties of the checkpoint, not results)",
    "Protocols: the paper's 99.57 % on SAVEE (a figure of the paper, not of a results file)",
)

#: Code versions the README names for the reports: each must be the one in the folder's provenance.md.
CODE_VERSIONS: dict[str, str] = {
    RAV: "0.1.0+c97b1d5b78b0",
    CKP: "0.1.0+c97b1d5b78b0",
    MELD: "0.1.0+b1ef58c0ee92",
    XC: "0.1.0+c23dc6df5260",
}


# --------------------------------------------------------------------------- sources


def _clean(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").strip()


def _matches(value: str, want: str) -> bool:
    """Exact match, or prefix match when ``want`` ends with ``*``."""
    value = _clean(value)
    return value.startswith(want[:-1]) if want.endswith("*") else value == want


@cache
def _csv_rows(path: str) -> list[dict[str, str]]:
    with open(ROOT / path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@cache
def _md_tables(path: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of a file as rows of ``{cleaned header: cell}``."""
    tables, block = [], []
    for line in [*(ROOT / path).read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if len(block) > 2:
            header = [_clean(h) for h in block[0]]
            tables.append([dict(zip(header, row, strict=False)) for row in block[2:]])
        block = []
    return tables


@cache
def _safetensors_metadata(path: str) -> str:
    """The ``__metadata__`` of a safetensors file as text (nested JSON strings decoded)."""
    raw = (ROOT / path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8 : 8 + n]).get("__metadata__", {})

    def decode(v: object) -> object:
        if isinstance(v, str) and v[:1] in "{[":
            try:
                return decode(json.loads(v))
            except ValueError:
                return v
        if isinstance(v, dict):
            return {k: decode(x) for k, x in v.items()}
        return v

    return json.dumps(decode(meta), ensure_ascii=False)


@dataclass(frozen=True)
class Src:
    """Where a committed results file keeps one figure.

    ``kind``: ``csv`` (cell ``column`` of the row matching ``where``), ``md`` (the same
    over the Markdown tables of the file; ``part`` picks the n-th number of the cell,
    e.g. 1 for the std of ``58.9 ± 9.9``), ``re`` (group 1 of regular expression
    ``column`` in the file) or ``st`` (the same over a safetensors file's metadata).
    ``where`` values ending in ``*`` match as prefixes. ``same_in_all`` takes every
    matching row and requires one common value.
    """

    file: str
    column: str
    where: tuple[tuple[str, str], ...] = ()
    kind: str = "csv"
    part: int = 0
    same_in_all: bool = False

    def describe(self) -> str:
        where = ", ".join(f"{k}={v!r}" for k, v in self.where)
        return f"{self.file} [{self.kind}] {self.column!r}" + (f" where {where}" if where else "")

    def _cells(self) -> list[str]:
        if self.kind in ("re", "st"):
            text = (
                _safetensors_metadata(self.file)
                if self.kind == "st"
                else (ROOT / self.file).read_text(encoding="utf-8")
            )
            return [str(f) for f in re.findall(self.column, text)]
        rows = _csv_rows(self.file) if self.kind == "csv" else [r for t in _md_tables(self.file) for r in t]
        hits = []
        for r in rows:
            col = next((k for k in r if _matches(k, self.column)), None)
            if col is not None and all(k in r and _matches(r[k], v) for k, v in self.where):
                hits.append(r[col])
        return hits

    def read(self) -> float:
        cells = self._cells()
        values = {float(re.findall(NUM, _clean(c))[self.part]) for c in cells if re.search(NUM, c)}
        if not cells or len(values) != 1 or (len(cells) > 1 and not self.same_in_all):
            raise AssertionError(f"{self.describe()}: expected one value, found {cells[:5]}")
        return values.pop()


@dataclass(frozen=True)
class Diff:
    """A figure the README derives: ``a - b``."""

    a: Src
    b: Src

    def describe(self) -> str:
        return f"({self.a.describe()}) - ({self.b.describe()})"

    def read(self) -> float:
        return self.a.read() - self.b.read()


@dataclass(frozen=True)
class Scaled:
    """A figure the README prints in other units: ``src * factor`` (seconds -> minutes, % -> fraction)."""

    src: Src
    factor: float

    def describe(self) -> str:
        return f"({self.src.describe()}) * {self.factor:g}"

    def read(self) -> float:
        return self.src.read() * self.factor


@dataclass(frozen=True)
class Figure:
    """README phrase (regex, groups = printed numbers) in a block -> one source per group."""

    block: str
    pattern: str
    sources: tuple[Src | Diff | Scaled, ...]


# --------------------------------------------------------------------------- the table


def _t3(report: str, model: str, column: str) -> Src:
    return Src(f"{report}/table3_models.csv", column, (("model", model),))


def _sig(report: str, model: str, column: str) -> Src:
    where = (("model_a", "rmlstm"), ("model_b", model), ("metric", "accuracy"))
    return Src(f"{report}/significance.csv", column, where)


def _fe(report: str, front_end: str, model: str, column: str = "accuracy_mean_pct") -> Src:
    return Src(f"{report}/table_front_ends.csv", column, (("front_end", front_end + "*"), ("model", model)))


def _pm(src: typing.Callable[[str], Src], metric: str) -> tuple[Src, Src]:
    """``mean ± std`` of ``metric`` (``accuracy``, ``uar``, ``weighted_f1``)."""
    return src(f"{metric}_mean_pct"), src(f"{metric}_std_pct")


PM = rf"{NUM} ± {NUM}"

MODEL_ROWS = {
    "RMLSTM": "rmlstm",
    "MLSTM": "mlstm",
    "LSTM": "lstm",
    "RNN": "rnn",
    "MLP": "mlp",
    "Transformer": "transformer",
    "logistic regression (linear probe)": "logreg",
    "SVM-RBF": "svm",
}


def _model_table(block: str, report: str) -> list[Figure]:
    """Rows ``| label | acc ± std | UAR ± std | lo–hi | p (Holm) |`` of a corpus's model table,
    then the majority-class and chance rows."""
    out = []
    for label, model in MODEL_ROWS.items():

        def t3(column: str, model: str = model) -> Src:
            return _t3(report, model, column)

        acc = (*_pm(t3, "accuracy"), *_pm(t3, "uar"), t3("ci_lo_pct"), t3("ci_hi_pct"))
        head = rf"\| {re.escape(label)} \| {PM} \| {PM} \| {NUM}–{NUM} \| "
        if model == "rmlstm":
            out.append(Figure(block, head + r"— \|", acc))
            continue
        sig = (_sig(report, model, "speaker_wilcoxon_p"), _sig(report, model, "primary_p_holm"))
        out.append(Figure(block, head + rf"{NUM} \({NUM}\) \|", (*acc, *sig)))

    def maj(column: str) -> Src:
        return _t3(report, "majority", column)

    out.append(
        Figure(block, rf"\| majority class \| {PM} \| {PM} \|", (*_pm(maj, "accuracy"), *_pm(maj, "uar")))
    )
    md = f"{report}/report.md"
    out.append(
        Figure(
            block,
            rf"\| chance \(1/{NUM}\) \| {NUM} \| {NUM} \|",
            (
                Src(md, r"\| chance \(1/(\d+)\) \|", kind="re"),
                Src(md, r"\| chance \(1/\d+\) \| — \| — \| ([\d.]+) \|", kind="re"),
                Src(md, r"\| chance \(1/\d+\) \| — \| — \| [\d.]+ \| ([\d.]+) \|", kind="re"),
            ),
        )
    )
    return out


def _front_end_row(block: str, report: str, label: str, front_end: str, models: tuple[str, str]) -> Figure:
    """``| label | acc ± std / acc ± std | UAR ± std / UAR ± std |`` for two models."""
    sources = tuple(
        _fe(report, front_end, m, f"{metric}_{stat}_pct")
        for metric in ("accuracy", "uar")
        for m in models
        for stat in ("mean", "std")
    )
    return Figure(block, rf"\| {re.escape(label)} \| {PM} / {PM} \| {PM} / {PM} \|", sources)


def _corpus_line(block: str, report: str, pattern: str) -> Figure:
    """``N clips/crops, S speakers, C classes (chance X %), ... K-fold`` from the report itself."""
    md = f"{report}/report.md"
    return Figure(
        block,
        pattern,
        (
            Src(md, r"# mmfer report — \w+ \((\d+) samples", kind="re"),
            Src(md, r"# mmfer report — \w+ \(\d+ samples, (\d+) speakers\)", kind="re"),
            Src(md, r"\| chance \(1/(\d+)\) \|", kind="re"),
            Src(md, r"\| chance \(1/\d+\) \| — \| — \| ([\d.]+) \|", kind="re"),
            _t3(report, "rmlstm", "folds"),
        ),
    )


def _cv_minutes(report: str) -> Scaled:
    """Cross-validation wall time of the report in minutes (its provenance.md keeps seconds)."""
    return Scaled(
        Src(f"{report}/provenance.md", r"cross-validation wall time: ([\d.]+) s", kind="re"), 1 / 60
    )


def _ablation(report: str) -> tuple[Src, ...]:
    models = ("rmlstm_gate", "rmlstm_layers", "rmlstm", "mlstm", "rmlstm_hfirst")  # the README's order
    return tuple(Src(f"{report}/table_ablation.csv", "accuracy_mean_pct", (("model", m),)) for m in models)


NORM = f"{RAV}/table_norm_conditions.csv"


def _norm(condition: str, model: str, column: str) -> Src:
    return Src(NORM, column, (("condition", condition), ("model", model)))


def _norm_row(label: str, condition: str) -> Figure:
    """``| label | logreg acc | logreg UAR | RMLSTM acc | RMLSTM UAR |`` of the conditions table."""
    sources = tuple(
        _norm(condition, m, f"{metric}_{stat}_pct")
        for m in ("logreg", "rmlstm")
        for metric in ("accuracy", "uar")
        for stat in ("mean", "std")
    )
    if NUM in label:  # "enrol: 4 unlabelled clips": the k of the condition
        sources = (ENROL_K, *sources)
    return Figure("conditions", rf"\| {label} \| {PM} \| {PM} \| {PM} \| {PM} \|", sources)


#: k of enrol / neutral_enrol, from the conditions table's own description of the rows.
ENROL_K = Src(NORM, r"enrol: k=(\d+) (?:unlabelled|neutral/calm) clips", kind="re", same_in_all=True)


def _md(file: str, column: str, part: int = 0, **where: str) -> Src:
    return Src(f"bench/results/{file}", column, tuple(where.items()), kind="md", part=part)


def _xc(model: str, train: str, test: str, setting: str = "loco") -> Src:
    """Accuracy of ``model`` trained on ``train`` and tested on ``test`` in the cross-corpus report."""
    stem = "crosscorpus_matrix" if setting == "loco" else f"setting_{setting}"
    where = (("setting", setting), ("model", model), ("train", train), ("test", test))
    return Src(f"{XC}/{stem}.csv", "accuracy_pct", where)


def _meld(model: str, column: str = "weighted_f1_mean_pct") -> Src:
    return _t3(MELD, model, column)


FUSION = "fusion_synthetic.md"
ABL = "crosscorpus_ablations.md"
ACTOR05 = "actor05.md"
SHIPPED = (
    "14 AV clips, shipped model of 2026-12-04*"  # the row of the newest actor05 table (the shipped model)
)
SLASH4 = rf"{NUM} / {NUM} / {NUM} / {NUM} / {NUM}"

SEQ = "docs/reports/ckplus48_seq"
FT = "docs/reports/ckplus48/finetune"
WLM = "docs/reports/ravdess/supplement_all_layers.md"
CREMA_EXTRA = "RAVDESS + CREMA-D (train only, balanced)"


def _wlm(data: str, row: str) -> tuple[Src, Src]:
    """``accuracy mean ± std`` of one row of the RAVDESS all-layer supplement table."""
    where = (("training data", data), ("row", row))
    return tuple(Src(WLM, "accuracy %*", where, kind="md", part=k) for k in (0, 1))  # type: ignore[return-value]


FIGURES: list[Figure] = [
    *[
        Figure(
            "intro",
            rf"\({NUM} candidates from each model's declared search space x {NUM} inner folds",
            (
                Src(f"{r}/selected_settings.csv", "candidates", same_in_all=True),
                Src(f"{r}/selected_settings.csv", "inner_folds", same_in_all=True),
            ),
        )
        for r in (RAV, CKP)
    ],
    *[
        Figure(
            "intro",
            rf"search reach, e\.g\. {NUM} / {NUM} for RMLSTM",
            (
                Src(f"{r}/selected_settings.csv", "tried", (("model", "rmlstm"),), same_in_all=True),
                Src(f"{r}/selected_settings.csv", "space_size", (("model", "rmlstm"),), same_in_all=True),
            ),
        )
        for r in (RAV, CKP)
    ],
    _corpus_line(
        "ravdess",
        RAV,
        rf"{NUM} clips, {NUM} actors, {NUM} classes \(chance {NUM} %\), actor-grouped {NUM}-fold",
    ),
    Figure("ravdess", rf"\({NUM} min of cross-validation", (_cv_minutes(RAV),)),
    Figure(  # the fusion steps of the committed config the report ran with
        "ravdess",
        rf"encoder frames pooled to {NUM} steps",
        (Src("configs/ravdess.yaml", r"\n  steps: (\d+)\n", kind="re"),),
    ),
    *_model_table("ravdess", RAV),
    _front_end_row("ravdess", RAV, "paper front end (MFCC) + MLP / + logreg", "paper", ("mlp", "logreg")),
    Figure(
        "conditions",
        rf"take k={NUM} clips of each test speaker for its statistics and do not score them, "
        rf"so {NUM} clips are scored",
        (ENROL_K, Src(NORM, "scored_clips", (("condition", "enrol"),), same_in_all=True)),
    ),
    _norm_row(r"none \(headline\)", "none"),
    _norm_row(rf"enrol: {NUM} unlabelled clips", "enrol"),
    _norm_row(rf"neutral_enrol: {NUM} neutral/calm clips", "neutral_enrol"),
    _norm_row(r"transductive: all its test clips \(comparison only, not a result\)", "transductive"),
    _corpus_line(
        "ckplus48",
        CKP,
        rf"{NUM} face crops, {NUM} subjects, {NUM} classes \(chance {NUM} %\), subject-grouped {NUM}-fold",
    ),
    Figure("ckplus48", rf"\({NUM} min of cross-validation", (_cv_minutes(CKP),)),
    *_model_table("ckplus48", CKP),
    _front_end_row(
        "ckplus48", CKP, "+ dlib 68 landmarks: RMLSTM / logreg", "face.landmarks=true", ("rmlstm", "logreg")
    ),
    _front_end_row(
        "ckplus48",
        CKP,
        "paper front end (EfficientNet-Lite0): RMLSTM / logreg",
        "paper",
        ("rmlstm", "logreg"),
    ),
    Figure("ablation", rf"RAVDESS {SLASH4};", _ablation(RAV)),
    Figure("ablation", rf"CK\+48 {SLASH4}\.", _ablation(CKP)),
    # "+32 points on RAVDESS" is MLP (the README's RAVDESS paper-front-end row), "+11 on CK+48" RMLSTM
    Figure(
        "says",
        rf"\+{NUM} points on RAVDESS, \+{NUM} on CK\+48 over the paper's front ends",
        (
            Diff(_fe(RAV, "this report's", "mlp"), _fe(RAV, "paper", "mlp")),
            Diff(_fe(CKP, "this report's", "rmlstm"), _fe(CKP, "paper", "rmlstm")),
        ),
    ),
    Figure(
        "says",
        rf"\(transductive, for comparison only\) gives {NUM} % \(logreg\) and {NUM} % \(RMLSTM\)",
        (
            _norm("transductive", "logreg", "accuracy_mean_pct"),
            _norm("transductive", "rmlstm", "accuracy_mean_pct"),
        ),
    ),
    Figure(
        "says",
        rf"{NUM} unlabelled enrolment clips per speaker — logreg gets {NUM} % and RMLSTM {NUM} %",
        (
            ENROL_K,
            _norm("enrol", "logreg", "accuracy_mean_pct"),
            _norm("enrol", "rmlstm", "accuracy_mean_pct"),
        ),
    ),
    Figure(
        "says",
        rf"enrolling with neutral/calm clips hurts \({NUM} % and {NUM} %\)",
        (
            _norm("neutral_enrol", "logreg", "accuracy_mean_pct"),
            _norm("neutral_enrol", "rmlstm", "accuracy_mean_pct"),
        ),
    ),
    Figure(
        "says",
        rf"RMLSTM {PM} %, logreg {PM} %, majority {NUM} % — a separate protocol",
        (
            *_pm(lambda c: _t3(SEQ, "rmlstm", c), "accuracy"),
            *_pm(lambda c: _t3(SEQ, "logreg", c), "accuracy"),
            _t3(SEQ, "majority", "accuracy_mean_pct"),
        ),
    ),
    Figure(
        "says",
        rf"beside accuracy there\): MLP {PM} %, logreg {PM} %, RMLSTM on 32 steps {PM} %, with learned layer "
        rf"weighting {PM} %; with all of CREMA-D as train-only extra data MLP {PM} %, logreg {PM} % "
        rf"\(majority {NUM} %\)",
        (
            *_wlm("RAVDESS only", "mlp, all layers, clipstats"),
            *_wlm("RAVDESS only", "logreg, all layers, clipstats"),
            *_wlm("RAVDESS only", "rmlstm, 32 steps, all layers"),
            *_wlm("RAVDESS only", "rmlstm, 32 steps, all layers, learned layer weighting"),
            *_wlm(CREMA_EXTRA, "mlp, all layers, clipstats"),
            *_wlm(CREMA_EXTRA, "logreg, all layers, clipstats"),
            _wlm(CREMA_EXTRA, "majority class")[0],
        ),
    ),
    Figure(
        "says",
        rf"10 folds as the table above\): {PM} % accuracy, UAR {PM} %, against {PM} % for logreg "
        rf"on the frozen features of the same folds \(higher on {NUM} of {NUM} folds",
        (
            *_pm(lambda c: _fe(FT, "face.backbone=fer2013_crop", "fer2013_ft", c), "accuracy"),
            *_pm(lambda c: _fe(FT, "face.backbone=fer2013_crop", "fer2013_ft", c), "uar"),
            *_pm(lambda c: _t3(FT, "logreg", c), "accuracy"),
            Src(f"{FT}/fer2013_ft_folds.md", r"higher on (\d+) of \d+ folds", kind="re"),
            Src(f"{FT}/fer2013_ft_folds.md", r"higher on \d+ of (\d+) folds", kind="re"),
        ),
    ),
    Figure(
        "meld",
        rf"official split, {NUM} classes",
        (Src(f"{MELD}/report.md", r"\| chance \(1/(\d+)\) \|", kind="re"),),
    ),
    Figure("meld", rf"\({NUM} min; code version", (_cv_minutes(MELD),)),
    Figure(
        "meld",
        rf"logreg {NUM} \(accuracy {NUM} %, UAR {NUM} %\), MLP {NUM}, RMLSTM {NUM}, majority {NUM};",
        (
            _meld("logreg"),
            _meld("logreg", "accuracy_mean_pct"),
            _meld("logreg", "uar_mean_pct"),
            _meld("mlp"),
            _meld("rmlstm"),
            _meld("majority"),
        ),
    ),
    Figure(
        "meld",
        rf"context logreg {NUM}, MLP {NUM}, RMLSTM {NUM}",
        (_meld("logreg@context"), _meld("mlp@context"), _meld("rmlstm@context")),
    ),
    Figure("meld", rf"not reached: best {NUM}", (Scaled(_meld("logreg"), 0.01),)),
    Figure(
        "crosscorpus",
        rf"Trained on RAVDESS, tested on CREMA-D \(6 classes\): MLP {NUM} %, logreg {NUM} %, RMLSTM {NUM} % "
        rf"\(majority {NUM} %; CREMA-D's crowd raters, voice only, {NUM} %\)",
        (
            *(_xc(m, "ravdess", "cremad") for m in ("mlp", "logreg", "rmlstm", "majority")),
            Src(f"{XC}/cremad_raters.csv", "accuracy_pct", (("raters", "voice"),)),
        ),
    ),
    Figure(
        "crosscorpus",
        rf"MLP {NUM} %, RMLSTM {NUM} %, logreg {NUM} % \(majority {NUM} %\). EmoBox",
        tuple(_xc(m, "cremad", "ravdess") for m in ("mlp", "rmlstm", "logreg", "majority")),
    ),
    Figure(
        "crosscorpus",
        rf"RAVDESS list\): RMLSTM {NUM} %, MLP {NUM} %, logreg {NUM} % \(EmoBox's best frozen encoder, "
        rf"trained on SAVEE: {NUM} %\)",
        (
            *(_xc(m, "cremad", "ravdess", "emobox4") for m in ("rmlstm", "mlp", "logreg")),
            Src(
                f"{XC}/report.md",
                r"SAVEE → RAVDESS \(EmoBox Table 5[^|]*\|[^|]*\|[^|]*\|[^|]*\| acc ([\d.]+)",
                kind="re",
            ),
        ),
    ),
    Figure(
        "crosscorpus",
        rf"The old front end \(final encoder output only\) gives logreg {NUM} % / {NUM} % / {NUM} %",
        (
            _md(
                ABL,
                "accuracy*",
                0,
                variant="CTranslate2 final layer*",
                model="logreg",
                setting="loco",
                **{"train → test": "ravdess → cremad"},
            ),
            _md(
                ABL,
                "accuracy*",
                0,
                variant="CTranslate2 final layer*",
                model="logreg",
                setting="loco",
                **{"train → test": "cremad → ravdess"},
            ),
            _md(ABL, "accuracy*", 0, variant="CTranslate2 final layer*", setting="emobox4", model="logreg"),
        ),
    ),
    Figure(
        "crosscorpus",
        rf"not the headline\): logreg {NUM} % / {NUM} % / {NUM} %",
        tuple(
            _md(ABL, "accuracy*", 0, variant="+ speaker enrolment*", model="logreg", setting=st, **tt)
            for st, tt in (
                ("loco", {"train → test": "ravdess → cremad"}),
                ("loco", {"train → test": "cremad → ravdess"}),
                ("emobox4", {}),
            )
        ),
    ),
    Figure(
        "video",
        rf"{NUM} RAVDESS videos of actor 05",
        (Src(f"bench/results/{ACTOR05}", r"(\d+) videos of actor 05", kind="re"),),
    ),
    Figure(
        "video",
        rf"face {NUM}/{NUM}, voice {NUM}/{NUM}, fused {NUM}/{NUM} on the audio-video clips",
        tuple(
            _md(ACTOR05, column, part, clips=SHIPPED)
            for column in ("face only", "voice only", "fused")
            for part in (0, 1)
        ),
    ),
    Figure(
        "video",
        rf"late fusion {NUM} % ≥ best single modality \(text {NUM} %\), early fusion {NUM} %",
        (
            _md(FUSION, "late (*", Modalities="face+audio+text"),
            _md(FUSION, "early (*", Modalities="text"),
            _md(FUSION, "early (*", Modalities="face+audio+text"),
        ),
    ),
    Figure(
        "paper",
        rf"The paper reports {NUM} % \(RAVDESS\) and {NUM} % \(CK\+\)",
        tuple(
            Src(f"{r}/table6_paper_vs_ours.csv", "accuracy_mean_pct", (("source", "paper Table 6 (claim)"),))
            for r in (RAV, CKP)
        ),
    ),
    # the shipped checkpoint's own metadata (what `mmfer predict --about` prints)
    Figure(
        "default_model",
        rf"\| voice \| RAVDESS speech, {NUM} actors \(actor 05 left out, so it is an unseen person\), "
        rf"{NUM} clips, {NUM} classes, \+ CREMA-D, {NUM} actors, {NUM} clips, {NUM} classes;",
        (
            Src(DEFAULT_MODEL, r"RAVDESS speech, (\d+) actors \(actor 05 left out", kind="st"),
            Src(
                DEFAULT_MODEL,
                r"RAVDESS speech, \d+ actors \(actor 05 left out[^)]*\), (\d+) clips",
                kind="st",
            ),
            Src(
                DEFAULT_MODEL,
                r"RAVDESS speech, \d+ actors \(actor 05 left out[^)]*\), \d+ clips, (\d+) classes",
                kind="st",
            ),
            Src(DEFAULT_MODEL, r"\+ CREMA-D, (\d+) actors", kind="st"),
            Src(DEFAULT_MODEL, r"\+ CREMA-D, \d+ actors, (\d+) clips", kind="st"),
            Src(DEFAULT_MODEL, r"\+ CREMA-D, \d+ actors, \d+ clips, (\d+) classes", kind="st"),
        ),
    ),
    Figure(
        "default_model",
        rf"leave-one-corpus-out, same recipe: {NUM} % RAVDESS → CREMA-D, {NUM} % CREMA-D → RAVDESS, "
        rf"{NUM} % on the EmoBox 4-class list",
        (
            Src(DEFAULT_MODEL, r"trained on RAVDESS, tested on CREMA-D ([\d.]+) %", kind="st"),
            Src(DEFAULT_MODEL, r"trained on CREMA-D, tested on RAVDESS ([\d.]+) %", kind="st"),
            Src(DEFAULT_MODEL, r"EmoBox's 4-class RAVDESS list, trained on CREMA-D, ([\d.]+) %", kind="st"),
        ),
    ),
    # ... and the same three figures in the report they come from
    Figure(
        "default_model",
        rf"leave-one-corpus-out, same recipe: {NUM} % RAVDESS → CREMA-D, {NUM} % CREMA-D → RAVDESS, "
        rf"{NUM} % on the EmoBox 4-class list",
        (
            _xc("logreg", "ravdess", "cremad"),
            _xc("logreg", "cremad", "ravdess"),
            _xc("logreg", "cremad", "ravdess", "emobox4"),
        ),
    ),
    Figure(
        "default_model",
        rf"its own decisions are right on {NUM}/{NUM} audio-video clips, against voice {NUM}/{NUM} and "
        rf"fused {NUM}/{NUM}",
        tuple(
            _md(ACTOR05, column, part, clips=SHIPPED)
            for column in ("face only", "voice only", "fused")
            for part in (0, 1)
        ),
    ),
]


# --------------------------------------------------------------------------- the checks


def _block(name: str, text: str | None = None) -> str:
    text = README.read_text(encoding="utf-8") if text is None else text
    start, end = BLOCKS[name]
    i = text.find(start)
    j = text.find(end, i + len(start))
    assert i >= 0 and j > i, f"README: block {name!r} ({start!r} .. {end!r}) not found; update BLOCKS"
    return " ".join(text[i:j].split())


def _agrees(printed: str, value: float) -> bool:
    """``value`` rounds to ``printed`` at its printed number of decimals (half-ulp either way)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-9


def _problems(fig: Figure, text: str | None = None) -> list[str]:
    """Why ``fig`` disagrees with its sources in README ``text`` (the committed README by default)."""
    block = _block(fig.block, text)
    found = re.findall(fig.pattern, block)
    if len(found) != 1:
        return [
            f"README block {fig.block!r}: phrase {fig.pattern!r} found {len(found)} times "
            "(reworded? update FIGURES in tests/test_readme_figures.py)"
        ]
    printed = found[0] if isinstance(found[0], tuple) else (found[0],)
    assert len(printed) == len(fig.sources), (
        f"{fig.pattern!r}: {len(printed)} numbers, {len(fig.sources)} sources"
    )
    return [
        f"README block {fig.block!r}, phrase {fig.pattern!r}: "
        f"prints {p} but {src.describe()} gives {value:.6g}"
        for p, src in zip(printed, fig.sources, strict=True)
        if not _agrees(p, value := src.read())
    ]


def _id(fig: Figure) -> str:
    words = re.sub(r"\\.|[^\w+ ]", " ", fig.pattern.replace(NUM, "#")).split()
    return f"{fig.block}:" + "_".join(words[:6])


@pytest.mark.parametrize("fig", FIGURES, ids=[f"{i:02d}-{_id(f)}" for i, f in enumerate(FIGURES)])
def test_readme_figure_matches_its_results_file(fig: Figure) -> None:
    wrong = _problems(fig)
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_a_wrong_figure() -> None:
    """The comparison is at the printed precision: 73.8 accepts 73.77, refuses 73.9 and 73.7."""
    assert _agrees("73.8", 73.76666)
    assert not _agrees("73.9", 73.76666) and not _agrees("73.7", 73.76666)
    assert _agrees("0.0067", 0.006707876) and not _agrees("0.0068", 0.006707876)
    assert _agrees("31", 31.13) and not _agrees("32", 31.13)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("| RMLSTM | 68.8 ± 5.6 |", "| RMLSTM | 68.9 ± 5.6 |"),  # RAVDESS headline accuracy
        ("| 69.7 ± 3.4 | 69.4 ± 3.4 |", "| 69.7 ± 3.4 | 69.9 ± 3.4 |"),  # enrol logreg UAR
        ("| MLSTM | 89.5 ± 3.0 |", "| MLSTM | 89.5 ± 3.9 |"),  # CK+48 std
        ("not reached: best 0.598", "not reached: best 0.608"),  # MELD
        ("face 2/14, voice 9/14", "face 2/14, voice 10/14"),  # actor 05
        ("same recipe: 39.5 % RAVDESS", "same recipe: 39.7 % RAVDESS"),  # shipped voice part
        ("RMLSTM 71.7 %, MLP 69.6 %", "RMLSTM 70.7 %, MLP 69.6 %"),  # cross-corpus EmoBox row
    ],
)
def test_a_number_changed_by_hand_in_the_readme_fails(old: str, new: str) -> None:
    """The committed README passes; the same README with one number edited does not."""
    text = README.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"tamper target {old!r} not found once in README.md"
    tampered = text.replace(old, new)
    changed = [f for f in FIGURES if _block(f.block, tampered) != _block(f.block, text)]
    assert changed, f"no figure covers {old!r}"
    assert any(_problems(f, tampered) for f in changed), f"editing {old!r} -> {new!r} went unnoticed"


def test_every_results_file_named_in_the_table_is_committed() -> None:
    def files(s: Src | Diff | Scaled) -> set[str]:
        if isinstance(s, Diff):
            return files(s.a) | files(s.b)
        if isinstance(s, Scaled):
            return files(s.src)
        return {s.file}

    named = {f for fig in FIGURES for s in fig.sources for f in files(s)}
    missing = sorted(f for f in named if not (ROOT / f).is_file())
    assert not missing, f"results files named in FIGURES but absent: {missing}"


@pytest.mark.parametrize("report", sorted(CODE_VERSIONS))
def test_readme_code_versions_are_those_of_the_reports(report: str) -> None:
    version = CODE_VERSIONS[report]
    provenance = (ROOT / report / "provenance.md").read_text(encoding="utf-8")
    assert f"- code version: `{version}`" in provenance, (
        f"{report}/provenance.md is not code version {version}"
    )
    results = _block("intro") + " " + _block("meld") + " " + _block("crosscorpus")
    assert f"`{version}`" in results, f"README's results section does not name code version {version}"
