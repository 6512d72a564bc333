"""Report writer: files, self-contained HTML, numbers traceable to the inputs, loud warnings."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import numpy as np
import pytest

from mmfer.errors import DataError
from mmfer.evaluation import paper
from mmfer.evaluation.audit import ComponentFit, LeakageAudit
from mmfer.evaluation.metrics import classification_metrics, format_pm, summarise_folds
from mmfer.evaluation.report import write_report
from mmfer.evaluation.results import (
    SYNTHETIC_WARNING,
    ProtocolResults,
    ReportData,
    RunResult,
    compare_runs,
)
from mmfer.evaluation.tables import METRIC_COLUMNS

LABELS = ["neutral", "happy", "sad", "angry"]
MODELS = ("rmlstm", "lstm", "mlp")
MODALITY_SETS = (("face", "audio", "text"), ("audio",))
PROTOCOL = "speaker-independent leave-one-speaker-out (3 folds)"
DEP_PROTOCOL = "speaker-dependent stratified 3-fold"


def _run(model: str, mods: tuple[str, ...], protocol: str, seed: int, skill: float) -> RunResult:
    """Random predictions over 3 folds, the same test samples (y_true) for every run."""
    rng_y = np.random.default_rng(1234)  # shared: all runs see the same pooled test set
    rng = np.random.default_rng(seed)
    folds, y_true, y_pred, history = [], [], [], []
    for k in range(3):
        y = rng_y.integers(0, len(LABELS), size=24 + k)
        p = np.where(rng.uniform(size=y.size) < skill, y, rng.integers(0, len(LABELS), size=y.size))
        folds.append(classification_metrics(y, p, range(len(LABELS)), names=LABELS))
        y_true += y.tolist()
        y_pred += p.tolist()
        losses = np.sort(rng.uniform(0.2, 1.5, size=5))[::-1]
        history.append(
            [
                {"epoch": e + 1, "train_loss": float(v), "val_loss": float(v) + 0.1}
                for e, v in enumerate(losses)
            ]
        )
    return RunResult(
        model=model,
        modalities=mods,
        protocol=protocol,
        fold_metrics=folds,
        y_true=y_true,
        y_pred=y_pred,
        labels=list(LABELS),
        train_seconds=rng.uniform(30, 300, size=3).tolist(),
        test_seconds_per_sample=float(rng.uniform(1e-4, 1e-2)),
        history=history,
    )


def _runs(protocol: str, offset: int = 0, skill: float = 0.5) -> list[RunResult]:
    return [
        _run(m, mods, protocol, seed=offset + 10 * i + j, skill=skill + 0.1 * (m == "rmlstm"))
        for i, m in enumerate(MODELS)
        for j, mods in enumerate(MODALITY_SETS)
    ]


def _clean_audit(folds: int = 3) -> LeakageAudit:
    return LeakageAudit(
        speaker_overlap=[0] * folds,
        components=[ComponentFit("fuser", 3, 60, 0), ComponentFit("estimator rmlstm", 3, 60, 0)],
        duplicate_clips_across_splits=0,
        notes=["audit by test"],
    )


def _data(**overrides) -> ReportData:
    runs = _runs(PROTOCOL)
    full = [r for r in runs if len(r.modalities) == 3]
    sig = [compare_runs(full[0], other) for other in full[1:]]
    kwargs = dict(
        corpus="savee",
        is_synthetic=False,
        protocol=PROTOCOL,
        runs=runs,
        significance=sig,
        leakage=_clean_audit(),
    )
    kwargs.update(overrides)
    return ReportData(**kwargs)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportData, dict[str, Path]]:
    dep_runs = _runs(DEP_PROTOCOL, offset=500, skill=0.8)
    second = ProtocolResults(
        protocol=DEP_PROTOCOL,
        runs=dep_runs,
        # the flag is recorded when the split is made (no guessing from the protocol's text)
        leakage=LeakageAudit(
            speaker_overlap=[3, 3, 3], duplicate_clips_across_splits=0, speaker_independent=False
        ),
    )
    data = _data(second=second)
    return data, write_report(data, tmp_path_factory.mktemp("report"))


def _section(md: str, heading_start: str) -> str:
    start = md.index(f"### {heading_start}")
    nxt = md.find("\n#", start + 4)
    return md[start : nxt if nxt != -1 else None]


def _row(section: str, first_cells: list[str]) -> list[str]:
    prefix = "| " + " | ".join(first_cells) + " |"
    lines = [ln for ln in section.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, f"expected one row starting {prefix!r} in\n{section}"
    return [c.strip() for c in lines[0].strip("|").split(" | ")]


def test_all_files_written(report: tuple[ReportData, dict[str, Path]]) -> None:
    _, files = report
    expected = {
        "report.md",
        "report.html",
        "table1_modalities.csv",
        "table3_models.csv",
        "table5_timing.csv",
        "table6_paper_vs_ours.csv",
        "significance.csv",
        "per_fold.csv",
        "protocol_comparison.csv",
        "fold_accuracy.png",
        "training_curves_rmlstm.png",
        *(f"confusion_{m}_face_audio_text.png" for m in MODELS),
    }
    assert expected <= set(files)
    for name, path in files.items():
        assert path.is_file() and path.stat().st_size > 0, name
        assert path.name == name
    for png in (p for n, p in files.items() if n.endswith(".png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # No leftover temporary files from the atomic writes.
    assert not list(files["report.md"].parent.glob("*.tmp"))


def test_html_is_self_contained(report: tuple[ReportData, dict[str, Path]]) -> None:
    _, files = report
    text = files["report.html"].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "<link" not in text.lower() and "<script" not in text.lower()
    assert "http://" not in text and "https://" not in text
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    n_png = sum(1 for n in files if n.endswith(".png"))
    assert len(imgs) == n_png
    embedded = {base64.b64decode(b) for b in imgs}
    on_disk = {p.read_bytes() for n, p in files.items() if n.endswith(".png")}
    assert embedded == on_disk
    assert "<style>" in text


def test_markdown_numbers_match_summarise_folds(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, files = report
    md = files["report.md"].read_text(encoding="utf-8")
    t3 = _section(md, "Table 3")
    for r in (r for r in data.runs if len(r.modalities) == 3):
        cells = _row(t3, [r.model, "face+audio+text", "3"])
        s = summarise_folds(r.fold_metrics)
        for i, (_, key) in enumerate(METRIC_COLUMNS):
            node = s
            for part in key.split("."):
                node = node[part]
            assert cells[3 + i] == format_pm(node["mean"], node["std"]), (r.model, key)
        assert cells[-1] == f"{paper.paper_model_row('savee', r.model)['accuracy']:.2f}"
    t1 = _section(md, "Table 1")
    for r in (r for r in data.runs if r.model == "rmlstm"):
        cells = _row(t1, [r.modality_text])
        s = summarise_folds(r.fold_metrics)
        assert cells[2] == format_pm(s["accuracy"]["mean"], s["accuracy"]["std"])
        assert cells[3] == format_pm(s["uar"]["mean"], s["uar"]["std"])
        assert cells[4] == format_pm(s["macro_f1"]["mean"], s["macro_f1"]["std"])
        assert cells[5] == format_pm(s["macro"]["ppv"]["mean"], s["macro"]["ppv"]["std"])
    # The ablation lists the primary model only: one row per modality set, after header and rule.
    assert len([ln for ln in t1.splitlines() if ln.startswith("|")]) == 2 + len(MODALITY_SETS)
    assert _row(t1, ["audio"])[-1] == f"{paper.TABLE1_SAVEE_MODALITIES['Audio']['accuracy']:.2f}"


def test_csv_numbers_match_inputs(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, files = report
    with open(files["table3_models.csv"], newline="", encoding="utf-8") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(MODELS)
    for r in (r for r in data.runs if len(r.modalities) == 3):
        s = summarise_folds(r.fold_metrics)
        assert float(rows[r.model]["accuracy_mean_pct"]) == pytest.approx(s["accuracy"]["mean"] * 100)
        assert float(rows[r.model]["macro_mcc_ovr_std_pct"]) == pytest.approx(
            s["macro"]["mcc_ovr"]["std"] * 100
        )
        assert rows[r.model]["protocol"] == PROTOCOL
    with open(files["per_fold.csv"], newline="", encoding="utf-8") as fh:
        per_fold = list(csv.DictReader(fh))
    assert len(per_fold) == 2 * len(MODELS) * len(MODALITY_SETS) * 3  # two protocols
    r0 = data.runs[0]
    first = next(p for p in per_fold if p["model"] == r0.model and p["modalities"] == r0.modality_text)
    assert float(first["accuracy"]) == pytest.approx(r0.fold_metrics[0]["accuracy"])
    with open(files["table5_timing.csv"], newline="", encoding="utf-8") as fh:
        timing = {r["model"]: r for r in csv.DictReader(fh)}
    full = {r.model: r for r in data.runs if len(r.modalities) == 3}
    for m, r in full.items():
        assert float(timing[m]["train_s_mean"]) == pytest.approx(np.mean(r.train_seconds))
        assert float(timing[m]["test_ms_per_sample"]) == pytest.approx(r.test_seconds_per_sample * 1000)


def test_every_title_names_the_protocol(report: tuple[ReportData, dict[str, Path]]) -> None:
    _, files = report
    md = files["report.md"].read_text(encoding="utf-8")
    titles = [ln for ln in md.splitlines() if ln.startswith("### ")]
    assert len(titles) >= 7
    for t in titles:
        assert PROTOCOL in t, t
    captions = re.findall(r"!\[((?:\\.|[^\]\\])*)\]\(([^)]+\.png)\)", md)
    assert len(captions) == sum(1 for n in files if n.endswith(".png"))
    for caption, _ in captions:
        assert PROTOCOL in caption
    for m in MODELS:
        assert f"| {m} |" in md


def test_paper_side_by_side_and_protocol_inflation(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, files = report
    md = files["report.md"].read_text(encoding="utf-8")
    t6 = _section(md, "Table 6")
    assert "99.57" in t6 and "not stated (likely speaker-dependent)" in t6
    ours = next(r for r in data.runs if r.model == "rmlstm" and len(r.modalities) == 3)
    acc = summarise_folds(ours.fold_metrics)["accuracy"]
    cells = _row(t6, ["this run (mmfer)", "rmlstm [face+audio+text]", "savee", PROTOCOL])
    assert cells[4] == format_pm(acc["mean"], acc["std"])
    assert cells[5] == f"{acc['mean'] * 100 - 99.57:.1f}"

    with open(files["protocol_comparison.csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(MODELS) * len(MODALITY_SETS)
    dep = {(r.model, r.modality_text): r for r in data.second.runs}
    for row in rows:
        ind_run = next(
            r for r in data.runs if r.model == row["model"] and r.modality_text == row["modalities"]
        )
        a = summarise_folds(ind_run.fold_metrics)["accuracy"]["mean"]
        b = summarise_folds(dep[(row["model"], row["modalities"])].fold_metrics)["accuracy"]["mean"]
        assert float(row["difference_pp"]) == pytest.approx((b - a) * 100)
    assert "Inflation (pp)" in md
    # The speaker-dependent protocol's overlap is expected, not a leak; the main audit is clean.
    assert "LEAK" not in md
    assert SYNTHETIC_WARNING not in md


def test_significance_csv_matches_rows(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, files = report
    with open(files["significance.csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # One row per comparison and metric: accuracy, then UAR.
    assert len(data.significance) == 2
    assert [r["metric"] for r in rows] == ["accuracy", "uar"] * 2
    flat = [m for s in data.significance for m in s.with_other_metrics()]
    for row, s in zip(rows, flat, strict=True):
        assert (row["model_a"], row["model_b"], row["metric"]) == (s.model_a, s.model_b, s.metric)
        assert float(row["wilcoxon_p"]) == pytest.approx(s.wilcoxon_p)
        assert int(row["mcnemar_b"]) == s.mcnemar_b


def test_compare_runs_counts_discordant_pairs() -> None:
    a = _run("rmlstm", ("audio",), PROTOCOL, seed=1, skill=0.9)
    b = _run("mlp", ("audio",), PROTOCOL, seed=2, skill=0.3)
    row = compare_runs(a, b)
    ya, pa, pb = np.array(a.y_true), np.array(a.y_pred), np.array(b.y_pred)
    assert row.mcnemar_b == int(np.sum((pa == ya) & (pb != ya)))
    assert row.mcnemar_c == int(np.sum((pa != ya) & (pb == ya)))
    assert row.mean_diff == pytest.approx(
        np.mean([f["accuracy"] for f in a.fold_metrics]) - np.mean([f["accuracy"] for f in b.fold_metrics])
    )
    a.sample_ids = [f"s{i}" for i in range(len(a.y_true))]
    b.sample_ids = list(a.sample_ids)
    assert compare_runs(a, b).mcnemar_b == row.mcnemar_b
    b.sample_ids = a.sample_ids[::-1]  # same labels, different sample order: cannot pair
    assert compare_runs(a, b).mcnemar_b is None
    b.sample_ids = []
    b.y_true = b.y_true[::-1]
    assert compare_runs(a, b).mcnemar_b is None


def _small(**overrides) -> ReportData:
    run = _run("rmlstm", ("face", "audio"), PROTOCOL, seed=7, skill=0.6)
    run.history = []
    kwargs = dict(
        corpus="synthetic", is_synthetic=False, protocol=PROTOCOL, runs=[run], leakage=_clean_audit()
    )
    kwargs.update(overrides)
    return ReportData(**kwargs)


def test_synthetic_warning_is_loud(tmp_path: Path) -> None:
    files = write_report(_small(is_synthetic=True), tmp_path)
    md = files["report.md"].read_text(encoding="utf-8")
    html_text = files["report.html"].read_text(encoding="utf-8")
    assert SYNTHETIC_WARNING in md.splitlines()[2]  # right under the title
    assert SYNTHETIC_WARNING in html_text
    assert "[SYNTHETIC]" in _section(md, "Table 3")
    assert "training_curves_rmlstm.png" not in files  # no history given


@pytest.mark.parametrize(
    ("audit", "independent", "expect_leak"),
    [
        (LeakageAudit(speaker_overlap=[0, 2, 0]), None, True),
        (LeakageAudit(speaker_overlap=[0, 2, 0]), False, False),
        (LeakageAudit(speaker_overlap=[0, 0, 0]), None, False),
        (
            LeakageAudit(speaker_overlap=[0, 0, 0], components=[ComponentFit("TF-IDF", 3, 90, 12)]),
            None,
            True,
        ),
        (LeakageAudit(speaker_overlap=[0, 0, 0], sequence_overlap=[0, 1, 0]), None, True),
        (
            LeakageAudit(speaker_overlap=[0, 0, 0], components=[ComponentFit("encoder", 0, 0, 0, "frozen")]),
            None,
            False,
        ),
        (LeakageAudit(speaker_overlap=[0, 0, 0], duplicate_clips_across_splits=4), None, True),
    ],
)
def test_leakage_flagged(
    tmp_path: Path, audit: LeakageAudit, independent: bool | None, expect_leak: bool
) -> None:
    files = write_report(_small(leakage=audit, speaker_independent=independent), tmp_path)
    md = files["report.md"].read_text(encoding="utf-8")
    html_text = files["report.html"].read_text(encoding="utf-8")
    assert ("LEAK" in md) is expect_leak
    assert ('class="banner leak"' in html_text) is expect_leak
    if expect_leak:
        head = md.split("## Results")[0]  # flagged at the top, before any number
        assert "LEAK" in head
        if audit.speaker_overlap[1]:
            assert "fold 2: 2" in head


def test_missing_audit_is_reported(tmp_path: Path) -> None:
    md = write_report(_small(leakage=None), tmp_path)["report.md"].read_text(encoding="utf-8")
    assert "No leakage audit supplied" in md


def test_bad_report_data_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing to report"):
        write_report(_small(runs=[]), tmp_path)
    bad = _run("rmlstm", ("audio",), PROTOCOL, seed=1, skill=0.5)
    bad.y_pred = bad.y_pred[:-1]
    with pytest.raises(DataError, match="y_pred"):
        write_report(_small(runs=[bad]), tmp_path)
    bad = _run("rmlstm", ("audio",), PROTOCOL, seed=1, skill=0.5)
    bad.y_pred[0] = 17
    with pytest.raises(DataError, match="class index 17"):
        write_report(_small(runs=[bad]), tmp_path)


def test_paper_numbers_as_printed() -> None:
    assert paper.paper_rmlstm_accuracy("savee") == 99.57
    assert paper.paper_rmlstm_accuracy("youtube") == 97.83
    assert paper.paper_rmlstm_accuracy("ckplus") == 97.28
    assert paper.paper_rmlstm_accuracy("ravdess") == 94.63
    assert paper.paper_rmlstm_accuracy("synthetic") is None
    # The hybrid row of Tables 1/2 is the RMLSTM row of Tables 3/4.
    assert dict(paper.TABLE1_SAVEE_MODALITIES["Hybrid features (audio, video, text)"]) == dict(
        paper.TABLE3_SAVEE_MODELS["RMLSTM"]
    )
    assert dict(paper.TABLE2_YOUTUBE_MODALITIES["Hybrid features (audio, video, text)"]) == dict(
        paper.TABLE4_YOUTUBE_MODELS["RMLSTM"]
    )
    assert paper.paper_modality_row("savee", ("face", "audio"))["accuracy"] == 99.21
    # Table 6 keeps the printed precision ("99", not "99.00").
    assert ("SAVEE", "DL-based feature extractor networks [18]", "99") in paper.TABLE6_COMPARISON
    assert ("CK+", "3D-CNN-ConvLSTM [16]", 95.10, "95.10") in [
        ("CK+", *c) for c in paper.paper_comparisons("ckplus")
    ]
    assert paper.paper_timing("youtube", "rmlstm") == {"train_min": 176, "test_s": 0.04}


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("mmfer.evaluation", ("sklearn.metrics", "scipy.stats", "matplotlib")),
        ("mmfer.evaluation.audit", ("sklearn.metrics", "scipy.stats", "matplotlib")),
        ("mmfer.evaluation.report", ("matplotlib",)),
        # what `mmfer predict` imports first (mmfer.inference.predictor: tests/test_recognizer.py)
        ("mmfer.inference", ("sklearn.metrics", "scipy.stats", "matplotlib", "mmfer.evaluation")),
    ],
)
def test_light_imports(module: str, heavy: tuple[str, ...]) -> None:
    """Issue 22: the package and its audit import without the metrics/stats/plotting stacks.

    The report writer needs scikit-learn and SciPy, but draws with matplotlib only when
    it writes a figure. Checked in a fresh interpreter (this one has imported them all).
    """
    import subprocess
    import sys

    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


def test_lazy_package_attributes() -> None:
    import mmfer.evaluation as ev
    from mmfer.evaluation import results

    assert ev.RunResult is results.RunResult
    assert set(ev.__all__) <= set(dir(ev))
    with pytest.raises(AttributeError):
        ev.no_such_name  # noqa: B018


def test_headlines_name_their_metric_and_show_uar(report: tuple[ReportData, dict[str, Path]]) -> None:
    """Issue 19: UAR and macro-F1 beside accuracy in every result table, titles naming the metrics."""
    _, files = report
    md = files["report.md"].read_text(encoding="utf-8")
    html = files["report.html"].read_text(encoding="utf-8")
    for heading in ("Table 1", "Table 3"):
        section = _section(md, heading)
        assert "accuracy, UAR and macro-F1" in section.splitlines()[0]
        header = next(ln for ln in section.splitlines() if ln.startswith("| "))
        assert "| Accuracy (%) | UAR (%) | Macro-F1 (%) |" in header
    assert "Pooled UAR, 95 % CI (speaker bootstrap)" in _section(md, "Table 3")
    assert "UAR (%) —" in _section(md, "Protocol comparison")
    assert "| UAR (%) |" in _section(md, "Table 6")
    per_fold = _section(md, "Accuracy, UAR and macro-F1 (%) per fold")
    assert "| rmlstm | audio | UAR |" in per_fold and "| rmlstm | audio | macro-F1 |" in per_fold
    assert "| UAR |" in _section(md, "Significance tests")
    assert "<th>UAR (%)</th>" in html and "<th>Macro-F1 (%)</th>" in html


def test_uar_and_f1_in_csvs(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, files = report
    with open(files["table3_models.csv"], newline="", encoding="utf-8") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    for r in (r for r in data.runs if len(r.modalities) == 3):
        s = summarise_folds(r.fold_metrics)
        assert float(rows[r.model]["uar_mean_pct"]) == pytest.approx(s["uar"]["mean"] * 100)
        assert float(rows[r.model]["macro_f1_std_pct"]) == pytest.approx(s["macro_f1"]["std"] * 100)
        # UAR is macro sensitivity (recall averaged over the classes present).
        assert rows[r.model]["uar_mean_pct"] == rows[r.model]["macro_sensitivity_mean_pct"]
        assert rows[r.model]["pooled_uar_pct"]
    with open(files["per_fold.csv"], newline="", encoding="utf-8") as fh:
        first = next(csv.DictReader(fh))
    r0 = data.runs[0]
    assert float(first["uar"]) == pytest.approx(r0.fold_metrics[0]["uar"])
    assert float(first["macro_f1"]) == pytest.approx(r0.fold_metrics[0]["macro_f1"])
    with open(files["protocol_comparison.csv"], newline="", encoding="utf-8") as fh:
        proto = list(csv.DictReader(fh))
    assert all(p["uar_difference_pp"] for p in proto)


def _selection_run(model: str, space_size: int | None) -> RunResult:
    run = _run(model, ("face", "audio", "text"), PROTOCOL, seed=5, skill=0.5)
    for k in range(3):
        sel = {"params": {"lr": 0.001 * (k + 1)}, "inner_accuracy": 0.5, "candidates": 4, "inner_folds": 2}
        if space_size is not None:
            sel |= {"tried": 4, "space_size": space_size}
        run.selected.append(sel)
    return run


def test_selection_table_search_reach_only_when_recorded() -> None:
    from mmfer.evaluation.tables import table_selection

    without = table_selection(_data(runs=[_selection_run("rmlstm", None)], significance=[]))
    assert without is not None
    assert not any("reach" in h.lower() for h in without.headers)
    assert "space_size" not in without.csv_fields

    runs = [_selection_run("rmlstm", 96), _selection_run("logreg", 4), _selection_run("mlp", None)]
    t = table_selection(_data(runs=runs, significance=[]))
    assert t is not None and t.headers[-1] == "Search reach (tried / space)"
    cells = {row[0]: row[-1] for row in t.rows}
    assert cells == {"rmlstm": "4 / 96 (4.2 %)", "logreg": "4 / 4 (100.0 %)", "mlp": "—"}
    by_model = {row["model"]: row for row in t.csv_rows}
    assert by_model["rmlstm"]["search_reach_pct"] == pytest.approx(100 * 4 / 96)
    assert by_model["mlp"]["space_size"] is None
    assert any("Search reach" in n for n in t.notes)


def test_ablation_and_front_end_tables_show_uar(tmp_path: Path) -> None:
    from dataclasses import replace

    from mmfer.evaluation.tables import table_ablation, table_front_ends

    full = ("face", "audio", "text")
    runs = [_run(m, full, PROTOCOL, seed=40 + i, skill=0.6) for i, m in enumerate(["rmlstm", "mlstm"])]
    speakers = [f"s{j % 4}" for j in range(len(runs[0].y_true))]
    runs = [replace(r, speakers=speakers) for r in runs]
    fe = [replace(runs[0], front_end="whisper")]
    data = _data(runs=runs, significance=[compare_runs(runs[0], runs[1])], front_ends=fe)
    abl = table_ablation(data)
    assert abl is not None
    assert abl.headers[4:7] == ["Accuracy (%)", "UAR (%)", "Macro-F1 (%)"]
    mlstm = next(row for row in abl.rows if row[0] == "mlstm")
    assert mlstm[-2] != "—" and mlstm[-1] != "—"  # speaker-level p on accuracy and on UAR
    assert {"uar_mean_pct", "macro_f1_mean_pct", "speaker_wilcoxon_p_uar_vs_rmlstm"} <= set(abl.csv_fields)
    fet = table_front_ends(data)
    assert fet is not None and fet.headers[3:] == ["Accuracy (%)", "UAR (%)", "Macro-F1 (%)"]
    assert "accuracy, UAR and macro-F1" in fet.title
    files = write_report(data, tmp_path)
    assert "table_ablation.csv" in files and "table_front_ends.csv" in files


def test_compare_runs_per_metric_speaker_tests() -> None:
    from dataclasses import replace

    a = _run("rmlstm", ("audio",), PROTOCOL, seed=1, skill=0.9)
    b = _run("mlp", ("audio",), PROTOCOL, seed=2, skill=0.3)
    speakers = [f"s{j % 5}" for j in range(len(a.y_true))]
    a, b = replace(a, speakers=speakers), replace(b, speakers=speakers)
    row = compare_runs(a, b)
    assert row.metric == "accuracy" and [m.metric for m in row.other_metrics] == ["uar"]
    u = row.other_metrics[0]
    assert u.n_speakers == 5 and u.speaker_wilcoxon_p is not None
    assert u.mcnemar_b == row.mcnemar_b  # clip-level McNemar does not depend on the metric
    assert u.mean_diff == pytest.approx(
        np.mean([m["uar"] for m in a.fold_metrics]) - np.mean([m["uar"] for m in b.fold_metrics])
    )
    # Fold dicts from before UAR was recorded: the extra metric is skipped with a note.
    old = [{k: v for k, v in m.items() if k != "uar"} for m in b.fold_metrics]
    row_old = compare_runs(a, replace(b, fold_metrics=old))
    assert row_old.other_metrics == [] and any("uar" in n for n in row_old.notes)
    # A metric without a per-speaker form gets no speaker-level test.
    f1 = compare_runs(a, b, "macro_f1", also=())
    assert f1.n_speakers is None and any("speaker-level" in n for n in f1.notes)
