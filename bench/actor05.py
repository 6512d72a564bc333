"""Real video: a composed face+voice model on the 28 RAVDESS actor-05 videos.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python bench/actor05.py --model MODEL.safetensors --name NAME [--json OUT.json]

Prints per clip the face-only, voice-only and fused decisions and the counts:
face-only / voice-only / fused accuracy on the 14 full audio-video clips (``01-...``),
decisions on the 14 video-only clips (``02-...``, silent track: audio masked, so the
fused decision is the face part's), and the face-detection rate (Haar detector).
Labels come from the RAVDESS file names (3rd code); they are read only to count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import mmfer
from mmfer.data.ravdess import EMOTIONS
from mmfer.emotions import canonical_emotion

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-av-actor05"


def part_label(part, pred) -> str | None:
    """A part's own decision mapped onto the common labels (``None`` if it could not predict)."""
    if pred.error is not None:
        return None
    best = max(pred.probabilities, key=pred.probabilities.get)
    return part.label_map.get(best, best)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    model = mmfer.load(a.model)
    clips = sorted(DATA.glob("*.mp4"))
    truth = {str(p): canonical_emotion(EMOTIONS[p.stem.split("-")[2]]) for p in clips}
    for part in model.parts:
        part.predictor.debug = True
    per_part = {part.name: part.predictor.predict(clips) for part in model.parts}
    fused = [model.fuse_predictions([per_part[p.name][i] for p in model.parts]) for i in range(len(clips))]
    faces = model.parts[[p.name for p in model.parts].index("face")].predictor.face_results
    rows = []
    for i, clip in enumerate(clips):
        row = {
            "clip": clip.name,
            "kind": "av" if clip.name.startswith("01-") else "video-only",
            "truth": truth[str(clip)],
        }
        for part in model.parts:
            row[part.name] = part_label(part, per_part[part.name][i])
        row["fused"] = fused[i].label
        row["fused_from"] = fused[i].notes.get("fusion", fused[i].error)
        res = faces.get(str(clip))
        row["face_frames"] = None if res is None else int(res.frames)
        row["face_found"] = None if res is None else int(res.frames - res.no_face)
        rows.append(row)
        parts = " ".join(f"{p.name}={row[p.name]}" for p in model.parts)
        print(f"{clip.name}  truth={row['truth']:<9} {parts} fused={row['fused']}  [{row['fused_from']}]")

    def count(kind: str, key: str) -> str:
        sel = [r for r in rows if r["kind"] == kind]
        hit = sum(r[key] == r["truth"] for r in sel)
        return f"{hit}/{len(sel)}"

    summary = {
        "model": a.name,
        "av_face_only": count("av", "face"),
        "av_voice_only": count("av", "voice"),
        "av_fused": count("av", "fused"),
        "video_only_fused": count("video-only", "fused"),
        "video_only_face_only": count("video-only", "face"),
        "video_only_voice_masked": sum(r["voice"] is None for r in rows if r["kind"] == "video-only"),
        "face_frames": int(np.sum([r["face_frames"] or 0 for r in rows])),
        "face_found": int(np.sum([r["face_found"] or 0 for r in rows])),
        "clips_without_any_face": sum((r["face_found"] or 0) == 0 for r in rows),
        "truth_counts": {
            k: sum(r["truth"] == k for r in rows) // 2 for k in sorted({r["truth"] for r in rows})
        },
    }
    print(json.dumps(summary, indent=2))
    if a.json is not None:
        a.json.write_text(json.dumps({"summary": summary, "clips": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
