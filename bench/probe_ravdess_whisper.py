"""Quick honest check of the Whisper voice front end on RAVDESS (speaker-independent).

Whisper tiny.en encoder frames (library extraction, :func:`mmfer.features.extract_features`,
cached under ``runs/``) -> [mean, std] over each clip's frames -> per-speaker
z-normalisation (label-free: each actor's clips normalised with that actor's own
statistics, test actors included, which is transductive but uses no labels) ->
logistic regression. Protocol: actor-grouped 5-fold (GroupKFold on speaker); the
inverse regularisation C is chosen on each training fold only, by an inner
GroupKFold over the training actors. Test folds never choose anything.

Usage::

    python bench/probe_ravdess_whisper.py [--root ../shared/data/ravdess-speech-16k]
        [--workers 2] [--pad-30s] [--compute-type int8] [--extractor whisper] [--layer -1] [--fuser]

Prints mean ± std accuracy over the 5 outer folds and extraction clips/s (of the
clips not already cached in this run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mmfer.config import AudioConfig, FeatureConfig
from mmfer.data.corpora import load_corpus
from mmfer.features.extract import extract_features

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def clip_stats(frames: np.ndarray) -> np.ndarray:
    """``(T, D)`` frames -> ``(2 D,)`` [mean, std] over the clip."""
    return np.concatenate([frames.mean(0), frames.std(0)])


def speaker_znorm(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Z-normalise each speaker's rows with that speaker's own mean/std (no labels used)."""
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        mu, sd = x[rows].mean(0), x[rows].std(0)
        out[rows] = (x[rows] - mu) / np.maximum(sd, 1e-6)
    return out


def fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return clf.fit(x_tr, y_tr).predict(x_te)


def choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 4) -> float:
    """C with the best mean accuracy over an inner GroupKFold of the training actors."""
    from sklearn.model_selection import GroupKFold

    inner = list(GroupKFold(n_splits=folds).split(x, y, groups))
    scores = {
        c: np.mean([np.mean(fit_predict(x[a], y[a], x[b], c) == y[b]) for a, b in inner]) for c in C_GRID
    }
    return max(scores, key=lambda c: scores[c])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DATA)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--extractor", default="whisper", choices=["whisper", "mfcc", "egemaps"])
    ap.add_argument("--compute-type", default="int8", choices=["int8", "float32"])
    ap.add_argument("--pad-30s", action="store_true")
    ap.add_argument("--layer", type=int, default=-1, help="Whisper encoder block (-1 = final output)")
    ap.add_argument(
        "--fuser", action="store_true", help="pool and normalise through mmfer's Fuser instead of numpy"
    )
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "probe-ravdess-cache")
    args = ap.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"{args.root}: RAVDESS folder not found")
    from sklearn.model_selection import GroupKFold

    table = load_corpus("ravdess", args.root)
    cfg = FeatureConfig(
        audio=AudioConfig(
            extractor=args.extractor,
            whisper_compute_type=args.compute_type,
            whisper_pad_30s=args.pad_30s,
            whisper_layer=args.layer,
        ),
        workers=args.workers,
    )
    t0 = time.perf_counter()
    feats = extract_features(table, cfg, args.cache, modalities=("audio",), progress=False)
    seconds = time.perf_counter() - t0
    ok = [i for i, sid in enumerate(table["id"]) if feats[str(sid)].audio is not None]
    masked = len(table) - len(ok)
    samples = [feats[str(table["id"].iloc[i])] for i in ok]
    y = table["emotion"].to_numpy()[ok]
    spk = table["speaker"].astype(str).to_numpy()[ok]
    if args.fuser:
        # the library path: Fuser(audio_pool=clipstats, speaker_norm) fitted per outer fold;
        # it normalises each speaker's *frames* (the default path normalises clip statistics)
        from mmfer.config import FusionConfig, TextConfig
        from mmfer.fusion import Fuser

        fcfg = FusionConfig(modalities=["audio"], steps=1, audio_pool="clipstats", speaker_norm=True)
    else:
        x = speaker_znorm(np.stack([clip_stats(f.audio) for f in samples]), spk)  # (N, 2 D)
    accs, chosen = [], []
    for tr, te in GroupKFold(n_splits=5).split(y, y, spk):
        if args.fuser:
            fuser = Fuser(fcfg, TextConfig()).fit([samples[i] for i in tr], speakers=spk[tr])
            x = np.zeros((len(y), fuser.n_features), dtype=np.float32)
            for rows in (tr, te):  # each call normalises its rows' speakers with their own frames
                x[rows] = fuser.transform([samples[i] for i in rows], speakers=spk[rows]).x[:, 0]
        c = choose_c(x[tr], y[tr], spk[tr])
        chosen.append(c)
        accs.append(float(np.mean(fit_predict(x[tr], y[tr], x[te], c) == y[te])))
    print(
        f"extractor={args.extractor} compute_type={args.compute_type} pad_30s={args.pad_30s} "
        f"layer={args.layer} "
        f"path={'Fuser(clipstats, speaker_norm)' if args.fuser else 'clip stats + speaker z-norm'}: "
        f"{len(table)} clips ({masked} masked), feature width {x.shape[1]}"
    )
    print(f"extraction (incl. cache reads): {seconds:.1f} s = {len(table) / seconds:.1f} clips/s")
    print(f"C per fold (inner GroupKFold on training actors): {chosen}")
    print(f"fold accuracies: {[round(a, 4) for a in accs]}")
    print(f"accuracy, actor-grouped 5-fold: {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} %")


if __name__ == "__main__":
    main()
