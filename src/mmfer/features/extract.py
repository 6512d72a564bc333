"""Per-sample feature extraction over a sample table, cached and parallel.

Every (sample, modality) *unit* is keyed by :class:`FeatureCache` (extractor
config + input content). Cached units are read back; the rest are computed
in-process (``workers=1``), in a local process pool (``workers>1``) or on a
dask.distributed cluster (``backend="dask"``). Results are written to the cache
by the calling process as each unit completes, so a killed run resumes where
it stopped and the cache never needs to be reachable from remote workers.

A bad file masks only its own modality (``SampleFeatures.issues``) unless
``FeatureConfig.strict`` is set, in which case the first failure is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfer.config import MODALITIES, FeatureConfig
from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.features.cache import FeatureCache, canonical_json
from mmfer.features.text import CLEAN_VERSION, clean_text, read_transcript, uses_embedding
from mmfer.io import LFS_PROBLEM, is_lfs_pointer
from mmfer.progress import Heartbeat

log = logging.getLogger(__name__)

#: Masking warnings logged one by one before the rest go to DEBUG (a summary line follows).
MAX_WARNINGS = 10

_FACE_SOURCES: tuple[str, ...] = ("video", "frames", "image")


@dataclass
class SampleFeatures:
    """Features of one sample; a missing modality is ``None`` with its reason in ``issues``.

    Attributes
    ----------
    face
        ``(T_v, D_v)`` float32 per-frame backbone features (``T_v = 1`` for a still image).
    audio
        ``(T_a, D_a)`` float32 MFCC frames (+ deltas).
    text
        Cleaned transcript (eq. 2); TF-IDF is fitted later, per fold. ``""`` when
        cleaning leaves no word but the raw transcript has a sentence embedding.
    issues
        Modality -> why it is missing/masked (only for failures, not for absent columns).
    text_emb
        ``(D_t,)`` float32 sentence embedding of the raw transcript (only when
        ``TextConfig.representation`` is ``embedding`` or ``both``).
    """

    face: np.ndarray | None = None
    audio: np.ndarray | None = None
    text: str | None = None
    issues: dict[str, str] = field(default_factory=dict)
    text_emb: np.ndarray | None = None
    #: Modality -> remark about a modality that *is* present, e.g. the face-detection
    #: outcome ``"face found in 14/16 frames"`` (``issues`` holds only masked modalities).
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """One (sample, modality) extraction job.

    ``kind`` is the input form: ``video``/``frames``/``image`` (face), ``audio``,
    ``transcript_file``, ``transcript_text`` or ``asr`` (text transcribed from the
    audio/video file ``source``); ``source`` is a path or the inline text.
    """

    sample_id: str
    modality: str
    kind: str
    source: str
    key: str = ""

    @property
    def path(self) -> str | None:
        """The input file/folder, ``None`` for inline text."""
        return None if self.kind == "transcript_text" else self.source


@dataclass
class _Outcome:
    """What a worker sends back for one unit (picklable, no exception objects)."""

    key: str
    arrays: dict[str, np.ndarray] | None = None
    error_kind: str | None = None  # "missing" | "failed" | "unexpected"
    problem: str = ""
    seconds: float = 0.0


# --------------------------------------------------------------------------- extractors


class _Extractors:
    """Extractors of one :class:`FeatureConfig`, built lazily and once per process."""

    def __init__(self, cfg: FeatureConfig, *, limit_threads: bool = False) -> None:
        self.cfg = cfg
        self.limit_threads = limit_threads
        self._face: Any = None
        self._audio: Any = None
        self._sentence: Any = None
        self._asr: Any = None
        # raw transcript -> (D_t,) embedding, filled in batches by prefetch_text()
        self._embedded: dict[str, np.ndarray] = {}

    def face(self) -> Any:
        if self._face is None:
            # torch threads were sized by mmfer.runtime (CLI start, or the pool initialiser)
            from mmfer.features.face import FaceFeatureExtractor

            self._face = FaceFeatureExtractor(self.cfg.face)
        return self._face

    def audio(self) -> Any:
        if self._audio is None:
            from mmfer.features.audio import create_audio_extractor

            # mfcc | whisper | egemaps (AudioConfig.extractor, resolved by FeatureConfig.profile);
            # a worker's Whisper gets the worker's share of the cores (mmfer.runtime)
            self._audio = create_audio_extractor(self.cfg.audio, threads=_worker_threads(self.limit_threads))
        return self._audio

    def sentence(self) -> Any:
        if self._sentence is None:
            from mmfer.features.sentence import SentenceEncoder

            t = self.cfg.text
            self._sentence = SentenceEncoder(
                t.embedding_model, max_tokens=t.embedding_max_tokens, layers=t.embedding_layers
            )
        return self._sentence

    def asr(self) -> Any:
        if self._asr is None:
            from mmfer.features.asr import AsrTranscriber

            self._asr = AsrTranscriber(self.cfg.text, threads=_worker_threads(self.limit_threads))
        return self._asr

    def config_for(self, modality: str) -> dict[str, Any]:
        """Cache-key config of one modality's extractor (``text:asr``: text transcribed from audio)."""
        if modality == "face":
            return {"modality": "face", **self.face().config_dict()}
        if modality == "audio":
            return {"modality": "audio", **self.audio().config_dict()}
        t = self.cfg.text
        out: dict[str, Any] = {
            "modality": "text",
            "extractor": "clean_text",
            "version": CLEAN_VERSION,
            "lowercase": t.lowercase,
            "remove_stop_words": t.remove_stop_words,
        }
        if uses_embedding(t):
            out["embedding"] = self.sentence().config_dict()
        if modality == "text:asr":
            out["asr"] = self.asr().config_dict()
        return out

    def prefetch_text(self, units: Sequence[Unit]) -> None:
        """Embed the inline transcripts of ``units`` in batches (much faster than one by one).

        :meth:`compute` then takes each embedding from the memo. Failures are left
        for :meth:`compute` to report per unit.
        """
        if not uses_embedding(self.cfg.text):
            return
        raw = list(dict.fromkeys(u.source for u in units if u.kind == "transcript_text" and u.source.strip()))
        raw = [r for r in raw if r not in self._embedded]
        if not raw:
            return
        try:
            vectors = self.sentence().encode(raw)  # (N, D_t)
        except Exception as e:
            log.debug("batched sentence embedding failed (%s); embedding one by one", e)
            return
        self._embedded.update(zip(raw, vectors, strict=True))

    def _text_arrays(self, raw: str, unit: Unit) -> dict[str, np.ndarray]:
        """Cleaned transcript (+ embedding of the raw one) of one text unit."""
        t = self.cfg.text
        cleaned = clean_text(raw, lowercase=t.lowercase, remove_stop_words=t.remove_stop_words)
        arrays = {"text": np.asarray(cleaned)}  # 0-d unicode array: stored without pickle
        if uses_embedding(t):
            # the raw words: punctuation and stop words ("no", "not") matter to a sentence model
            emb = self._embedded.pop(raw, None)
            arrays["text_emb"] = emb if emb is not None else self.sentence().encode([raw])[0]  # (D_t,)
        elif not cleaned:
            raise ModalityMissing(
                unit.path, "transcript has no words left after removing punctuation and stop words"
            )
        return arrays

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """Extract one unit; raises :class:`FeatureError`/:class:`ModalityMissing` on bad input."""
        if unit.modality == "face":
            ext = self.face()
            return _face_arrays(_run_face(ext, unit.kind, unit.source), unit.source, ext)
        if unit.modality == "audio":
            return {"audio": self.audio().extract(unit.source)}  # (T_a, D_a)
        if unit.kind == "asr":
            raw = self.asr().transcribe(unit.source)  # ModalityMissing when no words are heard
            return {**self._text_arrays(raw, unit), "asr_text": np.asarray(raw)}
        raw = read_transcript(unit.source) if unit.kind == "transcript_file" else unit.source
        return self._text_arrays(raw, unit)


_FACE_METHODS = {"video": "video", "frames": "frames_dir", "image": "image"}


def _run_face(ext: Any, kind: str, source: str | Path, frames_used: Any = None) -> Any:
    """``ext.run_<kind>(source)`` (features + detection bookkeeping).

    An extractor with only ``extract_<kind>`` (a stand-in in tests, a plug-in backbone)
    gets its features wrapped in a result without detection information.
    ``frames_used`` (videos only) limits detection + CNN to the frames a model reads.
    """
    run = getattr(ext, f"run_{_FACE_METHODS[kind]}", None)
    if run is not None:
        if frames_used is not None and kind == "video":
            return run(source, frames_used=frames_used)
        return run(source)
    from types import SimpleNamespace

    feats = np.asarray(getattr(ext, f"extract_{_FACE_METHODS[kind]}")(source), dtype=np.float32)  # (T, D)
    return SimpleNamespace(
        features=feats, boxes=[], no_face=0, frames=int(feats.shape[0]) if feats.ndim else 0
    )


def _face_arrays(res: Any, source: str | Path | None, ext: Any) -> dict[str, np.ndarray]:
    """Arrays of one face unit from a :class:`~mmfer.features.face.FaceResult`.

    The detection outcome travels with the features (``face_note``, a 0-d string
    array, cached like them) so that it reaches ``SampleFeatures.notes``, not only
    a log line.
    """
    feats = np.asarray(res.features, dtype=np.float32)  # (T_v, D_v)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ModalityMissing(source, f"no face frames extracted (shape {feats.shape})")
    out = {"face": feats}
    if getattr(ext, "detector", None) is not None and res.boxes:
        found = res.frames - res.no_face
        sampled = getattr(res, "sampled", None)
        out["face_note"] = np.asarray(
            f"face found in {found}/{res.frames} frames"
            + (f" the model reads (of {sampled} sampled)" if sampled is not None else "")
            + (" (fallback crop used for the others)" if res.no_face else "")
        )
    return out


def check_silence(wave: np.ndarray, sample_rate: int, silence_dbfs: float | None, source: Any) -> None:
    """The silence test of every audio path (files at training, windows when streaming).

    Same measure as :func:`mmfer.features.audio.load_audio`: the loud-frame level
    (:func:`~mmfer.features.audio.loud_level_dbfs`), not the whole-window RMS.

    Raises
    ------
    ModalityMissing
        ``wave`` is empty or its loud-frame level is below ``silence_dbfs``.
    """
    from mmfer.features.audio import loud_level_dbfs

    if wave.size == 0:
        raise ModalityMissing(source, "no audio samples (the track ends before this window)")
    if silence_dbfs is not None:
        level = loud_level_dbfs(wave, sample_rate)
        if level < silence_dbfs:
            raise ModalityMissing(source, f"silent audio ({level:.1f} dBFS)")


_PROCESS_EXTRACTORS: dict[str, _Extractors] = {}


def _extractors_for(cfg: FeatureConfig, *, limit_threads: bool) -> _Extractors:
    """Per-process memo, so a pool/dask worker builds its extractors (e.g. the CNN) once."""
    k = canonical_json(dataclasses.asdict(cfg)) + f"|{limit_threads}"
    ex = _PROCESS_EXTRACTORS.get(k)
    if ex is None:
        ex = _PROCESS_EXTRACTORS[k] = _Extractors(cfg, limit_threads=limit_threads)
    return ex


def _run_unit(unit: Unit, ex: _Extractors) -> _Outcome:
    """Compute one unit, turning every failure into a picklable :class:`_Outcome`."""
    t0 = time.perf_counter()
    try:
        arrays = ex.compute(unit)
        return _Outcome(unit.key, arrays=arrays, seconds=time.perf_counter() - t0)
    except FeatureError as e:
        kind = "missing" if isinstance(e, ModalityMissing) else "failed"
        return _Outcome(unit.key, error_kind=kind, problem=e.problem, seconds=time.perf_counter() - t0)
    except Exception as e:
        # Third-party decoders raise all sorts on odd files; mask the modality but do not
        # cache it (it may be a transient failure or a bug worth fixing and re-running).
        tb = traceback.format_exc(limit=4)
        log.debug("unexpected error on %s:\n%s", unit.source, tb)
        return _Outcome(
            unit.key,
            error_kind="unexpected",
            problem=f"unexpected {type(e).__name__}: {e}",
            seconds=time.perf_counter() - t0,
        )


def _worker_threads(in_worker: bool) -> int | None:
    """Threads of a worker process (its share, :func:`mmfer.runtime.worker_plan`), else ``None``
    (the extractor follows the process's plan)."""
    if not in_worker:
        return None
    from mmfer.runtime import threads

    return threads()


def _pool_init(cfg: FeatureConfig, n_threads: int = 1) -> None:
    # N workers x T threads <= free cores: the MFCC filterbank (OpenBLAS), torch and
    # CTranslate2 would otherwise each start one thread per core in every worker.
    from mmfer.runtime import configure_worker

    configure_worker(n_threads)
    _extractors_for(cfg, limit_threads=True)


def _pool_unit(unit: Unit, cfg: FeatureConfig) -> _Outcome:
    return _run_unit(unit, _extractors_for(cfg, limit_threads=True))


def _dask_unit(unit: Unit, cfg: FeatureConfig) -> _Outcome:
    from mmfer import runtime

    if runtime.current().workers != 1 or runtime.current().threads != 1:
        runtime.configure_worker(1)  # dask runs one task thread per worker process (threads_per_worker=1)
    return _run_unit(unit, _extractors_for(cfg, limit_threads=True))


# --------------------------------------------------------------------------- table -> units


def _cell(row: pd.Series, col: str) -> str | None:
    """A table cell as a non-empty string, or ``None`` (missing column, None, NaN, "")."""
    if col not in row.index:
        return None
    v = row[col]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v)
    return s if s.strip() else None


def _looks_like_transcript_file(value: str) -> bool:
    # A transcript cell holds the words themselves unless it is a path to a .txt file.
    return value.lower().endswith(".txt") and not any(ch.isspace() for ch in value.strip())


def plan_units(table: pd.DataFrame, modalities: Sequence[str], *, asr: bool = False) -> list[Unit]:
    """The extraction units of a sample table (keys not yet filled in).

    Face comes from ``video``, else ``frames``, else ``image``; audio from
    ``audio`` (which may be a video whose track is decoded); text from
    ``transcript`` (inline text, or a path to a UTF-8 ``.txt`` file), or, with
    ``asr`` and no transcript, transcribed from ``audio``, else ``video``.
    """
    units: list[Unit] = []
    for _, row in table.iterrows():
        sid = str(row["id"])
        if "face" in modalities:
            for col in _FACE_SOURCES:
                src = _cell(row, col)
                if src is not None:
                    units.append(Unit(sid, "face", col, src))
                    break
        if "audio" in modalities:
            src = _cell(row, "audio")
            if src is not None:
                units.append(Unit(sid, "audio", "audio", src))
        if "text" in modalities:
            src = _cell(row, "transcript")
            if src is not None:
                kind = "transcript_file" if _looks_like_transcript_file(src) else "transcript_text"
                units.append(Unit(sid, "text", kind, src))
            elif asr:
                speech = _cell(row, "audio") or _cell(row, "video")
                if speech is not None:
                    units.append(Unit(sid, "text", "asr", speech))
    return units


# --------------------------------------------------------------------------- runner


def _keyed(
    units: list[Unit], cache: FeatureCache, ex: _Extractors
) -> Iterator[tuple[Unit, FeatureError | None]]:
    """Fill in each unit's cache key; yield ``(unit, error)`` with the error if the input is unreadable."""
    configs: dict[str, dict[str, Any]] = {}
    for u in units:
        which = "text:asr" if u.kind == "asr" else u.modality
        if which not in configs:
            configs[which] = ex.config_for(which)
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


def _iter_local(todo: list[Unit], cfg: FeatureConfig, ex: _Extractors) -> Iterator[_Outcome]:
    from mmfer.runtime import worker_plan

    # features.workers is an upper bound: on a busy machine fewer workers run (mmfer.runtime)
    n_workers, n_threads = worker_plan(min(cfg.workers, len(todo)))
    if n_workers <= 1:
        for u in todo:
            yield _run_unit(u, ex)
        return
    # Default start method (fork on Linux): workers inherit imported modules and numba's
    # compiled MFCC kernels instead of re-importing and re-loading them.
    with ProcessPoolExecutor(
        max_workers=n_workers, initializer=_pool_init, initargs=(cfg, n_threads)
    ) as pool:
        futures: list[Future[_Outcome]] = [pool.submit(_pool_unit, u, cfg) for u in todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:  # strict-mode raise or Ctrl-C: drop what has not started
                fut.cancel()


def _iter_dask(todo: list[Unit], cfg: FeatureConfig) -> Iterator[_Outcome]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_as_completed
    except ImportError as e:  # pragma: no cover - dask is an optional extra
        raise ConfigError(
            f"features.backend=dask needs dask[distributed] (pip install 'mmfer[dist]'): {e}"
        ) from None
    cluster = None
    if cfg.dask_address:
        client = Client(cfg.dask_address)
    else:
        cluster = LocalCluster(
            n_workers=max(1, cfg.workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        futures = client.map(_dask_unit, todo, cfg=cfg, pure=False)
        try:
            for fut in dask_as_completed(futures):
                yield fut.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _error_from(outcome: _Outcome, unit: Unit) -> FeatureError:
    cls = ModalityMissing if outcome.error_kind == "missing" else FeatureError
    return cls(unit.path, outcome.problem)


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
        ``image``, ``audio``, ``transcript`` columns (absent cells are skipped).
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
        ``(T_a, D_a)`` float32, ``text`` cleaned string.

    Raises
    ------
    FeatureError
        ``cfg.strict`` and some input is bad (the first failure, naming the file).
    ConfigError
        Unknown modality or backend.
    """
    mods = tuple(dict.fromkeys(modalities))
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"unknown modality {unknown[0]!r}; valid: {', '.join(MODALITIES)}")
    if cfg.backend not in ("local", "dask"):
        raise ConfigError(f"features.backend: {cfg.backend!r} is not one of ['local', 'dask']")
    if "id" not in table.columns:
        raise ConfigError("sample table has no 'id' column")

    cache = FeatureCache(cache_dir)
    ex = _extractors_for(cfg, limit_threads=False)
    results: dict[str, SampleFeatures] = {str(sid): SampleFeatures() for sid in table["id"]}

    n_warned = 0

    def record_error(unit: Unit, err: FeatureError, *, cached: bool = False) -> None:
        nonlocal n_warned
        if cfg.strict:
            raise err
        msg = str(err)
        results[unit.sample_id].issues[unit.modality] = msg
        # A whole corpus of LFS pointers would otherwise flood the log; the summary counts them all.
        n_warned += 1
        level = logging.WARNING if n_warned <= MAX_WARNINGS else logging.DEBUG
        log.log(level, "sample %s: %s masked%s: %s", unit.sample_id, unit.modality, " (cached)" * cached, msg)

    def record_arrays(unit: Unit, arrays: dict[str, np.ndarray]) -> None:
        _record_arrays(results[unit.sample_id], unit.modality, arrays)

    # 1. key every unit and read what is cached.
    todo: dict[str, list[Unit]] = {}  # key -> units sharing that input (duplicate files computed once)
    for unit, err in _keyed(plan_units(table, mods, asr=cfg.text.asr), cache, ex):
        if err is not None:
            record_error(unit, err)
            continue
        try:
            arrays = cache.get(unit.key)
        except FeatureError as cached_err:
            # Re-create with this unit's path: the entry may have been made from a renamed copy.
            cls = type(cached_err)
            record_error(unit, cls(unit.path, cached_err.problem), cached=True)
            continue
        if arrays is None:
            todo.setdefault(unit.key, []).append(unit)
        else:
            record_arrays(unit, arrays)

    if not todo:
        _log_masked(results)
        return results
    # 2. compute the rest; text is trivial, so never ship it to workers.
    # (ASR is not trivial: it goes to the workers with the media.)
    text_units = [us[0] for us in todo.values() if us[0].modality == "text" and us[0].kind != "asr"]
    heavy_units = [us[0] for us in todo.values() if us[0].modality != "text" or us[0].kind == "asr"]

    from tqdm.auto import tqdm

    def outcomes() -> Iterator[_Outcome]:
        ex.prefetch_text(text_units)  # sentence embeddings in batches, when asked for
        for u in text_units:
            yield _run_unit(u, ex)
        if not heavy_units:
            return
        if cfg.backend == "dask":
            yield from _iter_dask(heavy_units, cfg)
        else:
            yield from _iter_local(heavy_units, cfg, ex)

    # disable=None: tqdm turns itself off when stderr is not a terminal (logs, CI);
    # the heartbeat then writes a log line at most every 30 s instead.
    beat = Heartbeat(len(todo), "features", every_s=30.0, enabled=None if progress else False)
    with tqdm(total=len(todo), desc="features", unit="file", disable=None if progress else True) as bar:
        for out in outcomes():
            units = todo[out.key]
            first = units[0]
            meta = {
                "modality": first.modality,
                "kind": first.kind,
                "source": first.path or "<inline text>",
                "sample_id": first.sample_id,
                "seconds": round(out.seconds, 4),
            }
            if out.arrays is not None:
                cache.put(out.key, out.arrays, meta)
                for u in units:
                    record_arrays(u, out.arrays)
            else:
                err = _error_from(out, first)
                if out.error_kind != "unexpected":
                    cache.put_error(out.key, err, meta)
                for u in units:
                    record_error(u, _error_from(out, u))
            bar.update(1)
            beat.tick(file=Path(first.path).name if first.path else None)
    _log_masked(results)
    return results


def _record_arrays(sf: SampleFeatures, modality: str, arrays: dict[str, np.ndarray]) -> None:
    """Put one unit's arrays (fresh or cached) into its :class:`SampleFeatures`."""
    if modality == "text":
        sf.text = str(arrays["text"])
        if "text_emb" in arrays:
            sf.text_emb = np.asarray(arrays["text_emb"], dtype=np.float32)  # (D_t,)
    else:
        setattr(sf, modality, np.asarray(arrays[modality], dtype=np.float32))
        if f"{modality}_note" in arrays:
            sf.notes[modality] = str(arrays[f"{modality}_note"])


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
    per-unit code (``_Extractors.compute`` for files, with the same silence test
    and face-detection bookkeeping), so a clip gives the same features whether it
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
        If a list is given, the :class:`~mmfer.features.face.FaceResult` of the face
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
    ex = _extractors_for(cfg, limit_threads=False)
    sf = SampleFeatures()

    def run(modality: str, fn: Any, src: Any) -> None:
        try:
            _record_arrays(sf, modality, fn())
        except FeatureError as e:
            sf.issues[modality] = str(FeatureError(e.path if e.path is not None else src, e.problem))
        except Exception as e:  # third-party decoders raise all sorts on odd files
            log.debug("unexpected error on %s", src, exc_info=True)
            sf.issues[modality] = f"{src}: unexpected {type(e).__name__}: {e}"

    if "face" in mods:
        given = (("video", video), ("frames", frames_dir), ("image", image))
        face_src = next(((k, v) for k, v in given if v is not None), None)
        if frames is not None:
            name = source or "<frames>"

            def face_from_frames() -> dict[str, np.ndarray]:
                face = ex.face()
                if face_frames_used is not None and hasattr(face, "run_frames"):
                    res = face.run_frames(frames, name, frames_used=face_frames_used)
                else:
                    res = face.run_frames(frames, name)
                if face_result is not None:
                    face_result.append(res)
                return _face_arrays(res, name, ex.face())

            run("face", face_from_frames, name)
        elif face_src is not None:
            kind, path = face_src

            def face_from_file() -> dict[str, np.ndarray]:
                face = ex.face()
                res = _run_face(face, kind, path, face_frames_used)
                if face_result is not None:
                    face_result.append(res)
                return _face_arrays(res, path, face)

            run("face", face_from_file, path)
    if "audio" in mods:
        if wave is not None:
            name = source or "<wave>"
            sr = int(sample_rate or cfg.audio.sample_rate)

            def audio_from_wave() -> dict[str, np.ndarray]:
                w = np.asarray(wave, dtype=np.float32)  # (n_samples,)
                check_silence(w, sr, cfg.audio.silence_dbfs, name)
                return {"audio": ex.audio().transform_wave(w, sr)}  # (T_a, D_a)

            run("audio", audio_from_wave, name)
        elif audio is not None:
            unit = Unit(source or str(audio), "audio", "audio", str(audio))
            run("audio", lambda: ex.compute(unit), audio)
    if "text" in mods and transcript is not None:
        unit = Unit(source or "<text>", "text", "transcript_text", transcript)
        run("text", lambda: ex.compute(unit), source)
    return sf


def masked_samples(features: dict[str, SampleFeatures]) -> pd.DataFrame:
    """Every masked (sample, modality) with its reason, for summaries and the report.

    A sample is ``unusable`` when no modality is left at all (every modality it
    had failed: an all-silent clip of an audio-only corpus, an LFS pointer, an
    unreadable file); such a sample carries no evidence, so how it is scored
    (excluded, or counted as an error) must be stated wherever results are.

    Parameters
    ----------
    features
        Output of :func:`extract_features`, keyed by sample id.

    Returns
    -------
    pandas.DataFrame
        Shape ``(n_masked_units, 4)``: columns ``id``, ``modality``, ``reason``
        (the message, naming the file), ``unusable`` (bool: the sample has no
        modality left); sorted by id then modality. Empty (same columns) if
        nothing was masked.
    """
    rows = []
    for sid, sf in features.items():
        left = sf.face is not None or sf.audio is not None or sf.text is not None
        for modality, reason in sorted(sf.issues.items()):
            rows.append({"id": sid, "modality": modality, "reason": reason, "unusable": not left})
    df = pd.DataFrame(rows, columns=["id", "modality", "reason", "unusable"])
    return df.sort_values(["id", "modality"], kind="stable").reset_index(drop=True)


def unusable_samples(features: dict[str, SampleFeatures]) -> list[str]:
    """Ids of samples with at least one masked modality and none left (see :func:`masked_samples`)."""
    masked = masked_samples(features)
    return sorted(set(masked.loc[masked["unusable"], "id"]))


def _short_reason(reason: str) -> str:
    """The problem part of a ``"<path>: <problem>"`` message, for grouping."""
    problem = reason.split(": ", 1)[1] if ": " in reason else reason
    return problem.split(" (")[0][:60]


def _log_masked(results: dict[str, SampleFeatures]) -> None:
    """One warning line: how many units were masked, why, and which samples have nothing left."""
    masked = masked_samples(results)
    if masked.empty:
        return
    why = masked.groupby(masked["modality"] + ": " + masked["reason"].map(_short_reason)).size()
    reasons = ", ".join(f"{k} x{n}" for k, n in why.sort_values(ascending=False).items())
    unusable = unusable_samples(results)
    shown = ", ".join(unusable[:10]) + (", ..." if len(unusable) > 10 else "")
    log.warning(
        "features: %d modality(ies) of %d sample(s) masked (%s); %d sample(s) have no modality left%s",
        len(masked),
        masked["id"].nunique(),
        reasons,
        len(unusable),
        f": {shown}" if unusable else "",
    )


def summarise_issues(features: dict[str, SampleFeatures]) -> dict[str, int]:
    """Number of samples whose modality was masked, per modality (plus ``samples`` affected).

    Returns
    -------
    dict[str, int]
        ``{"face": n, "audio": n, "text": n, "samples": n_with_any_issue}``.
    """
    counts = dict.fromkeys(MODALITIES, 0)
    n_samples = 0
    for sf in features.values():
        if sf.issues:
            n_samples += 1
        for m in sf.issues:
            counts[m] = counts.get(m, 0) + 1
    counts["samples"] = n_samples
    return counts
