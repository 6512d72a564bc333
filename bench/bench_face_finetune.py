"""Cost of one CK+48 fold of ``fer2013_ft`` (the FER2013 CNN fine-tuned on raw crops), as the report runs it.

Uses the library's own fold (:func:`mmfer.pipeline.prepare_cv` + :func:`mmfer.pipeline.run_fold`)
on ``configs/ckplus48.yaml`` with the front end ``face.backbone=fer2013_crop``: the same
subject-grouped outer folds as every model of the report, nested selection of the settings on
inner subject splits of the fold's training subjects (``eval.select_budget`` candidates,
``eval.inner_folds``, per-epoch inner curves choosing the epoch count), then the fit on all
the fold's training rows and the score on its test subjects. Prints the seconds of the
selection and of the final fit (per epoch too), the settings chosen and the fold's accuracy;
one fold's accuracy is a cost check, not a result (the report's 10 folds are).

Run: ``OMP_NUM_THREADS=1 nice -n 10 python bench/bench_face_finetune.py [--fold 0] [--budget N]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

from common import CACHE, REPO, header, require_data, set_threads
from mmfer.config import load_config
from mmfer.experiment import features_for
from mmfer.pipeline import extract, load_corpus, prepare_cv, run_fold

FRONT_END = "face.backbone=fer2013_crop"
MODEL = "fer2013_ft"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "ckplus48.yaml"))
    ap.add_argument("--fold", type=int, default=0, help="outer fold to run (of eval.folds)")
    ap.add_argument("--budget", type=int, default=0, help="eval.select_budget (0 = the config's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    set_threads(args.threads)
    require_data("ckplus48")
    cfg = load_config(args.config)
    ev = replace(cfg.eval, select_budget=args.budget or cfg.eval.select_budget)
    cfg = replace(cfg, features=features_for(cfg.features, FRONT_END), eval=ev)
    cfg = replace(cfg, train=replace(cfg.train, threads=args.threads))
    table = load_corpus(cfg.data)
    t0 = time.perf_counter()
    feats = extract(table, cfg.features, CACHE / "ckplus48-crops", ["face"], progress=False)
    extract_s = time.perf_counter() - t0
    setup, splits = prepare_cv(table, feats, cfg, model_name=MODEL, modalities=["face"])
    tr, te = splits[args.fold]
    res = run_fold(setup, feats, args.fold, tr, te)
    assert res is not None and res.selected is not None
    secs = [float(h["seconds"]) for h in res.history]  # the training loop's own per-epoch clock
    per_epoch = sum(secs) / max(len(secs), 1)
    sel, budget = res.selected, cfg.eval.select_budget
    lines = [
        f"images {len(table)}, fold {args.fold + 1}/{len(splits)}: train {len(tr)}, test {len(te)}",
        f"crop extraction (cached after the first run): {extract_s:.1f} s",
        f"nested selection: {sel['candidates']} candidate(s) x {sel['inner_folds']} inner folds "
        f"(budget {budget}), per-epoch inner curves: {res.select_seconds:.1f} s",
        f"chosen: {sel['params']} (inner {cfg.eval.headline_metric} {sel['inner_accuracy']:.3f})",
        f"final fit on {len(tr)} crops: {len(secs)} epochs, {res.train_seconds:.1f} s "
        f"({per_epoch:.2f} s/epoch)",
        f"test ({len(te)} crops, mirror averaging): {res.test_seconds:.1f} s; "
        f"fold accuracy {float(res.metrics['accuracy']):.3f}",
    ]
    fold_s = res.select_seconds + res.train_seconds + res.test_seconds
    lines.append(f"one fold {fold_s:.0f} s -> {len(splits)} folds ~{fold_s * len(splits) / 60:.0f} min")
    print("\n".join(header(f"{MODEL} on CK+48, one outer fold ({FRONT_END})")), end="\n\n")
    print("\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    main()
