"""Cross-corpus ablations on the folds of ``configs/crosscorpus.yaml`` (issue 20): one row per variant.

Every variant is ``mmfer report -c configs/crosscorpus.yaml`` with a few overrides, the logistic
regression probe only (nested selection of C as in the report; where a variant fixes the layer view,
that view is its only candidate), leave-one-corpus-out, closed set, the same folds and the same
EmoBox 4-class setting. Variants:

* ``selected layers``: the report's own front end (all five Whisper tiny.en encoder states
  extracted; the view, last state or all five, chosen per fold on inner splits);
* ``all layers (fixed)`` / ``last layer (fixed)``: the view fixed to all five / the final output
  (the pooling still chosen by the inner folds);
* ``CTranslate2 final layer (old front end)``: the shipped front end before issue 20 (int8
  final output at 50 frames/s, no layer view, mean pooling, only C searched);
* ``+ per-utterance normalisation``: each frame's 384-wide blocks z-scored over their own
  dimensions (``fusion.audio_norm=frame``: uses that frame only);
* ``+ speaker enrolment``: every speaker z-normalised with its own statistics; a test speaker's
  come from 4 of its clips drawn without labels, which are then not scored (as a user would
  enrol); a separate, labelled row, never the headline;
* ``+ augmentation (2 copies)``: 2 augmented copies of every RAVDESS clip (``features.augment``,
  ``augment.corpora=[ravdess]``: CREMA-D clips are only ever tested in the RAVDESS -> CREMA-D
  direction, so only that direction is run);
* within-corpus corpus weighting (RAVDESS actor-grouped 5-fold, CREMA-D as train-only extra data,
  ``data.corpus_balance`` none vs balanced) and RAVDESS alone, same folds.

Run from the repository root (reuses cached features and finished runs)::

    python bench/crosscorpus_ablations.py            # -> bench/results/crosscorpus_ablations.md
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "ablations"
BASE = ["-c", "configs/crosscorpus.yaml", "eval.models=[logreg]", "eval.reference=[majority]"]
ALL = "[[0,1,2,3,4]]"


def view(layers: str) -> str:
    """The override fixing the layer view, the pooling still searched (a YAML mapping: keys hold dots)."""
    return (
        'eval.search={"all": {"fusion.audio_pool": ["mean", "clipstats"], "fusion.audio_layers": '
        + layers
        + "}}"
    )


LOCO: dict[str, list[str]] = {
    "selected layers (report's front end)": [],
    "all layers (fixed)": [view(ALL)],
    "last layer (fixed)": [view("[[4]]")],
    "CTranslate2 final layer (old front end)": [
        "features.audio.whisper_layers=[]", "features.audio.whisper_frame_pool=1",
        "fusion.audio_block=0", "eval.search={}",
    ],
    "+ per-utterance normalisation (fusion.audio_norm=frame, fixed)": ["fusion.audio_norm=frame"],
    "+ speaker enrolment: 4 unlabelled clips per test speaker give its statistics, not scored": [
        "fusion.speaker_norm=enrol", "fusion.enrol_k=4",
    ],
    "+ augmentation, 2 copies of each RAVDESS clip (RAVDESS -> CREMA-D only)": [
        "features.augment.copies=2", "features.augment.corpora=[ravdess]", "eval.loco_targets=[cremad]",
        "eval.settings=[]",
    ],
}  # fmt: skip
# a smaller selection budget (2 candidates) for these three rows alike: 45 fits on 8.9k clips each
WITHIN = [
    "-c", "configs/crosscorpus.yaml", "eval.protocol=group_kfold", "eval.folds=5", "eval.settings=[]",
    "eval.select_budget=2",
]  # fmt: skip
WITHIN_VARIANTS: dict[str, list[str]] = {
    "RAVDESS only": ["data.sources=[]"],
    "RAVDESS + CREMA-D (train only), corpus_balance none": ["data.extra_train=[cremad]"],
    "RAVDESS + CREMA-D (train only), corpus_balance balanced": [
        "data.extra_train=[cremad]", "data.corpus_balance=balanced",
    ],
}  # fmt: skip


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:48]


def run(cmd: list[str], folder: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "mmfer.cli",
        *cmd,
        f"output_dir={folder}",
        f"eval.report_dir={folder / 'report'}",
    ]
    print("+ mmfer " + " ".join(args[3:]), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def loco_rows(name: str, folder: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((folder / "report").glob("*.csv")):
        with path.open() as f:
            rows += [dict(r, variant=name) for r in csv.DictReader(f) if "model" in r and "accuracy_pct" in r]
    return rows


def within_row(name: str, folder: Path, model: str) -> dict[str, str]:
    d = json.loads(next(folder.glob(f"evaluate_{model}_group_kfold.json")).read_text())
    accs = [f["accuracy"] for f in d["folds"]]
    uars = [f["uar"] for f in d["folds"]]
    # sample std (ddof=1) over folds, as in every report table (this once used ddof=0)
    mean = lambda xs: 100 * statistics.mean(xs)  # noqa: E731
    std = lambda xs: 100 * statistics.stdev(xs)  # noqa: E731
    return {"variant": name, "model": model, "acc": f"{mean(accs):.1f} ± {std(accs):.1f}",
            "uar": f"{mean(uars):.1f} ± {std(uars):.1f}"}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crosscorpus_ablations.md")
    ap.add_argument("--skip-within", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="run only variants whose name contains these")
    ap.add_argument("--render-only", action="store_true", help="run nothing: tabulate the finished runs")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from mmfer.provenance import code_version

    loco: list[dict[str, str]] = []
    for name, over in LOCO.items():
        folder = OUT / slug(name)
        if not a.render_only and (a.only is None or any(k in name for k in a.only)):
            run(["report", *BASE, *over], folder)
        loco += loco_rows(name, folder)  # rows of earlier runs too, each with its code version
    within: list[dict[str, str]] = []
    if not a.skip_within:
        for name, over in WITHIN_VARIANTS.items():
            folder = OUT / ("within-" + slug(name))
            for model in ("logreg", "majority"):
                if not a.render_only and (a.only is None or any(k in name for k in a.only)):
                    run(["evaluate", *WITHIN, *over, f"model.name={model}"], folder)
                within.append(within_row(name, folder, model))
    lines = [
        "# Cross-corpus ablations (issue 20)",
        "",
        f"Written at code version {code_version()} (each row's own version is in its last column);",
        "command: `python bench/crosscorpus_ablations.py`",
        "(variants and their overrides in the script's docstring). Logistic-regression probe with",
        "nested selection of C and the fuser settings the variant leaves open (configs/crosscorpus.yaml:",
        "6 candidates, 2 speaker-grouped inner folds of the training corpus; the within-RAVDESS rows",
        "2 candidates), no test-speaker statistics.",
        "",
        "## Leave-one-corpus-out (closed set) and the EmoBox 4-class list",
        "",
        "| variant | model | setting | train → test | clips scored | accuracy % [95 % CI] | UAR % "
        "| chance % | code version |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in loco:
        f = {k: float(v) for k, v in r.items() if k.endswith("_pct")}
        lines.append(
            f"| {r['variant']} | {r['model']} | {r['setting']} | {r['train']} → {r['test']} "
            f"| {r['n_scored']} | "
            f"{f['accuracy_pct']:.1f} [{f['accuracy_ci_lo_pct']:.1f}, {f['accuracy_ci_hi_pct']:.1f}] | "
            f"{f['uar_pct']:.1f} | {f['chance_pct']:.1f} | {r['code_version']} |"
        )
    if within:
        lines += [
            "",
            "## Within RAVDESS (actor-grouped 5-fold, same folds): CREMA-D as extra training data",
            "",
            "| variant | model | accuracy % (mean ± sample std over folds) | UAR % |",
            "|---|---|---|---|",
            *[f"| {r['variant']} | {r['model']} | {r['acc']} | {r['uar']} |" for r in within],
        ]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
