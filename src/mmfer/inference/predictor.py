"""Python API for prediction on new clips, images, audio files and transcripts.

>>> import mmfer
>>> model = mmfer.load("runs/default/model.safetensors")  # doctest: +SKIP
>>> for p in model.predict("clips/*.mp4"):  # doctest: +SKIP
...     print(p.path, p.label, p.probabilities)

:class:`Predictor` wraps one trained checkpoint; :func:`mmfer.inference.load`
(:mod:`mmfer.inference.loader`) returns it, or a
:class:`~mmfer.inference.compose.ComposedPredictor` for a composed file. Input
kinds and :class:`~mmfer.inference.types.Prediction` live in
:mod:`mmfer.inference.types`, output formats in :mod:`mmfer.inference.output`
(both re-exported here).

Only the modalities the checkpoint was trained on are extracted. A modality
the input lacks, or whose extraction fails (silent audio, no face, corrupt
track), is masked exactly as in training (zeros + presence flag 0) and the
prediction is marked ``partial`` with the reason. An input from which no
modality of the model can be extracted gets an ``error`` naming the file; the
rest of the batch is still predicted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.config import MODALITIES
from mmfer.errors import DataError, FeatureError
from mmfer.inference.output import to_csv, to_json, to_table
from mmfer.inference.types import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    KIND_MODALITIES,
    SUPPORTED_EXTENSIONS,
    TEXT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Prediction,
    has_glob,
    input_kind,
    resolve_inputs,
    supported_list,
    without_path,
)

log = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Prediction",
    "Predictor",
    "input_kind",
    "predictor_from_state",
    "read_checkpoint",
    "resolve_inputs",
    "to_csv",
    "to_json",
    "to_table",
]

_KIND_NOUN = {"video": "a video", "audio": "an audio file", "image": "an image", "text": "a transcript"}


@dataclass
class _Job:
    """One input on its way through extraction: table row + what is already known."""

    path: str
    kind: str
    row: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    error: str | None = None


class Predictor:
    """A loaded model ready to predict on files and transcripts.

    Subclasses (:class:`mmfer.inference.zeroshot.ZeroShotFacePredictor`) set another
    :attr:`part_kind`, stored with them in a composed checkpoint.

    Parameters
    ----------
    recognizer
        A fitted :class:`mmfer.recognizer.Recognizer` (fuser + model + labels + configs).
    cache_dir
        Feature cache for predictions; ``None`` (default) = features are extracted in
        memory (:func:`mmfer.features.extract.extract_sample`, the same per-unit code as
        training extraction) and nothing is written to disk.
    batch_size
        Model batch size.
    source
        Where the model came from (shown in :meth:`info`).
    """

    #: Kind of checkpoint, recorded in composed models (``trained``: a fitted recogniser).
    part_kind = "trained"

    def __init__(
        self,
        recognizer: Any,
        *,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        source: str | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.batch_size = batch_size
        self.source = source
        # Predicting a handful of files: a process pool or a dask cluster costs more than it saves,
        # and one bad file must never abort the batch.
        self.features_cfg = dataclasses.replace(
            recognizer.features_cfg, strict=False, workers=1, backend="local"
        )
        #: Face crops of the last :meth:`predict` call, path -> FaceResult (``debug=True`` only).
        self.debug = False
        self.face_results: dict[str, Any] = {}
        #: Speaker statistics from enrolment clips (see :meth:`enrol`), stored in the checkpoint.
        self.enrolment: dict[str, Any] | None = recognizer.extra.get("enrolment")

    # ------------------------------------------------------------------ speaker normalisation
    @property
    def speaker_norm(self) -> bool:
        """The checkpoint was trained with per-speaker normalisation (``fusion.speaker_norm``)."""
        return bool(self.recognizer.fuser.cfg.speaker_norm)

    def enrol(
        self, inputs: str | Path | Iterable[str | Path], *, speaker: str = "enrolled"
    ) -> dict[str, Any]:
        """Compute the speaker statistics used to normalise the clips predicted afterwards.

        Label-free: the per-dimension mean/std of the enrolment clips' face/audio
        frames, exactly what training computed per training speaker
        (:meth:`mmfer.fusion.Fuser.speaker_statistics`). Kept in
        ``recognizer.extra["enrolment"]``, so :meth:`save` stores it in the checkpoint.

        Parameters
        ----------
        inputs
            Clips of the speaker (file, folder, glob, or a list); their labels are never read.
        speaker
            Name recorded with the statistics.

        Returns
        -------
        dict
            ``{"speaker", "clips", "frames": {modality: n}, "stats": {modality: {"mean", "std"}}}``.

        Raises
        ------
        ConfigError
            The checkpoint was not trained with ``fusion.speaker_norm``.
        DataError
            No enrolment clip gave a usable face/audio modality (naming the files).
        """
        from mmfer.errors import ConfigError

        if not self.speaker_norm:
            raise ConfigError(
                "enrolment needs a checkpoint trained with fusion.speaker_norm=true "
                f"({self.source or 'this model'} was not)"
            )
        jobs = [self._plan(p, None) for p in resolve_inputs(inputs)]
        runnable = [j for j in jobs if j.error is None and any(v is not None for v in j.row.values())]
        feats = self._extract(runnable) if runnable else []
        stats = self.recognizer.fuser.speaker_statistics(feats)
        if not stats:
            bad = "; ".join(j.error or j.path for j in jobs[:5])
            raise DataError(None, f"enrolment: no clip gave face/audio features ({bad})")
        self.enrolment = {
            "speaker": speaker,
            "clips": [j.path for j in runnable],
            "frames": {m: int(v["frames"]) for m, v in stats.items()},
            "stats": {m: {"mean": v["mean"], "std": v["std"]} for m, v in stats.items()},
        }
        self.recognizer.extra["enrolment"] = self.enrolment
        return self.enrolment

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint (with the enrolment statistics, if any) to ``path``."""
        return self.recognizer.save(path)

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tensors and metadata of the checkpoint (what :meth:`save` writes; embedded in composed files)."""
        return self.recognizer.to_state()

    def about_notes(self) -> dict[str, str]:
        """Facts about the loaded model for ``--about`` beyond its stored description (none here)."""
        return {}

    # ------------------------------------------------------------------ info
    @property
    def labels(self) -> list[str]:
        """Emotion labels of the model, in output order."""
        return list(self.recognizer.labels)

    @property
    def modalities(self) -> list[str]:
        """Modalities the model was trained on (subset of face, audio, text)."""
        return list(self.recognizer.modalities)

    def info(self) -> dict[str, Any]:
        """Model name, labels, modalities, fusion steps and input width (JSON-able)."""
        rec = self.recognizer
        return {
            "model": rec.model_cfg.name,
            "labels": self.labels,
            "modalities": self.modalities,
            "steps": int(rec.fuser.cfg.steps),
            "in_features": int(rec.fuser.n_features),
            "source": self.source,
            "extra": dict(rec.extra),
        }

    # ------------------------------------------------------------------ predict
    def predict(
        self, inputs: str | Path | Iterable[str | Path], *, transcript: str | None = None
    ) -> list[Prediction]:
        """Predict the emotion of every input.

        Parameters
        ----------
        inputs
            File, folder, glob pattern, or a list of them (see :func:`resolve_inputs`).
        transcript
            Words spoken in the input(s); overrides sidecar ``.txt`` files. Used
            only when the model has the text modality.

        Returns
        -------
        list[Prediction]
            One per resolved input, in order; unreadable inputs carry ``error``.
        """
        self.face_results = {}
        jobs = [self._plan(p, transcript) for p in resolve_inputs(inputs)]
        return self._run(jobs)

    def predict_text(self, text: str) -> Prediction:
        """Predict from a transcript alone (the model must have the text modality)."""
        job = _Job(path="<text>", kind="text")
        if not isinstance(text, str) or not text.strip():
            job.error = "<text>: empty transcript"
        else:
            self._fill(job, {"text"}, transcript=text)
        return self._run([job])[0]

    def predict_features(
        self, feats: Sequence[Any], names: Sequence[str], *, stats: dict[str, Any] | None = None
    ) -> list[Prediction]:
        """Predict from already extracted :class:`~mmfer.features.units.SampleFeatures`.

        Used for streaming, where features of each window are computed in memory.

        Parameters
        ----------
        feats
            One ``SampleFeatures`` per sample (``face (T_v, D_v)``, ``audio (T_a, D_a)``, ``text``).
        names
            What to put in :attr:`Prediction.path` for each sample.
        stats
            Speaker statistics ``{modality: {"mean": (D,), "std": (D,)}}`` for a
            speaker-normalised checkpoint (default: enrolment, else the batch itself).
        """
        if len(feats) != len(names):
            raise ValueError(f"{len(feats)} feature sets but {len(names)} names")
        preds = [self._collect(str(n), f, {}, []) for f, n in zip(feats, names, strict=True)]
        ok = [(p, f) for p, f in zip(preds, feats, strict=True) if p.error is None]
        self._score([p for p, _ in ok], [f for _, f in ok], stats=stats)
        return preds

    # ------------------------------------------------------------------ internals
    def _plan(self, path: Path, transcript: str | None) -> _Job:
        """Classify one input and prepare its sample-table row (or its error)."""
        kind = input_kind(path)
        job = _Job(path=str(path), kind=kind or "unknown")
        if not path.exists() and has_glob(str(path)):
            job.error = f"{path}: no supported file matches this pattern"
            return job
        if kind is None:
            if path.is_dir():
                job.error = f"{path}: folder holds no supported file ({supported_list()})"
            else:
                ext = path.suffix or "(no extension)"
                job.error = f"{path}: unsupported file type {ext!r} ({supported_list()})"
            return job
        if not path.is_file():
            job.error = f"{path}: file not found"
            return job
        offered = set(KIND_MODALITIES[kind])
        if kind == "text":
            text: str | None = None
            try:
                from mmfer.features.words.cleaning import read_transcript

                text = read_transcript(path)
            except FeatureError as e:
                job.missing["text"] = without_path(str(e), path)
        elif transcript is not None:
            text = transcript
        else:
            text = self._sidecar(path, job)
        self._fill(job, offered, transcript=text)
        return job

    def _sidecar(self, path: Path, job: _Job) -> str | None:
        """Text of ``<stem>.txt`` beside ``path`` if the model uses text (problems -> ``job.missing``)."""
        side = path.with_suffix(".txt")
        if "text" not in self.modalities or not side.is_file():
            return None
        from mmfer.features.words.cleaning import read_transcript

        try:
            return read_transcript(side)
        except FeatureError as e:
            job.missing["text"] = f"sidecar transcript {side.name}: {without_path(str(e), side)}"
            return None

    def _fill(self, job: _Job, offered: set[str], *, transcript: str | None) -> None:
        """Set the table row for the modalities both the input and the model have."""
        model_mods = self.modalities
        if transcript is None or not transcript.strip():
            offered = offered - {"text"}
        row: dict[str, Any] = {"transcript": None}
        if "face" in offered and "face" in model_mods:
            row["video" if job.kind == "video" else "image"] = job.path
        if "audio" in offered and "audio" in model_mods:
            row["audio"] = job.path  # a video's audio track is decoded from the container
        if "text" in offered and "text" in model_mods:
            row["transcript"] = transcript
        job.row = row
        job.ignored = [m for m in MODALITIES if m in offered and m not in model_mods]
        for m in model_mods:
            if m in offered or m in job.missing:
                continue
            if m == "text" and job.kind != "text":
                job.missing[m] = "no transcript given (and no sidecar .txt with the same name)"
            else:
                job.missing[m] = f"{_KIND_NOUN.get(job.kind, 'this input')} has no {m} modality"

    def _extract(self, jobs: list[_Job]) -> list[Any]:
        """``SampleFeatures`` of each job, in order (masked modalities listed in ``issues``)."""
        from mmfer.features.extract import extract_sample

        mods = tuple(self.modalities)
        cfg = self.features_cfg
        if self.cache_dir is not None and not self.debug:
            import pandas as pd

            from mmfer.data.table import COLUMNS
            from mmfer.features.extract import extract_features

            # One row per input; the position keeps ids unique, the path makes warnings readable.
            rows = [
                {**{c: j.row.get(c) for c in COLUMNS}, "id": f"#{i} {j.path}"} for i, j in enumerate(jobs)
            ]
            table = pd.DataFrame(rows, columns=list(COLUMNS)).astype(object)
            feats = extract_features(table, cfg, self.cache_dir, modalities=mods, progress=False)
            return [feats[r["id"]] for r in rows]
        out = []
        for j in jobs:
            faces: list[Any] = []
            r = j.row
            out.append(
                extract_sample(
                    cfg,
                    modalities=mods,
                    video=r.get("video"),
                    image=r.get("image"),
                    audio=r.get("audio"),
                    transcript=r.get("transcript"),
                    source=j.path,
                    face_result=faces if self.debug else None,
                    # fast path: detect + embed only the face frames the model reads
                    # (same fused input; --debug-dir shows every sampled frame instead)
                    face_frames_used=None if self.debug else self.recognizer.fuser.face_frames_used,
                )
            )
            if faces:
                self.face_results[j.path] = faces[0]
        return out

    def _run(self, jobs: list[_Job]) -> list[Prediction]:
        from mmfer.features.units import SampleFeatures

        # Inputs with nothing of the model's modalities (e.g. an image for an audio model) skip extraction.
        runnable = [j for j in jobs if j.error is None and any(v is not None for v in j.row.values())]
        extracted = dict(zip(map(id, runnable), self._extract(runnable), strict=True)) if runnable else {}
        preds: list[Prediction] = []
        scored: list[tuple[Prediction, Any]] = []
        for j in jobs:
            if j.error is not None:
                preds.append(Prediction(path=j.path, error=j.error, modalities_missing=dict(j.missing)))
                continue
            f = extracted.get(id(j), SampleFeatures())
            p = self._collect(j.path, f, j.missing, j.ignored)
            preds.append(p)
            if p.error is None:
                scored.append((p, f))
        self._score([p for p, _ in scored], [f for _, f in scored])
        return preds

    def _collect(self, path: str, f: Any, missing: dict[str, str], ignored: list[str]) -> Prediction:
        pred = self._collect_used(path, f, missing, ignored)
        pred.notes.update({m: n for m, n in getattr(f, "notes", {}).items() if m in pred.modalities_used})
        return pred

    def _collect_used(self, path: str, f: Any, missing: dict[str, str], ignored: list[str]) -> Prediction:
        """Prediction skeleton: used/missing modalities, or an error when none is usable."""
        missing = dict(missing)
        for m, msg in getattr(f, "issues", {}).items():
            if m in self.modalities:
                missing[m] = without_path(msg, path)
        used = [m for m in self.modalities if getattr(f, m, None) is not None]
        missing = {m: missing.get(m, "not extracted") for m in self.modalities if m not in used}
        pred = Prediction(
            path=path,
            modalities_used=used,
            modalities_missing=missing,
            modalities_ignored=list(ignored),
            partial=bool(missing),
        )
        if not used:
            reasons = "; ".join(f"{m}: {r}" for m, r in missing.items())
            pred.error = (
                f"{path}: cannot predict: none of the model's modalities "
                f"({', '.join(self.modalities)}) could be read ({reasons})"
            )
            pred.partial = False
        return pred

    def _score(
        self, preds: list[Prediction], feats: list[Any], *, stats: dict[str, Any] | None = None
    ) -> None:
        """Run fusion + model on the usable samples and fill labels/probabilities in place.

        With a speaker-normalised checkpoint, the clips are normalised with ``stats``
        if given (streaming: a running estimate), else the enrolment statistics, else
        the statistics of this batch's own clips (treated as one speaker; said in
        ``notes["speaker_norm"]``).
        """
        if not preds:
            return
        rec = self.recognizer
        speakers = None
        if self.speaker_norm:
            speakers = ["speaker"] * len(feats)
            if stats is not None:
                note = "normalised with a running estimate of the speaker's statistics"
            elif self.enrolment is not None:
                stats = self.enrolment["stats"]
                note = (
                    f"normalised with the enrolment statistics of {self.enrolment.get('speaker')!r} "
                    f"({len(self.enrolment.get('clips', []))} clips)"
                )
            else:
                note = (
                    f"no enrolment: normalised with the statistics of the {len(feats)} clip(s) "
                    "predicted together (treated as one speaker)"
                )
            for p in preds:
                p.notes["speaker_norm"] = note
        fused = rec.fuser.transform(
            list(feats), speakers=speakers, stats=None if stats is None else {"speaker": stats}
        )
        proba = np.asarray(rec.estimator.predict_proba(fused.x, fused.mask))  # (N, C)
        labels = self.labels
        for p, row in zip(preds, proba, strict=True):
            p.probabilities = {lab: float(v) for lab, v in zip(labels, row, strict=True)}
            p.label = labels[int(np.argmax(row))]


def read_checkpoint(checkpoint: str | Path | None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint file: ``(path, tensors, metadata)``.

    Parameters
    ----------
    checkpoint
        A ``.safetensors`` file written by ``mmfer train`` or ``mmfer compose``;
        ``None`` = the default model shipped with the package
        (:mod:`mmfer.inference.default`). Read with safetensors + JSON metadata: no pickle.

    Raises
    ------
    DataError
        Missing file, or not an mmfer model checkpoint.
    """
    from mmfer.training.checkpoint import load_checkpoint

    if checkpoint is None:
        from mmfer.inference.default import default_model_path

        checkpoint = default_model_path()
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise DataError(path, "model checkpoint not found (train one with `mmfer train`)")
    tensors, meta = load_checkpoint(path)
    return path, tensors, meta


def predictor_from_state(
    path: Path, tensors: dict[str, Any], meta: dict[str, Any], *, cache_dir: str | Path | None = None
) -> Predictor:
    """A :class:`Predictor` from a single (not composed) checkpoint read by :func:`read_checkpoint`."""
    from mmfer.recognizer import Recognizer

    return Predictor(Recognizer.from_state(tensors, meta, path), cache_dir=cache_dir, source=str(path))
