"""Per-sample feature extraction over a sample table, cached and parallel: the orchestration.

Every (sample, modality) *unit* (:class:`~mmfer.features.units.Unit`) is keyed by
:class:`~mmfer.features.cache.FeatureCache` (extractor config + input content).
Cached units are read back; the rest are computed in-process (``workers=1``), in a
local process pool (``workers>1``) or on a dask.distributed cluster
(``backend="dask"``) by :mod:`mmfer.features.runner`. Results are written to the
cache by the calling process as each unit completes, so a killed run resumes
where it stopped and the cache never needs to be reachable from remote workers.

The modality wings (face, voice, words) plug in through
:class:`mmfer.features.extractors.UnitExtractor`; this module knows units, keys
and the cache, not how any modality is computed.

A bad file masks only its own modality (``SampleFeatures.issues``) unless
``FeatureConfig.strict`` is set, in which case the first failure is raised.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfer.config import MODALITIES, FeatureConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.cache import FeatureCache
from mmfer.features.extractors import Extractors, extractors_for
from mmfer.features.frame_images import expand_frame_images, stack_frame_features
from mmfer.features.runner import Outcome, error_from, iter_dask, iter_local, run_unit
from mmfer.features.summary import log_masked
from mmfer.features.units import SampleFeatures, Unit, plan_augmented, plan_units, record_arrays
from mmfer.io import LFS_PROBLEM, is_lfs_pointer
from mmfer.progress import Heartbeat

log = logging.getLogger(__name__)

__all__ = ["MAX_WARNINGS", "extract_features", "extract_sample"]

#: Masking warnings logged one by one before the rest go to DEBUG (a summary line follows).
MAX_WARNINGS = 10


# --------------------------------------------------------------------------- table -> cache keys


def keyed_units(
    units: list[Unit], cache: FeatureCache, ex: Extractors
) -> Iterator[tuple[Unit, FeatureError | None]]:
    """Fill in each unit's cache key; yield ``(unit, error)`` with the error if the input is unreadable.

    A unit's ``variant`` (> 0: an augmented copy) joins its kind's config in the key.
    """
    configs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for u in units:
        which = (u.modality, u.kind, u.variant)
        if which not in configs:
            base = ex.config_for(u.modality, u.kind)
            configs[which] = {**base, "variant": u.variant} if u.variant else base
        try:
            if u.kind == "transcript_text":
                key = cache.key_text(u.modality, configs[which], u.source)
            elif u.kind == "transcript_file" and not Path(u.source).is_file():
                raise FeatureError(u.source, "transcript file not found")
            elif not Path(u.source).exists():
                raise FeatureError(u.source, f"{u.kind} file not found")
            elif u.kind != "frames" and is_lfs_pointer(u.source):
                # Not cached: after `git lfs pull` the same path holds the real media.
                raise FeatureError(u.source, LFS_PROBLEM)
            else:
                key = cache.key(u.modality, configs[which], u.source)
        except FeatureError as e:
            yield u, e
            continue
        yield dataclasses.replace(u, key=key), None


# --------------------------------------------------------------------------- one extraction run


class _Run:
    """State of one :func:`extract_features` call: results, cache, extractors, warnings logged."""

    def __init__(self, table: pd.DataFrame, cfg: FeatureConfig, cache: FeatureCache) -> None:
        self.cfg = cfg
        self.cache = cache
        self.ex = extractors_for(cfg, limit_threads=False)
        self.results: dict[str, SampleFeatures] = {str(sid): SampleFeatures() for sid in table["id"]}
        self.n_warned = 0

    def record_error(self, unit: Unit, err: FeatureError, *, cached: bool = False) -> None:
        """Mask ``unit``'s modality with ``err`` (or raise it when ``strict``).

        An augmented copy (``unit.variant > 0``) only leaves itself out, noted in
        ``notes["audio_aug"]``, even when ``strict``: the clip's own audio is not touched.
        """
        if unit.variant:
            # an augmented copy that failed is left out of training; the clip itself is kept
            sf = self.results[unit.sample_id]
            sf.notes["audio_aug"] = f"{sf.notes.get('audio_aug', '')}copy {unit.variant} masked: {err}; "
            log.debug("sample %s: augmented copy %d masked: %s", unit.sample_id, unit.variant, err)
            return
        if self.cfg.strict:
            raise err
        msg = str(err)
        self.results[unit.sample_id].issues[unit.modality] = msg
        # A whole corpus of LFS pointers would otherwise flood the log; the summary counts them all.
        self.n_warned += 1
        level = logging.WARNING if self.n_warned <= MAX_WARNINGS else logging.DEBUG
        log.log(level, "sample %s: %s masked%s: %s", unit.sample_id, unit.modality, " (cached)" * cached, msg)

    def read_cached(self, units: list[Unit]) -> dict[str, list[Unit]]:
        """Key every unit and record what is cached; return key -> units still to compute.

        Units sharing one key (duplicate input files) are computed once.
        """
        todo: dict[str, list[Unit]] = {}
        for unit, err in keyed_units(units, self.cache, self.ex):
            if err is not None:
                self.record_error(unit, err)
                continue
            try:
                arrays = self.cache.get(unit.key)
            except FeatureError as cached_err:
                # Re-create with this unit's path: the entry may have been made from a renamed copy.
                self.record_error(unit, type(cached_err)(unit.path, cached_err.problem), cached=True)
                continue
            if arrays is None:
                todo.setdefault(unit.key, []).append(unit)
            else:
                record_arrays(self.results[unit.sample_id], unit.modality, arrays, variant=unit.variant)
        return todo

    def outcomes(self, todo: dict[str, list[Unit]]) -> Iterator[Outcome]:
        """Compute the first unit of each key: text in-process, the rest through the runner.

        Text is trivial, so it is never shipped to workers (ASR is not trivial: it goes
        to the workers with the media).
        """
        firsts = [us[0] for us in todo.values()]
        text_units = [u for u in firsts if u.modality == "text" and u.kind != "asr"]
        heavy_units = [u for u in firsts if u.modality != "text" or u.kind == "asr"]
        self.ex.prefetch(text_units)  # sentence embeddings in batches, when asked for
        for u in text_units:
            yield run_unit(u, self.ex)
        if not heavy_units:
            return
        if self.cfg.backend == "dask":
            yield from iter_dask(heavy_units, self.cfg)
        else:
            yield from iter_local(heavy_units, self.cfg, self.ex)

    def store(self, out: Outcome, units: Sequence[Unit]) -> None:
        """Write one outcome to the cache (not unexpected errors) and record it for its units."""
        first = units[0]
        meta = {
            "modality": first.modality,
            "kind": first.kind,
            "source": first.path or "<inline text>",
            "sample_id": first.sample_id,
            "seconds": round(out.seconds, 4),
            **({"variant": first.variant} if first.variant else {}),
        }
        if out.arrays is not None:
            self.cache.put(out.key, out.arrays, meta)
            for u in units:
                record_arrays(self.results[u.sample_id], u.modality, out.arrays, variant=u.variant)
            return
        if out.error_kind != "unexpected":
            self.cache.put_error(out.key, error_from(out, first), meta)
        for u in units:
            self.record_error(u, error_from(out, u))

    def compute(self, todo: dict[str, list[Unit]], *, progress: bool) -> None:
        """Compute, cache and record every key of ``todo``, with a progress bar or heartbeat."""
        from tqdm.auto import tqdm

        # disable=None: tqdm turns itself off when stderr is not a terminal (logs, CI);
        # the heartbeat then writes a log line at most every 30 s instead.
        beat = Heartbeat(len(todo), "features", every_s=30.0, enabled=None if progress else False)
        with tqdm(total=len(todo), desc="features", unit="file", disable=None if progress else True) as bar:
            for out in self.outcomes(todo):
                units = todo[out.key]
                self.store(out, units)
                bar.update(1)
                beat.tick(file=Path(units[0].path).name if units[0].path else None)


def _checked_modalities(
    table: pd.DataFrame, cfg: FeatureConfig, modalities: Iterable[str]
) -> tuple[str, ...]:
    """The requested modalities, deduplicated; ConfigError on a bad modality, backend or table."""
    mods = tuple(dict.fromkeys(modalities))
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"unknown modality {unknown[0]!r}; valid: {', '.join(MODALITIES)}")
    if cfg.backend not in ("local", "dask"):
        raise ConfigError(f"features.backend: {cfg.backend!r} is not one of ['local', 'dask']")
    if "id" not in table.columns:
        raise ConfigError("sample table has no 'id' column")
    return mods


def extract_features(
    table: pd.DataFrame,
    cfg: FeatureConfig,
    cache_dir: str | Path,
    *,
    modalities: Iterable[str] = MODALITIES,
    progress: bool = True,
) -> dict[str, SampleFeatures]:
    """Extract (or read from the cache) the features of every sample of a table.

    Parameters
    ----------
    table
        Sample table (:mod:`mmfer.data.table`): ``id`` plus ``video``, ``frames``,
        ``image``, ``audio``, ``transcript`` columns (absent cells are skipped), and
        optionally ``frame_images`` (ordered image files: the face is one row per image,
        each extracted and cached as a still image, :mod:`mmfer.features.frame_images`).
    cfg
        :class:`mmfer.config.FeatureConfig` (extractor configs, ``workers``,
        ``backend``, ``dask_address``, ``strict``).
    cache_dir
        Feature cache folder (:class:`FeatureCache`).
    modalities
        Subset of ``("face", "audio", "text")`` to extract.
    progress
        Show a tqdm progress bar over the units that must be computed.

    Returns
    -------
    dict[str, SampleFeatures]
        Keyed by sample id, in table order; ``face`` ``(T_v, D_v)``, ``audio``
        ``(T_a, D_a)`` float32, ``text`` cleaned string; with ``cfg.augment.copies`` > 0,
        ``audio_aug`` ``{k: (T_k, D_a)}`` (augmented copies of the audio, cached as units).

    Raises
    ------
    FeatureError
        ``cfg.strict`` and some input is bad (the first failure, naming the file).
    ConfigError
        Unknown modality or backend.
    """
    mods = _checked_modalities(table, cfg, modalities)
    # multi-image samples (frame_images): one image unit per frame, as in a per-image table
    table, frame_parts = expand_frame_images(table, cfg.face.max_frames)
    run = _Run(table, cfg, FeatureCache(cache_dir))
    units = plan_units(table, mods, asr=cfg.text.asr)
    units += plan_augmented(_augmentable(units, table, cfg), cfg.augment.copies)  # train-time copies
    todo = run.read_cached(units)  # 1. key every unit, read the cache
    if todo:
        run.compute(todo, progress=progress)  # 2. compute the rest
    results = stack_frame_features(run.results, frame_parts)  # 3. frames -> (T, D) per sample
    log_masked(results)
    return results


# --------------------------------------------------------------------------- one sample, in memory


def _augmentable(units: list[Unit], table: pd.DataFrame, cfg: FeatureConfig) -> list[Unit]:
    """The units whose clips get augmented copies: all, or those of ``augment.corpora``."""
    keep = cfg.augment.corpora
    if not keep or cfg.augment.copies <= 0:
        return units
    if "corpus" not in table.columns:
        raise ConfigError("features.augment.corpora needs a corpus column in the sample table")
    ids = set(table.loc[table["corpus"].astype(str).isin([str(c) for c in keep]), "id"].astype(str))
    return [u for u in units if u.sample_id in ids]


def _guarded(sf: SampleFeatures, modality: str, fn: Callable[[], dict[str, np.ndarray]], src: Any) -> None:
    """Record ``fn()``'s arrays in ``sf``, or mask ``modality`` with the reason (never raises)."""
    try:
        record_arrays(sf, modality, fn())
    except FeatureError as e:
        sf.issues[modality] = str(FeatureError(e.path if e.path is not None else src, e.problem))
    except Exception as e:  # third-party decoders raise all sorts on odd files
        log.debug("unexpected error on %s", src, exc_info=True)
        sf.issues[modality] = f"{src}: unexpected {type(e).__name__}: {e}"


def _face_job(
    ex: Extractors,
    files: dict[str, str | Path | None],
    frames: np.ndarray | None,
    source: str | None,
    sink: list[Any] | None,
    frames_used: Any,
) -> tuple[Callable[[], dict[str, np.ndarray]], Any] | None:
    """``(compute, name)`` of the face unit of :func:`extract_sample`, or ``None`` without a face source."""
    from mmfer.features.face.units import FaceUnitExtractor

    face = ex.wing("face")
    assert isinstance(face, FaceUnitExtractor)
    if frames is not None:
        name = source or "<frames>"
        return (lambda: face.from_frames(frames, name, frames_used=frames_used, sink=sink)), name
    kind, path = next(((k, v) for k, v in files.items() if v is not None), (None, None))
    if kind is None or path is None:
        return None
    return (lambda: face.from_file(kind, path, frames_used=frames_used, sink=sink)), path


def _audio_job(
    ex: Extractors,
    cfg: FeatureConfig,
    audio: str | Path | None,
    wave: np.ndarray | None,
    sample_rate: int | None,
    source: str | None,
) -> tuple[Callable[[], dict[str, np.ndarray]], Any] | None:
    """``(compute, name)`` of the audio unit of :func:`extract_sample`, or ``None`` without audio."""
    if wave is not None:
        from mmfer.features.voice.units import VoiceUnitExtractor

        voice = ex.wing("audio")
        assert isinstance(voice, VoiceUnitExtractor)
        name = source or "<wave>"
        sr = int(sample_rate or cfg.audio.sample_rate)
        return (lambda: voice.from_wave(wave, sr, name)), name
    if audio is None:
        return None
    unit = Unit(source or str(audio), "audio", "audio", str(audio))
    return (lambda: ex.compute(unit)), audio


def extract_sample(
    cfg: FeatureConfig,
    *,
    modalities: Iterable[str] = MODALITIES,
    video: str | Path | None = None,
    image: str | Path | None = None,
    frames_dir: str | Path | None = None,
    audio: str | Path | None = None,
    transcript: str | None = None,
    frames: np.ndarray | None = None,
    wave: np.ndarray | None = None,
    sample_rate: int | None = None,
    source: str | None = None,
    face_result: list[Any] | None = None,
    face_frames_used: Any = None,
) -> SampleFeatures:
    """Features of one sample, in memory: the extraction path of inference.

    Training extraction (:func:`extract_features`) and this function run the same
    per-unit code (:meth:`mmfer.features.extractors.Extractors.compute` for files, with the
    same silence test and face-detection bookkeeping), so a clip gives the same features whether it
    was cached at training time, predicted by :class:`~mmfer.inference.Predictor`
    or streamed (:mod:`mmfer.inference.stream` passes in-memory ``frames``/``wave``).
    Nothing is written to disk.

    Parameters
    ----------
    cfg
        Feature config of the checkpoint.
    modalities
        Modalities to extract (others are ignored even when their source is given).
    video, image, frames_dir
        Face source (first given wins, as in the sample table).
    audio
        Audio file, or a video whose sound track is decoded.
    transcript
        Words spoken (inline text).
    frames
        ``(T, H, W, 3)`` uint8 RGB frames already in memory (instead of a face file).
    wave
        ``(n_samples,)`` float waveform already in memory (instead of an audio file),
        at ``sample_rate``.
    source
        Name used in messages (default: the file).
    face_result
        If a list is given, the :class:`~mmfer.features.face.extractor.FaceResult` of the face
        unit is appended to it (debug crops, detection boxes).
    face_frames_used
        ``n_frames -> indices | None`` (:meth:`mmfer.fusion.Fuser.face_frames_used`): detect
        and embed only the face frames the model reads (videos and in-memory frames); the
        fused input is the same as with every frame. ``None`` = every sampled frame.

    Returns
    -------
    SampleFeatures
        ``face (T_v, D_v)``, ``audio (T_a, D_a)``, ``text``; a modality that failed is
        ``None`` with the reason in ``issues`` (never raised).
    """
    mods = set(modalities)
    ex = extractors_for(cfg, limit_threads=False)
    sf = SampleFeatures()
    jobs: list[tuple[str, tuple[Callable[[], dict[str, np.ndarray]], Any] | None]] = []
    if "face" in mods:
        files = {"video": video, "frames": frames_dir, "image": image}  # first given wins, as in a table
        jobs.append(("face", _face_job(ex, files, frames, source, face_result, face_frames_used)))
    if "audio" in mods:
        jobs.append(("audio", _audio_job(ex, cfg, audio, wave, sample_rate, source)))
    if "text" in mods and transcript is not None:
        unit = Unit(source or "<text>", "text", "transcript_text", transcript)
        jobs.append(("text", ((lambda: ex.compute(unit)), source)))
    for modality, job in jobs:
        if job is not None:
            _guarded(sf, modality, *job)
    return sf
