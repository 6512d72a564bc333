"""Per-fold table of a front-end model's runs (issue 21: ``fer2013_ft`` on CK+48).

``mmfer report`` shows a front-end row's mean ± std only; this script reads the run files it
kept (``<output_dir>/runs_done/*.json``) and writes, for one model, each outer fold's accuracy
and UAR, the settings the nested selection chose with their inner score, and the selection and
final-fit seconds, beside the same folds' accuracy of a reference model of the same report
(``logreg`` on the frozen features by default)::

    python bench/finetune_folds.py runs/ckplus48-ft --model fer2013_ft --against logreg \\
        --out docs/reports/ckplus48/finetune/fer2013_ft_folds.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def load_run(runs_done: Path, model: str) -> dict:
    """The ``run`` record of ``model`` in a report's ``runs_done`` folder (exactly one file)."""
    files = sorted(runs_done.glob(f"{model}_*.json"))
    if len(files) != 1:
        names = [f.name for f in files]
        raise SystemExit(f"{runs_done}: expected one run file of {model!r}, found {names}")
    doc = json.loads(files[0].read_text(encoding="utf-8"))
    return {
        **doc["run"],
        "file": files[0].name,
        "code_version": doc.get("provenance", {}).get("code_version"),
    }


def pm(xs: list[float]) -> str:
    """``mean ± sample std`` in % (the reports' convention)."""
    return f"{100 * statistics.mean(xs):.1f} ± {100 * statistics.stdev(xs):.1f}"


def render(run: dict, ref: dict, ref_name: str) -> str:
    acc = [m["accuracy"] for m in run["fold_metrics"]]
    uar = [m["uar"] for m in run["fold_metrics"]]
    ref_acc = [m["accuracy"] for m in ref["fold_metrics"]]
    if len(ref_acc) != len(acc):
        raise SystemExit(
            f"{ref_name} has {len(ref_acc)} folds, {run['model']} {len(acc)}: not the same folds"
        )
    lines = [
        f"# {run['model']}: per outer fold ({run['protocol']})",
        "",
        f"Run file `{run['file']}` (code version `{run.get('code_version')}`); reference: `{ref['file']}`.",
        "Settings chosen per fold by nested selection on inner subject-grouped splits of the training",
        "subjects (the test fold is never seen); `stop_epoch` is the epoch count taken from the inner",
        "per-epoch scores.",
        "",
        f"| fold | test images | accuracy % | UAR % | {ref_name} accuracy % | chosen settings "
        "| inner accuracy % | selection s | final fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, (m, sel) in enumerate(zip(run["fold_metrics"], run["selected"], strict=True)):
        params = ", ".join(f"{p}={v}" for p, v in sorted(sel["params"].items()))
        lines.append(
            f"| {k + 1} | {m.get('n', '')} | {100 * m['accuracy']:.1f} | {100 * m['uar']:.1f} | "
            f"{100 * ref_acc[k]:.1f} | {params} | {100 * sel['inner_accuracy']:.1f} | "
            f"{run['select_seconds'][k]:.0f} | {run['train_seconds'][k]:.0f} |"
        )
    diffs = [a - b for a, b in zip(acc, ref_acc, strict=True)]
    better = sum(d > 0 for d in diffs)
    lines += [
        f"| mean ± std | | {pm(acc)} | {pm(uar)} | {pm(ref_acc)} | | | "
        f"{statistics.mean(run['select_seconds']):.0f} | {statistics.mean(run['train_seconds']):.0f} |",
        "",
        f"Difference {run['model']} − {ref_name}, same folds: {pm(diffs)} points; higher on {better} of "
        f"{len(diffs)} folds, equal on {sum(d == 0 for d in diffs)}.",
        f"Total compute of {run['model']}: {sum(run['select_seconds']) + sum(run['train_seconds']):.0f} s "
        "(selection + final fits, one thread).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output_dir", type=Path, help="the report's output_dir (holds runs_done/)")
    ap.add_argument("--model", default="fer2013_ft")
    ap.add_argument("--against", default="logreg")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    runs = a.output_dir / "runs_done"
    text = render(load_run(runs, a.model), load_run(runs, a.against), a.against)
    a.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
