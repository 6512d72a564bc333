"""A model trained on every modality, tested with one missing: early vs early + modality dropout vs late.

Speaker-independent folds of ``eval.protocol`` (the library's own splitter); on each
fold every variant is fitted on the training rows with the config's *fixed* settings
(no selection, so nothing is chosen on any test row), then scored on the test rows
with all modalities and with each modality removed from every test clip (its features
set to ``None``, exactly what extraction gives for a clip without it). Prints one
markdown table of pooled accuracy (%).

Usage::

    python bench/bench_fusion_missing.py -c configs/default.yaml [key=value ...] [--dropout 0.3]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

import numpy as np

from mmfer.config import MODALITIES, load_config
from mmfer.data.splits import make_splits
from mmfer.emotions import label_order
from mmfer.pipeline import available_modalities, cache_dir_for, extract, fit_rows, load_corpus, make_estimator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    ap.add_argument(
        "--dropout", type=float, default=0.3, help="train.modality_dropout of the dropout variant"
    )
    ap.add_argument("--model", default=None, help="base model (default: model.name of the config)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config, args.overrides)
    base = args.model or cfg.model.name
    table = load_corpus(cfg.data)
    feats = extract(table, cfg.features, cache_dir_for(cfg), list(cfg.fusion.modalities), progress=False)
    mods = [m for m in MODALITIES if m in available_modalities(table, feats) and m in cfg.fusion.modalities]
    fusion = replace(cfg.fusion, modalities=mods)
    labels = label_order(set(table["emotion"]))
    y = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    ids = table["id"].astype(str).to_numpy()
    speakers = table["speaker"].astype(str).to_numpy()
    variants = {
        f"early ({base})": make_estimator(base, cfg.model, cfg.train),
        f"early + modality dropout {args.dropout}": make_estimator(base, cfg.model, cfg.train).clone(
            modality_dropout=args.dropout
        ),
        f"late (late_{base}, learned weights)": make_estimator(f"late_{base}", cfg.model, cfg.train),
    }
    conditions = ["all", *[f"no {m}" for m in mods]]
    correct = {(v, c): 0 for v in variants for c in conditions}
    n = 0
    t0 = time.perf_counter()
    splits = make_splits(table, cfg.eval.protocol, cfg.eval.folds, cfg.eval.seed)
    for k, (tr, te) in enumerate(splits):
        for v, est in variants.items():
            rec = fit_rows(
                table,
                feats,
                tr,
                labels=labels,
                estimator=est,
                fusion_cfg=fusion,
                text_cfg=cfg.features.text,
                features_cfg=cfg.features,
            )
            for c in conditions:
                drop = c[3:] if c != "all" else None
                # text is both the transcript and its sentence embedding
                gone = {drop: None, **({"text_emb": None} if drop == "text" else {})} if drop else {}
                test = [replace(feats[i], **gone) for i in ids[te]]
                pred = rec.predict_proba(test, speakers=speakers[te].tolist()).argmax(1)
                correct[(v, c)] += int(np.sum(pred == y[te]))
        n += len(te)
        print(f"fold {k + 1}/{len(splits)} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(
        f"Accuracy (%) pooled over {len(splits)} folds ({cfg.eval.protocol}), {n} test clips, "
        f"trained on {'+'.join(mods)}, tested with:"
    )
    print()
    print("| variant | " + " | ".join(conditions) + " |")
    print("|---|" + "---:|" * len(conditions))
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{100 * correct[(v, c)] / n:.1f}" for c in conditions) + " |")


if __name__ == "__main__":
    main()
