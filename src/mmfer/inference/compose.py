"""Decision-level composition of unimodal checkpoints trained on different corpora.

A face model trained on CK+48 and a voice model trained on RAVDESS speech know
different label sets. :func:`compose` builds one predictor from them:

1. **Label mapping.** Every part's labels are mapped onto one common set. Labels
   are first canonicalised (:func:`mmfer.emotions.canonical_emotion`: CK+
   ``anger``/``sadness``/``surprise``/``fear`` are already stored as ``angry``/
   ``sad``/``surprised``/``fearful``, like RAVDESS); an explicit ``label_map``
   (part label -> common label, or ``None`` to drop it) overrides that. The common
   set is the union, in :data:`mmfer.emotions.CANONICAL` order, unless given.
2. **Missing classes.** A class a part does not know gets a *neutral* score from that
   part: the part's mean log-probability over its own classes (``mode="log"``) or its
   mean probability ``1/C_p`` (``mode="prob"``) -- "no evidence for or against", not
   probability 0 and not a free pass. (Leaving the part out of that class's mean, as
   before, let a class known to one part only win whenever that part alone liked it:
   voice sad 0.30 / neutral 0.25 with face sad 0.20 gave *neutral*.) With the CK+48
   face part and the RAVDESS voice part, ``neutral`` and ``calm`` are known only to the
   voice, ``contempt`` only to the face.
3. **Fusion.** For each class ``c`` the score is the weighted mean, over the usable
   parts, of ``log p_part(c)`` (``mode="log"``, a weighted geometric mean) or of
   ``p_part(c)`` (``mode="prob"``), with the neutral score where a part does not know
   ``c``; scores are then renormalised over the classes some usable part knows
   (softmax of the log scores / division by the sum). A part whose
   modality is missing in an input (silent audio, no face) is left out for that
   input, so a video with a silent track gets a face-only decision; its classes the
   face part does not know then get probability 0 (said in ``notes["fusion"]``).
4. **Weights** are given, or fitted on held-out labelled clips (:meth:`fit_weights`,
   ``mmfer compose --fit-weights DIR``): a grid over the simplex maximising the mean
   log-likelihood of the true class (never fit them on the clips you report).

The result is saved as one safetensors file: each part's tensors under the prefix
``part<i>.`` and JSON metadata (``format: mmfer-composed/1``) holding every part's
own checkpoint metadata, the label maps, weights and mode; :func:`mmfer.load`
loads it like any checkpoint. No pickle.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.emotions import CANONICAL, canonical_emotion, label_order
from mmfer.errors import ConfigError, DataError
from mmfer.inference.predictor import Predictor, predictor_from_state, read_checkpoint
from mmfer.inference.types import Prediction, input_kind, resolve_inputs

__all__ = ["FORMAT", "ComposedPredictor", "Part", "compose", "labelled_clips", "load_composed"]

FORMAT = "mmfer-composed/1"
MODES = ("log", "prob")
_FLOOR = 1e-6  # probability floor before log: a part's hard zero must not veto a class outright


@dataclass
class Part:
    """One unimodal (or multimodal) checkpoint inside a composed model.

    Attributes
    ----------
    name
        Short name (``face``, ``voice``), used in notes and ``--about``.
    predictor
        The loaded checkpoint.
    label_map
        Part label -> common label (``None`` = the part's class is ignored).
    weight
        Non-negative weight in the fusion.
    about
        Free-form description (training data, protocol-honest accuracy, licence).
    """

    name: str
    predictor: Predictor
    label_map: dict[str, str | None]
    weight: float = 1.0
    about: dict[str, Any] = field(default_factory=dict)

    def common_index(self, labels: Sequence[str]) -> list[tuple[int, int]]:
        """``(part column, common column)`` pairs of the classes this part knows."""
        pos = {lab: i for i, lab in enumerate(labels)}
        out = []
        for j, lab in enumerate(self.predictor.labels):
            target = self.label_map.get(lab, lab)
            if target is not None and target in pos:
                out.append((j, pos[target]))
        return out


def default_label_map(
    labels: Iterable[str], overrides: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """Canonical name of each label, with ``overrides`` (label -> common label or ``None``) applied."""
    overrides = dict(overrides or {})
    out: dict[str, str | None] = {}
    for lab in labels:
        out[lab] = overrides[lab] if lab in overrides else canonical_emotion(lab, source="label map")
    return out


def fuse_scores(
    probs: Sequence[np.ndarray | None], parts: Sequence[Part], labels: Sequence[str], mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decision-level fusion of one input's part probabilities.

    Parameters
    ----------
    probs
        Per part: ``(C_p,)`` probabilities over the part's labels, or ``None`` when the
        part could not predict this input.
    parts, labels
        The parts and the common label list (``C`` labels).
    mode
        ``"log"`` or ``"prob"`` (see the module docstring).

    Returns
    -------
    p : numpy.ndarray
        ``(C,)`` fused probabilities (0 for classes no usable part knows).
    known : numpy.ndarray
        ``(C,)`` bool, some usable part knows the class.
    """
    c = len(labels)
    num = np.zeros(c)  # (C,) weighted sum of (log-)probabilities, neutral where unknown
    den = 0.0  # sum of the weights of the usable parts (the same for every class)
    known = np.zeros(c, dtype=bool)  # (C,) some usable part knows the class
    for q, part in zip(probs, parts, strict=True):
        if q is None or part.weight <= 0:
            continue
        pairs = part.common_index(labels)
        if not pairs:
            continue
        cols = [j for j, _ in pairs]
        v = np.asarray(q, dtype=np.float64)[cols]  # (C_p',) the part's known classes
        v = np.log(np.maximum(v, _FLOOR)) if mode == "log" else v
        # a class this part does not know: its average score, i.e. no evidence either way
        row = np.full(c, v.mean())  # (C,)
        row[[k for _, k in pairs]] = v
        num += part.weight * row
        den += part.weight
        known[[k for _, k in pairs]] = True
    p = np.zeros(c)
    if not known.any():
        return p, known
    score = num[known] / den
    if mode == "log":
        z = np.exp(score - score.max())
        p[known] = z / z.sum()
    else:
        total = score.sum()
        p[known] = score / total if total > 0 else 1.0 / known.sum()
    return p, known


def _part_probs(part: Part, pred: Prediction) -> np.ndarray | None:
    """``(C_p,)`` probabilities of one part's prediction in the part's label order, ``None`` on error."""
    if pred.error is not None:
        return None
    return np.array([pred.probabilities[lab] for lab in part.predictor.labels])


class ComposedPredictor:
    """Several checkpoints fused at the decision level; the :class:`Predictor` interface.

    Parameters
    ----------
    parts
        The parts (at least one).
    labels
        Common label set; default: the union of the mapped part labels, canonical order.
    mode
        ``"log"`` (weighted mean of log-probabilities) or ``"prob"``.
    source
        Where it was loaded from.
    about
        Description of the composed model (shown by ``mmfer predict --about``).
    """

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        labels: Sequence[str] | None = None,
        mode: str = "log",
        source: str | None = None,
        about: dict[str, Any] | None = None,
    ) -> None:
        if not parts:
            raise ConfigError("compose: no part given")
        if mode not in MODES:
            raise ConfigError(f"compose: mode {mode!r} is not one of {list(MODES)}")
        if any(p.weight < 0 for p in parts):
            raise ConfigError("compose: weights must be >= 0")
        self.parts = list(parts)
        mapped = {
            t for p in self.parts for t in (p.label_map.get(lab, lab) for lab in p.predictor.labels) if t
        }
        self._labels = list(labels) if labels is not None else label_order(mapped)
        self.mode = mode
        self.source = source
        self.about = dict(about or {})
        self.debug = False
        self.face_results: dict[str, Any] = {}

    # ------------------------------------------------------------------ info
    @property
    def labels(self) -> list[str]:
        """Common labels, in output order."""
        return list(self._labels)

    @property
    def modalities(self) -> list[str]:
        """Union of the parts' modalities."""
        return list(dict.fromkeys(m for p in self.parts for m in p.predictor.modalities))

    def coverage(self) -> dict[str, list[str]]:
        """Common label -> names of the parts that know it (empty list: no part does)."""
        out: dict[str, list[str]] = {lab: [] for lab in self._labels}
        for p in self.parts:
            for _, k in p.common_index(self._labels):
                out[self._labels[k]].append(p.name)
        return out

    def info(self) -> dict[str, Any]:
        """JSON-able description: labels, coverage, parts (modalities, labels, weight, about)."""
        return {
            "model": "composed",
            "labels": self.labels,
            "modalities": self.modalities,
            "mode": self.mode,
            "coverage": self.coverage(),
            "parts": [
                {
                    "name": p.name,
                    "modalities": p.predictor.modalities,
                    "labels": p.predictor.labels,
                    "label_map": p.label_map,
                    "weight": p.weight,
                    "estimator": p.predictor.recognizer.estimator.name,
                    "about": p.about,
                }
                for p in self.parts
            ],
            "source": self.source,
            "about": self.about,
        }

    # ------------------------------------------------------------------ predict
    def predict(
        self, inputs: str | Path | Iterable[str | Path], *, transcript: str | None = None
    ) -> list[Prediction]:
        """Predict every input with every part and fuse (see the module docstring)."""
        paths = resolve_inputs(inputs)
        per_part: list[list[Prediction]] = []
        self.face_results = {}
        for p in self.parts:
            p.predictor.debug = self.debug
            per_part.append(p.predictor.predict(paths, transcript=transcript))
            self.face_results.update(p.predictor.face_results)
        return [self.fuse_predictions([pp[i] for pp in per_part]) for i in range(len(paths))]

    def fuse_predictions(self, preds: list[Prediction]) -> Prediction:
        """One input's fused prediction from its part predictions (one per part, in part order)."""
        path = preds[0].path
        out = Prediction(path=path)
        for part, pr in zip(self.parts, preds, strict=True):
            out.modalities_used += [m for m in pr.modalities_used if m not in out.modalities_used]
            for m, why in pr.modalities_missing.items():
                out.modalities_missing.setdefault(m, why)
            out.modalities_ignored += [m for m in pr.modalities_ignored if m not in out.modalities_ignored]
            out.notes.update({f"{part.name}.{k}": v for k, v in pr.notes.items()})
        out.modalities_missing = {
            m: r for m, r in out.modalities_missing.items() if m not in out.modalities_used
        }
        out.modalities_ignored = [m for m in out.modalities_ignored if m not in self.modalities]
        usable = [_part_probs(part, pr) for part, pr in zip(self.parts, preds, strict=True)]
        if all(q is None for q in usable):
            out.error = "; ".join(
                f"{part.name}: {pr.error}" for part, pr in zip(self.parts, preds, strict=True)
            )
            out.error = f"{path}: cannot predict: no part of the composed model could ({out.error})"
            return out
        p, known = fuse_scores(usable, self.parts, self._labels, self.mode)
        out.probabilities = {lab: float(v) for lab, v in zip(self._labels, p, strict=True)}
        out.label = self._labels[int(np.argmax(p))]
        used = [part.name for part, q in zip(self.parts, usable, strict=True) if q is not None]
        out.partial = len(used) < len(self.parts) or bool(out.modalities_missing)
        unknown = [lab for lab, k in zip(self._labels, known, strict=True) if not k]
        note = f"decision-level {self.mode} fusion of {' + '.join(used)}"
        if unknown:
            note += f"; no evidence for {', '.join(unknown)} (probability 0)"
        out.notes["fusion"] = note
        return out

    def predict_part_probabilities(self, paths: Sequence[str | Path]) -> list[list[np.ndarray | None]]:
        """Per input, per part: ``(C_p,)`` probabilities or ``None`` (for weight fitting)."""
        per_part = [p.predictor.predict(list(paths)) for p in self.parts]
        out = []
        for i in range(len(paths)):
            row = []
            for part, preds in zip(self.parts, per_part, strict=True):
                row.append(_part_probs(part, preds[i]))
            out.append(row)
        return out

    # ------------------------------------------------------------------ weights
    def fit_weights(
        self, paths: Sequence[str | Path], labels: Sequence[str], *, grid: int = 10
    ) -> dict[str, Any]:
        """Choose part weights on held-out labelled clips.

        Every weight vector on a simplex grid with step ``1/grid`` is scored by the mean
        log-likelihood of the true class (clips whose label no usable part knows are
        skipped); the best is kept (ties: the most even weights).

        Parameters
        ----------
        paths, labels
            Held-out clips and their emotions (any alias; mapped with
            :func:`~mmfer.emotions.canonical_emotion`). Never the clips you report on.

        Returns
        -------
        dict
            ``{"weights": {part: w}, "log_likelihood": float, "accuracy": float, "clips": n}``.
        """
        if len(paths) != len(labels) or not paths:
            raise DataError(None, f"fit_weights: {len(paths)} clips and {len(labels)} labels")
        y = [canonical_emotion(lab, source=p) for p, lab in zip(paths, labels, strict=True)]
        probs = self.predict_part_probabilities(paths)
        pos = {lab: i for i, lab in enumerate(self._labels)}
        best: tuple[float, float, tuple[float, ...]] | None = None
        best_acc = 0.0
        n_parts = len(self.parts)
        for combo in itertools.product(range(grid + 1), repeat=n_parts):
            if sum(combo) != grid:
                continue
            w = tuple(c / grid for c in combo)
            for part, wi in zip(self.parts, w, strict=True):
                part.weight = wi
            ll, hits, n = 0.0, 0, 0
            for row, lab in zip(probs, y, strict=True):
                if lab not in pos:
                    continue
                p, known = fuse_scores(row, self.parts, self._labels, self.mode)
                if not known[pos[lab]]:
                    continue
                n += 1
                ll += float(np.log(max(p[pos[lab]], _FLOOR)))
                hits += int(np.argmax(p) == pos[lab])
            if n == 0:
                continue
            key = (ll / n, -float(np.std(w)), w)
            if best is None or key[:2] > best[:2]:
                best, best_acc = key, hits / n
        if best is None:
            raise DataError(None, "fit_weights: no clip has a label the composed model can predict")
        for part, wi in zip(self.parts, best[2], strict=True):
            part.weight = wi
        result = {
            "weights": {p.name: p.weight for p in self.parts},
            "log_likelihood": best[0],
            "accuracy": best_acc,
            "clips": len(paths),
        }
        self.about["fitted_weights"] = result
        return result

    # ------------------------------------------------------------------ save
    def save(self, path: str | Path) -> Path:
        """One safetensors file: part tensors under ``part<i>.``, JSON metadata (no pickle)."""
        from mmfer.training.checkpoint import save_checkpoint

        tensors: dict[str, Any] = {}
        parts_meta = []
        for i, p in enumerate(self.parts):
            t, meta = p.predictor.recognizer.to_state()
            tensors.update({f"part{i}.{k}": v for k, v in t.items()})
            parts_meta.append(
                {
                    "name": p.name,
                    "weight": p.weight,
                    "label_map": p.label_map,
                    "about": p.about,
                    "checkpoint": meta,
                }
            )
        meta = {
            "format": FORMAT,
            "labels": self._labels,
            "mode": self.mode,
            "parts": parts_meta,
            "about": self.about,
        }
        save_checkpoint(path, tensors, meta)
        return Path(path)


def load_composed(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> ComposedPredictor:
    """Rebuild a :class:`ComposedPredictor` from what :meth:`ComposedPredictor.save` wrote."""

    if meta.get("format") != FORMAT:
        raise DataError(path, f"not a composed mmfer model (format {meta.get('format')!r})")
    parts = []
    for i, pm in enumerate(meta["parts"]):
        prefix = f"part{i}."
        t = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        predictor = predictor_from_state(Path(path), t, pm["checkpoint"])
        predictor.source = f"{path}#{pm['name']}"
        parts.append(
            Part(
                name=pm["name"],
                predictor=predictor,
                label_map=dict(pm["label_map"]),
                weight=float(pm["weight"]),
                about=dict(pm.get("about", {})),
            )
        )
    return ComposedPredictor(
        parts,
        labels=meta["labels"],
        mode=meta.get("mode", "log"),
        source=str(path),
        about=meta.get("about", {}),
    )


def compose(
    checkpoints: Mapping[str, str | Path | Predictor],
    *,
    label_maps: Mapping[str, Mapping[str, str | None]] | None = None,
    weights: Mapping[str, float] | None = None,
    labels: Sequence[str] | None = None,
    mode: str = "log",
    about: Mapping[str, Mapping[str, Any]] | None = None,
    face_detector: str | None = None,
) -> ComposedPredictor:
    """Build a composed predictor from named checkpoints.

    Parameters
    ----------
    checkpoints
        Part name -> checkpoint file (or loaded :class:`Predictor`), e.g.
        ``{"face": "face.safetensors", "voice": "voice.safetensors"}``.
    label_maps
        Part name -> {part label -> common label or ``None``}; unlisted labels map to
        their canonical name.
    weights
        Part name -> weight (default 1 each).
    labels
        Common label set (default: union of the mapped labels, canonical order).
    mode
        ``"log"`` or ``"prob"``.
    about
        Part name -> description stored in the file (training data, accuracy, licence).
    face_detector
        Face detector for the face parts at inference (e.g. ``"haar"`` for a head
        trained on pre-cropped CK+48 faces with ``detector: none``: new videos need
        the face found first); ``None`` keeps each checkpoint's own.

    Example
    -------
    >>> m = compose({"face": "ck.safetensors", "voice": "ravdess.safetensors"})  # doctest: +SKIP
    >>> m.save("composed.safetensors")  # doctest: +SKIP
    """
    parts = []
    for name, ck in checkpoints.items():
        pred = ck if isinstance(ck, Predictor) else _load_part(name, ck)
        if face_detector is not None and "face" in pred.modalities:
            rec = pred.recognizer
            face = dataclasses.replace(rec.features_cfg.face, detector=face_detector)
            rec.features_cfg = dataclasses.replace(rec.features_cfg, face=face)  # saved with the part
            pred.features_cfg = dataclasses.replace(pred.features_cfg, face=face)
        lmap = default_label_map(pred.labels, (label_maps or {}).get(name))
        for lab, target in lmap.items():
            if target is not None and target not in CANONICAL:
                raise ConfigError(f"compose: part {name!r} maps {lab!r} to unknown emotion {target!r}")
        parts.append(
            Part(name, pred, lmap, float((weights or {}).get(name, 1.0)), dict((about or {}).get(name, {})))
        )
    return ComposedPredictor(parts, labels=labels, mode=mode)


def _load_part(name: str, checkpoint: str | Path) -> Predictor:
    """A single checkpoint as a part (a composed file is refused: give its unimodal parts)."""
    path, tensors, meta = read_checkpoint(checkpoint)
    if meta.get("format") == FORMAT:
        raise ConfigError(f"compose: part {name!r} is itself a composed model; give its unimodal parts")
    return predictor_from_state(path, tensors, meta)


def labelled_clips(folder: str | Path) -> tuple[list[Path], list[str]]:
    """Clips and labels of a folder of labelled clips (for ``--fit-weights``).

    The label of each clip comes from, in order: a ``labels.csv`` in the folder
    (columns ``file,emotion``), else the name of its sub-folder (``happy/clip.mp4``),
    else a RAVDESS file name (``02-01-03-01-01-01-05.mp4``: third code).

    Raises
    ------
    DataError
        No labelled clip found, naming the folder.
    """
    import csv

    root = Path(folder)
    if not root.is_dir():
        raise DataError(root, "labelled-clips folder not found")
    index = root / "labels.csv"
    paths: list[Path] = []
    labels: list[str] = []
    if index.is_file():
        with open(index, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                paths.append(root / row["file"])
                labels.append(canonical_emotion(row["emotion"], source=index))
        return paths, labels
    from mmfer.data.ravdess import EMOTIONS as RAVDESS_EMOTIONS

    for p in sorted(root.rglob("*")):
        if not p.is_file() or input_kind(p) in (None, "text"):
            continue
        codes = p.stem.split("-")
        if p.parent != root:
            labels.append(canonical_emotion(p.parent.name, source=p))
        elif len(codes) == 7 and codes[2] in RAVDESS_EMOTIONS:
            labels.append(canonical_emotion(RAVDESS_EMOTIONS[codes[2]], source=p))
        else:
            continue
        paths.append(p)
    if not paths:
        raise DataError(root, "no labelled clip (labels.csv, emotion sub-folders or RAVDESS names)")
    return paths, labels
