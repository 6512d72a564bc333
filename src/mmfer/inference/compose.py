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
5. **Temperatures**: each part's probabilities are raised to ``1/T`` and renormalised
   before step 3 (``T = 1``, the default, changes nothing). :meth:`fit_temperatures`
   fits one per part by minimising the NLL of the fused prediction on labelled clips
   the caller names; it refuses clips that all come from the test corpus of a
   zero-shot claim (CK+48 for the zero-shot face part).

The arithmetic lives in :mod:`mmfer.inference.fusion_rules`. A part is a trained
checkpoint (kind ``trained``) or a zero-shot face part
(:mod:`mmfer.inference.zeroshot`, kind ``zeroshot-face``: pretrained expression heads,
no tensors of its own).

The result is saved as one safetensors file: each part's tensors under the prefix
``part<i>.`` and JSON metadata (``format: mmfer-composed/1``) holding every part's
own checkpoint metadata, the label maps, weights, temperatures (when not 1), kind (when not
``trained``) and mode; files without ``temperature``/``kind`` (earlier versions) load as
temperature 1, trained. :func:`mmfer.load` loads it like any checkpoint. No pickle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.emotions import CANONICAL, canonical_emotion, label_order
from mmfer.errors import ConfigError, DataError
from mmfer.inference.fusion_rules import (
    MODES,
    Part,
    default_label_map,
    fit_temperature_grid,
    fit_weight_grid,
    fuse_scores,
)
from mmfer.inference.predictor import Predictor, read_checkpoint
from mmfer.inference.types import Prediction, input_kind, resolve_inputs
from mmfer.inference.zeroshot import PART_KINDS, ZEROSHOT_TEST_CORPORA, part_from_state

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "ComposedPredictor",
    "Part",
    "compose",
    "default_label_map",
    "fuse_scores",
    "labelled_clips",
    "load_composed",
]

FORMAT = "mmfer-composed/1"


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
                    "kind": p.predictor.part_kind,
                    "modalities": p.predictor.modalities,
                    "labels": p.predictor.labels,
                    "label_map": p.label_map,
                    "weight": p.weight,
                    "temperature": p.temperature,
                    "estimator": p.predictor.recognizer.estimator.name,
                    "about": {**p.about, **p.predictor.about_notes()},
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
        y = self._check_clips(paths, labels, "fit_weights")
        probs = self.predict_part_probabilities(paths)
        result = fit_weight_grid(probs, y, self.parts, self._labels, self.mode, grid=grid)
        result["clips"] = len(paths)
        self.about["fitted_weights"] = result
        return result

    def fit_temperatures(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[str],
        *,
        allow_test_corpus: bool = False,
    ) -> dict[str, Any]:
        """One temperature per part, minimising the fused NLL on labelled clips the caller names.

        Coordinate descent over :data:`~mmfer.inference.fusion_rules.TEMPERATURE_GRID`
        (T = 1 included, so the NLL on these clips never rises). Changes the confidence of
        each part relative to the others, hence possibly the fused decisions.

        Parameters
        ----------
        paths, labels
            Held-out labelled clips. Never the clips you report on; and never only clips of
            a corpus on which a zero-shot part's figures are claimed (CK+48 for the face
            part): that would turn the zero-shot test into a fitted one.
        allow_test_corpus
            Fit even when every clip comes from such a corpus (logged as a warning and
            recorded in :attr:`about`); otherwise that is refused.

        Returns
        -------
        dict
            :func:`~mmfer.inference.fusion_rules.fit_temperature_grid`'s result plus ``clips``
            and ``warning`` (or ``None``).

        Raises
        ------
        ConfigError
            Every clip comes from a zero-shot test corpus and ``allow_test_corpus`` is false.
        """
        y = self._check_clips(paths, labels, "fit_temperatures")
        warning = _test_corpus_warning(paths)
        if warning and not allow_test_corpus:
            raise ConfigError(
                f"fit_temperatures: {warning}; refusing (pass allow_test_corpus=True to override)"
            )
        if warning:
            log.warning("fit_temperatures: %s", warning)
        probs = self.predict_part_probabilities(paths)
        result = fit_temperature_grid(probs, y, self.parts, self._labels, self.mode)
        result["warning"] = warning
        self.about["fitted_temperatures"] = result
        return result

    @staticmethod
    def _check_clips(paths: Sequence[str | Path], labels: Sequence[str], what: str) -> list[str]:
        """Canonical labels of the clips (``DataError`` on a count mismatch or no clip)."""
        if len(paths) != len(labels) or not paths:
            raise DataError(None, f"{what}: {len(paths)} clips and {len(labels)} labels")
        return [canonical_emotion(lab, source=p) for p, lab in zip(paths, labels, strict=True)]

    # ------------------------------------------------------------------ save
    def save(self, path: str | Path) -> Path:
        """One safetensors file: part tensors under ``part<i>.``, JSON metadata (no pickle)."""
        from mmfer.training.checkpoint import save_checkpoint

        tensors: dict[str, Any] = {}
        parts_meta = []
        for i, p in enumerate(self.parts):
            t, meta = p.predictor.checkpoint_state()
            tensors.update({f"part{i}.{k}": v for k, v in t.items()})
            pm = {"name": p.name, "weight": p.weight, "label_map": p.label_map, "about": p.about}
            if p.temperature != 1.0:
                pm["temperature"] = p.temperature  # absent = 1 (files of earlier versions)
            if p.predictor.part_kind != "trained":
                pm["kind"] = p.predictor.part_kind  # absent = "trained"
            parts_meta.append({**pm, "checkpoint": meta})
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
        kind = pm.get("kind", "trained")
        if kind not in PART_KINDS:
            raise DataError(
                path, f"part {pm['name']!r} is of unknown kind {kind!r} (known: {list(PART_KINDS)})"
            )
        predictor = part_from_state(kind, Path(path), t, pm["checkpoint"])
        predictor.source = f"{path}#{pm['name']}"
        parts.append(
            Part(
                name=pm["name"],
                predictor=predictor,
                label_map=dict(pm["label_map"]),
                weight=float(pm["weight"]),
                about=dict(pm.get("about", {})),
                temperature=float(pm.get("temperature", 1.0)),
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
    return part_from_state(None, path, tensors, meta)


def _test_corpus_warning(paths: Sequence[str | Path]) -> str | None:
    """Why calibrating on ``paths`` is suspect: all (or some) come from a zero-shot test corpus."""
    for corpus, marks in ZEROSHOT_TEST_CORPORA.items():
        hit = [p for p in paths if any(m in str(p).lower() for m in marks)]
        if len(hit) == len(paths):
            return (
                f"every calibration clip comes from {corpus}, the test corpus of the zero-shot face "
                "figures: calibrating on it makes them no longer zero-shot"
            )
        if hit:
            return f"{len(hit)}/{len(paths)} calibration clips come from {corpus} (a zero-shot test corpus)"
    return None


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
