"""The demo: a deterministic, fully SYNTHETIC audio-visual-text emotion corpus.

Kept out of the core :mod:`mmfer.data` package: it generates media rather than
reading a corpus. It is still the registered corpus ``synthetic``
(:data:`mmfer.registry.CORPORA` imports :mod:`mmfer.demo.corpus` the first time
that name is asked for), used by ``make demo``, ``configs/default.yaml`` and the
tests. Modules, each one concern:

- :mod:`~mmfer.demo.identity` - per-speaker look and voice drawn from ``(seed, index)``;
- :mod:`~mmfer.demo.face` - the cartoon face renderer (OpenCV drawing);
- :mod:`~mmfer.demo.voice` - the formant voice synthesiser;
- :mod:`~mmfer.demo.text` - transcripts with emotion cues;
- :mod:`~mmfer.demo.media` - the mp4 (PyAV) and wav writers;
- :mod:`~mmfer.demo.corpus` - :func:`generate_synthetic_corpus` (cached, locked,
  complete-marker last) and the ``synthetic`` loader :func:`load_synthetic`.

Results on this corpus say nothing about real-world emotion recognition.
"""

from __future__ import annotations

from mmfer.demo.corpus import (
    DEFAULT_EMOTIONS,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    STAMP_NAME,
    default_cache_dir,
    generate_synthetic_corpus,
    load_synthetic,
)
from mmfer.demo.face import EXPRESSIONS, Expression, Pose, expression_track, render_face
from mmfer.demo.identity import SpeakerIdentity, speaker_identity
from mmfer.demo.media import video_codec
from mmfer.demo.text import CUES, make_transcript
from mmfer.demo.voice import VOICES, VoiceProfile, synthesize_voice

__all__ = [
    "CUES",
    "DEFAULT_EMOTIONS",
    "EXPRESSIONS",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "STAMP_NAME",
    "VOICES",
    "Expression",
    "Pose",
    "SpeakerIdentity",
    "VoiceProfile",
    "default_cache_dir",
    "expression_track",
    "generate_synthetic_corpus",
    "load_synthetic",
    "make_transcript",
    "render_face",
    "speaker_identity",
    "synthesize_voice",
    "video_codec",
]
