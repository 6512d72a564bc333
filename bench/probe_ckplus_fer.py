"""Quick honest check of the fer2013 face front end on CK+48 (not a test; prints figures).

Features come from the library (``mmfer.pipeline.load_corpus`` + ``extract`` with
``features.face.backbone=fer2013``, ``detector=none``: CK+48 images are already face
crops), cached under ``runs/probe_ckplus_fer/cache``. Per image: 128 pooled + 7 logits
(135-d), optionally + 136 normalised dlib landmarks (271-d).

Protocol: subject-grouped 10-fold CV (``GroupKFold`` on the ``speaker`` column = CK+
subject). Inside each training fold, a standardiser + multinomial LogisticRegression
whose ``C`` is chosen by an inner 5-fold ``GroupKFold`` on the training subjects only
(the test fold never influences any choice). Prints mean ± std of fold accuracy and the
C picked per fold.

Run: ``python bench/probe_ckplus_fer.py [--landmarks] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmfer.config import DataConfig, FaceConfig, FeatureConfig
from mmfer.pipeline import extract, load_corpus

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ckplus48" / "CK+48"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--landmarks", action="store_true", help="append normalised dlib landmarks")
    ap.add_argument("--folds", type=int, default=10)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = load_corpus(DataConfig(corpus="ckplus", root=str(args.data)))
    face = FaceConfig(backbone="fer2013", detector="none", landmarks=args.landmarks)
    cfg = FeatureConfig(face=face)
    t0 = time.perf_counter()
    feats = extract(table, cfg, ROOT / "runs" / "probe_ckplus_fer" / "cache", ["face"], progress=False)
    ids = [str(i) for i in table["id"]]
    keep = [k for k, i in enumerate(ids) if feats[i].face is not None]
    x = np.stack([feats[ids[k]].face[0] for k in keep])  # (N, 135) or (N, 271): one frame per image
    y = table["emotion"].to_numpy()[keep]
    groups = table["speaker"].to_numpy()[keep]
    print(
        f"CK+48: {len(ids)} images, {len(keep)} with face features ({x.shape[1]}-d), "
        f"{len(set(groups))} subjects, {len(set(y))} classes; features in {time.perf_counter() - t0:.1f} s"
    )
    accs, picked = [], []
    for tr, te in GroupKFold(n_splits=args.folds).split(x, y, groups):
        # C chosen on the training subjects only (inner subject-grouped folds).
        search = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
            {"logisticregression__C": C_GRID},
            cv=GroupKFold(n_splits=5),
            scoring="accuracy",
        )
        search.fit(x[tr], y[tr], groups=groups[tr])
        accs.append(float((search.predict(x[te]) == y[te]).mean()))
        picked.append(search.best_params_["logisticregression__C"])
    a = np.array(accs)
    what = "fer2013 135-d + landmarks 136-d" if args.landmarks else "fer2013 135-d"
    print(
        f"{what}, LogReg (C by inner GroupKFold), subject-grouped {args.folds}-fold: "
        f"accuracy {100 * a.mean():.1f} ± {100 * a.std():.1f} %"
    )
    print(f"per fold: {', '.join(f'{100 * v:.1f}' for v in a)}; C picked: {picked}")


if __name__ == "__main__":
    main()
