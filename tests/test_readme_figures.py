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
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RAV = "docs/reports/ravdess"
CKP = "docs/reports/ckplus48"
NUM = r"(-?\d+(?:\.\d+)?)"

#: Blocks of the README (start marker, end marker): each pattern is searched in one block,
#: whitespace collapsed, so a phrase may wrap over lines.
BLOCKS: dict[str, tuple[str, str]] = {
    "intro": ("## Results on real data", "**RAVDESS speech**"),
    "ravdess": ("**RAVDESS speech**", "**CK+48**"),
    "ckplus48": ("**CK+48**", "**Ablation**"),
    "ablation": ("**Ablation**", "What this says"),
    "says": ("What this says", "**MELD text**"),
    "meld": ("**MELD text**", "**Real video**"),
    "video": ("**Real video**", "The paper reports"),
    "paper": ("The paper reports", "## The shipped default model"),
    "default_model": ("## The shipped default model", "## Front ends"),
}

#: Figures the README quotes for which no committed results file exists (not checked).
NO_COMMITTED_SOURCE: tuple[str, ...] = (
    "Set-up: demo timings (1 min 12 s, 1 min 50 s, 75 s, 7 min 20 s, CPU seconds, loads): measured by hand",
    "Set-up: demo accuracies 44.2 ± 0.4 (RMLSTM), 41.7 ± 8.3 (logreg), 16.7 (majority): runs/ not committed",
    "Results: 'our earlier runs ... 99 % on CK+48 when frames of one sequence were split'",
    "Results: 'held-out speakers cost 10–20 points'",
    "Results: issue targets RAVDESS ≥ 83 %, CK+48 ≥ 95 %, MELD 0.60 (targets, not results)",
    "Default model: voice 68.8 ± 6.0 %, face 89.0 ± 3.5 % (from runs/default-model/, not committed)",
    "Protocols: the paper's 99.57 % on SAVEE (a figure of the paper, not of a results file)",
)


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


@dataclass(frozen=True)
class Src:
    """Where a committed results file keeps one figure.

    ``kind``: ``csv`` (cell ``column`` of the row matching ``where``), ``md`` (the same
    over the Markdown tables of the file; ``part`` picks the n-th number of the cell,
    e.g. 1 for the std of ``58.9 ± 9.9``) or ``re`` (group 1 of regular expression
    ``column`` in the file). ``where`` values ending in ``*`` match as prefixes.
    ``same_in_all`` takes every matching row and requires one common value.
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
        if self.kind == "re":
            found = re.findall(self.column, (ROOT / self.file).read_text(encoding="utf-8"))
            return [str(f) for f in found]
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
class Figure:
    """README phrase (regex, groups = printed numbers) in a block -> one source per group."""

    block: str
    pattern: str
    sources: tuple[Src | Diff, ...]


# --------------------------------------------------------------------------- the table


def _t3(report: str, model: str, column: str) -> Src:
    return Src(f"{report}/table3_models.csv", column, (("model", model),))


def _sig(report: str, model: str, column: str) -> Src:
    return Src(f"{report}/significance.csv", column, (("model_a", "rmlstm"), ("model_b", model)))


def _fe(report: str, front_end: str, model: str, column: str = "accuracy_mean_pct") -> Src:
    return Src(f"{report}/table_front_ends.csv", column, (("front_end", front_end + "*"), ("model", model)))


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
    """The rows ``| label | mean ± std | lo–hi | p (Holm) |`` of a corpus's model table."""
    out = []
    for label, model in MODEL_ROWS.items():
        acc = [
            _t3(report, model, c) for c in ("accuracy_mean_pct", "accuracy_std_pct", "ci_lo_pct", "ci_hi_pct")
        ]
        if model == "rmlstm":
            pattern = rf"\| {re.escape(label)} \| {NUM} ± {NUM} \| {NUM}–{NUM} \| — \|"
            out.append(Figure(block, pattern, tuple(acc)))
            continue
        pattern = rf"\| {re.escape(label)} \| {NUM} ± {NUM} \| {NUM}–{NUM} \| {NUM} \({NUM}\) \|"
        sig = (_sig(report, model, "speaker_wilcoxon_p"), _sig(report, model, "primary_p_holm"))
        out.append(Figure(block, pattern, (*acc, *sig)))
    majority = (_t3(report, "majority", "accuracy_mean_pct"), _t3(report, "majority", "accuracy_std_pct"))
    out.append(Figure(block, rf"\| majority class \| {NUM} ± {NUM} \|", majority))
    return out


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


def _ablation(report: str) -> tuple[Src, ...]:
    models = ("rmlstm_gate", "rmlstm_layers", "rmlstm", "mlstm", "rmlstm_hfirst")  # the README's order
    return tuple(Src(f"{report}/table_ablation.csv", "accuracy_mean_pct", (("model", m),)) for m in models)


def _md(file: str, column: str, part: int = 0, **where: str) -> Src:
    return Src(f"bench/results/{file}", column, tuple(where.items()), kind="md", part=part)


def _meld(file: str, features: str, column: str = "test weighted F1") -> Src:
    return _md(file, column, **{"text features": features, "context k": "0"})


SPEAKER_NORM = "ravdess_speaker_norm.md"
FUSION = "fusion_synthetic.md"
ACTOR05 = "actor05.md"
HELD_OUT = "(b) voice without actor 05*"
SLASH4 = rf"{NUM} / {NUM} / {NUM} / {NUM} / {NUM}"

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
    _corpus_line(
        "ravdess",
        RAV,
        rf"{NUM} clips, {NUM} actors, {NUM} classes \(chance {NUM} %\), actor-grouped {NUM}-fold",
    ),
    Figure(  # the fusion steps of the config the report ran with (its dump in the bench results file)
        "ravdess",
        rf"encoder frames pooled to {NUM} steps",
        (Src("bench/results/ravdess.md", r"\n  steps: (\d+)\n", kind="re"),),
    ),
    *_model_table("ravdess", RAV),
    Figure(
        "ravdess",
        rf"\| paper front end \(MFCC\) \+ MLP / \+ logreg \| {NUM} ± {NUM} / {NUM} ± {NUM} \|",
        tuple(
            _fe(RAV, "paper", m, c)
            for m in ("mlp", "logreg")
            for c in ("accuracy_mean_pct", "accuracy_std_pct")
        ),
    ),
    _corpus_line(
        "ckplus48",
        CKP,
        rf"{NUM} face crops, {NUM} subjects, {NUM} classes \(chance {NUM} %\), subject-grouped {NUM}-fold",
    ),
    *_model_table("ckplus48", CKP),
    Figure(
        "ckplus48",
        rf"\| \+ dlib 68 landmarks: RMLSTM / logreg \| {NUM} ± {NUM} / {NUM} ± {NUM} \|",
        tuple(
            _fe(CKP, "face.landmarks=true", m, c)
            for m in ("rmlstm", "logreg")
            for c in ("accuracy_mean_pct", "accuracy_std_pct")
        ),
    ),
    Figure(
        "ckplus48",
        rf"\| paper front end \(EfficientNet-Lite0\): RMLSTM / logreg \| {NUM} ± {NUM} / {NUM} ± {NUM} \|",
        tuple(
            _fe(CKP, "paper", m, c)
            for m in ("rmlstm", "logreg")
            for c in ("accuracy_mean_pct", "accuracy_std_pct")
        ),
    ),
    Figure("ablation", rf"RAVDESS {SLASH4};", _ablation(RAV)),
    Figure("ablation", rf"CK\+48 {SLASH4}\.", _ablation(CKP)),
    # "+31 points on RAVDESS" is MLP (the README's RAVDESS paper-front-end row), "+14 on CK+48" RMLSTM
    Figure(
        "says",
        rf"\+{NUM} points on RAVDESS, \+{NUM} on CK\+48 over the paper's front ends",
        (
            Diff(_fe(RAV, "this report's", "mlp"), _fe(RAV, "paper", "mlp")),
            Diff(_fe(CKP, "this report's", "rmlstm"), _fe(CKP, "paper", "rmlstm")),
        ),
    ),
    Figure(
        "says", rf"without it the MLP gives {NUM} %", (_md(SPEAKER_NORM, "speaker norm off", model="MLP"),)
    ),
    Figure(
        "meld",
        rf"official split, {NUM} classes",
        (Src("bench/results/meld.md", r"(\d+) emotions", kind="re"),),
    ),
    Figure(
        "meld",
        rf"weighted F1 {NUM} \(accuracy {NUM} %\) with MiniLM sentence embeddings pooled over layers",
        (
            _meld("meld_layers.md", "embedding (MiniLM layers 3-4-5-6)"),
            _meld("meld_layers.md", "embedding (MiniLM layers 3-4-5-6)", "test accuracy %"),
        ),
    ),
    Figure(
        "meld",
        rf"{NUM} for TF-IDF \+ embedding, {NUM} for TF-IDF \(smooth idf\), {NUM} \(paper idf\), "
        rf"majority {NUM};",
        (
            _meld("meld.md", "TF-IDF (smooth) + embedding"),
            _meld("meld.md", "TF-IDF (smooth idf)"),
            _meld("meld.md", "TF-IDF (paper idf)"),
            _meld("meld.md", "majority class (neutral)"),
        ),
    ),
    Figure(
        "video",
        rf"{NUM} RAVDESS videos of actor 05",
        (Src(f"bench/results/{ACTOR05}", r"(\d+) videos of actor 05", kind="re"),),
    ),
    Figure(
        "video",
        rf"voice {NUM}/{NUM}, face {NUM}/{NUM}, fused {NUM}/{NUM} on the audio-video clips",
        tuple(
            _md(ACTOR05, HELD_OUT, part, **{"": row})
            for row in ("14 AV clips, voice part alone", "14 AV clips, face part alone", "14 AV clips, fused")
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
    Figure(
        "default_model",
        rf"its own decisions are right on {NUM}/{NUM} audio-video clips",
        tuple(_md(ACTOR05, HELD_OUT, p, **{"": "14 AV clips, face part alone"}) for p in (0, 1)),
    ),
    Figure(
        "default_model",
        rf"\(voice {NUM}/14, fused {NUM}/14\)",
        tuple(
            _md(ACTOR05, HELD_OUT, **{"": row})
            for row in ("14 AV clips, voice part alone", "14 AV clips, fused")
        ),
    ),
]


# --------------------------------------------------------------------------- the checks


@cache
def _block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    start, end = BLOCKS[name]
    i = text.find(start)
    j = text.find(end, i + len(start))
    assert i >= 0 and j > i, f"README: block {name!r} ({start!r} .. {end!r}) not found; update BLOCKS"
    return " ".join(text[i:j].split())


def _agrees(printed: str, value: float) -> bool:
    """``value`` rounds to ``printed`` at its printed number of decimals (half-ulp either way)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-9


def _id(fig: Figure) -> str:
    words = re.sub(r"\\.|[^\w+ ]", " ", fig.pattern.replace(NUM, "#")).split()
    return f"{fig.block}:" + "_".join(words[:6])


@pytest.mark.parametrize("fig", FIGURES, ids=[f"{i:02d}-{_id(f)}" for i, f in enumerate(FIGURES)])
def test_readme_figure_matches_its_results_file(fig: Figure) -> None:
    block = _block(fig.block)
    found = re.findall(fig.pattern, block)
    assert len(found) == 1, (
        f"README block {fig.block!r}: phrase {fig.pattern!r} found {len(found)} times "
        "(reworded? update FIGURES in tests/test_readme_figures.py)"
    )
    printed = found[0] if isinstance(found[0], tuple) else (found[0],)
    assert len(printed) == len(fig.sources), (
        f"{fig.pattern!r}: {len(printed)} numbers, {len(fig.sources)} sources"
    )
    wrong = [
        f"README prints {p} but {src.describe()} gives {value:.6g}"
        for p, src in zip(printed, fig.sources, strict=True)
        if not _agrees(p, value := src.read())
    ]
    assert not wrong, f"README block {fig.block!r}, phrase {fig.pattern!r}:\n" + "\n".join(wrong)


def test_the_checks_catch_a_wrong_figure() -> None:
    """The comparison is at the printed precision: 73.8 accepts 73.77, refuses 73.9 and 73.7."""
    assert _agrees("73.8", 73.76666)
    assert not _agrees("73.9", 73.76666) and not _agrees("73.7", 73.76666)
    assert _agrees("0.0067", 0.006707876) and not _agrees("0.0068", 0.006707876)
    assert _agrees("31", 31.13) and not _agrees("32", 31.13)


def test_every_results_file_named_in_the_table_is_committed() -> None:
    files = {s.file for f in FIGURES for s in f.sources if isinstance(s, Src)}
    files |= {x.file for f in FIGURES for s in f.sources if isinstance(s, Diff) for x in (s.a, s.b)}
    missing = sorted(f for f in files if not (ROOT / f).is_file())
    assert not missing, f"results files named in FIGURES but absent: {missing}"
