"""Real-data benchmark = ``mmfer report`` on a corpus config, plus speed figures.

There is no second cross-validation loop here: the tables come from
:func:`mmfer.experiment.report` (nested selection, reference rows,
speaker-level significance), exactly what ``mmfer report -c CONFIG`` writes.
This script adds what a report does not measure -- cold extraction rate and
peak memory -- writes ``bench/results/<name>.md`` (command, date, machine,
Table 3, selected settings, speed) and copies the report to
``docs/reports/<name>/``.

Usage::

    python bench/bench_report.py configs/ravdess.yaml [key=value ...]
    python bench/bench_report.py configs/ckplus48.yaml --name ckplus48
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

from common import REPO, RESULTS, cold_extraction_rate, header, peak_rss_mb, set_threads
from mmfer.config import dump_config, load_config
from mmfer.experiment import report
from mmfer.pipeline import load_corpus


def _section(md: str, title_start: str) -> str:
    """The block of ``report.md`` from the heading starting with ``title_start`` to the next heading."""
    lines = md.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("#"):
            if inside:
                break
            inside = line.lstrip("# ").startswith(title_start)
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    ap.add_argument("--name", help="results file stem (default: the config's name)")
    ap.add_argument("--cold", type=int, default=60, help="clips timed for the cold extraction rate")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    name = args.name or cfg.name
    t0 = time.perf_counter()
    paths = report(cfg)
    seconds = time.perf_counter() - t0
    table = load_corpus(cfg.data)
    mod = cfg.fusion.modalities[0]
    n_cold, rate = (
        cold_extraction_rate(table, cfg.features, mod, args.cold) if args.cold else (0, float("nan"))
    )
    md = Path(paths["report.md"]).read_text(encoding="utf-8")
    lines = header(f"mmfer report on {cfg.data.corpus} ({name})")
    lines += [
        f"- report: `mmfer report -c {args.config} {' '.join(args.overrides)}` gives the same tables "
        "(this script calls the same function)",
        f"- wall time of the report (every model and fold, features cached or not): {seconds / 60:.1f} min",
        f"- cold extraction ({mod}, {n_cold} clips, workers={cfg.features.workers}): {rate:.1f} clips/s",
        f"- peak resident memory: {peak_rss_mb():.0f} MB",
        "",
    ]
    for title in ("Table 3", "Ablation", "Front ends", "Significance tests", "Table 5", "Selected settings"):
        sec = _section(md, title)
        if sec:
            lines += [sec, ""]
    lines += ["## Config", "", "```yaml", dump_config(cfg).rstrip(), "```", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    docs = REPO / "docs" / "reports" / name
    if docs.exists():
        shutil.rmtree(docs)
    shutil.copytree(Path(paths["report.md"]).parent, docs)
    print(f"wrote {out} and {docs}")


if __name__ == "__main__":
    main()
