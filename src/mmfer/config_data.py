"""Configs of what data goes in: corpora and extra sources, cross-corpus settings, augmentation.

Part of :mod:`mmfer.config` (which re-exports every class here); kept apart so that
neither module grows past the size limit of tests/test_architecture.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mmfer.errors import ConfigError

__all__ = ["AugmentConfig", "CrossSetting", "DataConfig", "SourceConfig"]


@dataclass
class SourceConfig:
    """One more corpus in the sample table (``data.sources``, :mod:`mmfer.data.multi`)."""

    #: Registered corpus name (as ``data.corpus``).
    corpus: str = ""
    #: Its folder (or manifest file); ``synthetic`` needs none.
    root: str | None = None
    #: Loader-specific options (as ``data.options``).
    options: dict[str, Any] = field(default_factory=dict)
    #: Emotions to keep (canonical names); empty keeps all.
    emotions: list[str] = field(default_factory=list)
    #: Keep only the rows whose media file stem is listed in this file (``.jsonl`` with
    #: ``wav_filename``, or ``.txt``/``.csv`` of file names or stems); ``None`` keeps all.
    subset: str | None = None
    #: Name in the ``corpus`` column (default: ``corpus``); lets one loader give two corpora.
    name: str | None = None


@dataclass
class DataConfig:
    """Which corpus to load and from where.

    ``corpus`` is a registered corpus name (``synthetic``, ``savee``,
    ``ravdess``, ``ckplus``, ``cremad``, ``tess``, ``manifest``); ``root`` its
    folder (or the manifest file). ``synthetic`` needs no root: it is generated.
    """

    corpus: str = "synthetic"
    root: str | None = None
    #: Emotions to keep (canonical names); empty keeps all.
    emotions: list[str] = field(default_factory=list)
    #: Loader-specific options, e.g. ``{merge: false}`` (RAVDESS), ``{last_n: 3}`` (CK+).
    options: dict[str, Any] = field(default_factory=dict)
    #: Synthetic corpus only: speakers, clips per speaker and emotion, seed.
    synthetic_speakers: int = 6
    synthetic_clips_per_emotion: int = 4
    synthetic_seed: int = 0
    #: Keep only the main corpus's rows whose media file stem is listed (see SourceConfig.subset).
    subset: str | None = None
    #: More corpora concatenated into the same sample table (ids and speakers then carry a
    #: ``<corpus>:`` prefix so they stay unique across corpora).
    sources: list[SourceConfig] = field(default_factory=list)
    #: Source corpora whose rows are only ever training rows (never tested, never validated).
    extra_train: list[str] = field(default_factory=list)
    #: ``balanced``: inside every fit, rows of smaller training corpora are repeated (integer
    #: factors) so each corpus weighs about the same (:mod:`mmfer.data.balance`).
    corpus_balance: Literal["none", "balanced"] = "none"


@dataclass
class AugmentConfig:
    """Train-time voice augmentation (``features.augment``): extra audio copies of training clips.

    Each audio clip gets ``copies`` augmented waveforms (audiomentations ``Compose``:
    coloured noise at a random SNR, gain, pitch shift, time stretch, each applied with its
    own probability), extracted by the configured ``features.audio`` backend and cached
    as units of their own; only training rows use them
    (:mod:`mmfer.features.voice.augment`, :mod:`mmfer.augmented_rows`). No reverb:
    audiomentations reverberates only through ``RoomSimulator`` (pyroomacoustics) or
    ``ApplyImpulseResponse`` (impulse-response files), neither of which mmfer ships.
    """

    #: Augmented copies per audio clip (0 = off; the copies are extracted only when > 0).
    copies: int = 0
    #: Only clips of these corpora (the table's ``corpus`` column) get copies; empty = all.
    #: E.g. ``[ravdess]`` in a cross-corpus table: CREMA-D clips that are only ever tested
    #: would be augmented for nothing.
    corpora: list[str] = field(default_factory=list)
    #: Seed; with the clip's content and the copy index it fixes every random draw.
    seed: int = 0
    #: Coloured noise (``AddColorNoise``): probability, SNR range (dB) and spectral decay
    #: range (dB/octave: 0 white, -3 pink, -6 brown).
    noise_p: float = 0.8
    noise_min_snr_db: float = 5.0
    noise_max_snr_db: float = 30.0
    noise_min_f_decay: float = -6.0
    noise_max_f_decay: float = 0.0
    #: Gain (``Gain``): probability and the range +-``gain_db``.
    gain_p: float = 0.5
    gain_db: float = 6.0
    #: Pitch shift (``PitchShift``, signalsmith): probability and the range +-``pitch_semitones``.
    pitch_p: float = 0.3
    pitch_semitones: float = 2.0
    #: Time stretch (``TimeStretch``, signalsmith; the length changes): probability and rate range.
    stretch_p: float = 0.3
    stretch_min_rate: float = 0.9
    stretch_max_rate: float = 1.1

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ConfigError(f"features.augment.copies: must be >= 0, got {self.copies}")
        for name in ("noise_p", "gain_p", "pitch_p", "stretch_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"features.augment.{name}: a probability in [0, 1], got {v}")
        ranges = [
            ("noise_min_snr_db", "noise_max_snr_db"),
            ("noise_min_f_decay", "noise_max_f_decay"),
            ("stretch_min_rate", "stretch_max_rate"),
        ]
        for lo, hi in ranges:
            if getattr(self, lo) > getattr(self, hi):
                lo_v, hi_v = getattr(self, lo), getattr(self, hi)
                raise ConfigError(f"features.augment: {lo} ({lo_v}) > {hi} ({hi_v})")
        if self.stretch_min_rate <= 0 or self.gain_db < 0 or self.pitch_semitones < 0:
            raise ConfigError("features.augment: stretch rates must be > 0, gain_db and pitch_semitones >= 0")


@dataclass
class CrossSetting:
    """A named cross-corpus setting of the ``loco`` report (``eval.settings``).

    The model is fitted on the ``train`` corpora's rows of ``emotions`` and tested on the
    ``test`` corpus's rows of ``emotions`` (restricted to the stems listed in
    ``test_subset`` when given), closed set.
    """

    name: str = ""
    train: list[str] = field(default_factory=list)
    test: str = ""
    #: Emotions kept on both sides (empty = all).
    emotions: list[str] = field(default_factory=list)
    #: List file of the test clips (as ``data.subset``), e.g. EmoBox's RAVDESS list.
    test_subset: str | None = None
    #: Published figures shown beside this setting: ``{label: accuracy in %}``.
    published: dict[str, float] = field(default_factory=dict)
