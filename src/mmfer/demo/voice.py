"""The formant voice synthesiser: harmonic syllables at a speaker's F0, shaped by the emotion."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mmfer.demo.blend import Blendable
from mmfer.demo.identity import SpeakerIdentity


@dataclass(frozen=True)
class VoiceProfile(Blendable):
    """How an emotion changes the voice (at full intensity).

    ``pitch`` multiplies the speaker's F0; ``range_st`` is the spread of
    syllable accents in semitones; ``gain_db`` the loudness change; ``rate``
    syllables per second; ``tremor`` the depth of a 5-7 Hz F0 tremor
    (fraction); ``breath`` the aspiration-noise ratio; ``tilt`` the change of
    harmonic roll-off (< 0 brighter, > 0 duller); ``contour`` the pitch
    movement over the utterance in semitones (> 0 rising).
    """

    pitch: float = 1.0
    range_st: float = 2.0
    gain_db: float = 0.0
    rate: float = 4.0
    tremor: float = 0.0
    breath: float = 0.05
    tilt: float = 0.0
    contour: float = -2.0


#: Voice of each canonical emotion (after the vocal-affect literature, exaggerated).
VOICES: dict[str, VoiceProfile] = {
    "neutral": VoiceProfile(),
    "calm": VoiceProfile(pitch=0.95, range_st=1.5, gain_db=-3.0, rate=3.3, breath=0.08, tilt=0.2),
    "happy": VoiceProfile(pitch=1.18, range_st=5.0, gain_db=3.0, rate=4.6, tilt=-0.15, contour=1.0),
    "sad": VoiceProfile(
        pitch=0.86, range_st=0.8, gain_db=-8.0, rate=2.8, breath=0.15, tilt=0.45, contour=-3.0
    ),
    "angry": VoiceProfile(pitch=1.15, range_st=4.0, gain_db=8.0, rate=5.0, tilt=-0.45, contour=-3.0),
    "fearful": VoiceProfile(
        pitch=1.3, range_st=3.5, gain_db=-1.0, rate=5.6, tremor=0.035, breath=0.18, contour=2.0
    ),
    "disgust": VoiceProfile(
        pitch=0.9, range_st=2.5, gain_db=-1.0, rate=3.0, breath=0.1, tilt=0.2, contour=-4.0
    ),
    "surprised": VoiceProfile(pitch=1.25, range_st=6.0, gain_db=3.0, rate=4.0, tilt=-0.1, contour=6.0),
    "contempt": VoiceProfile(pitch=0.92, range_st=1.5, gain_db=-2.0, rate=3.4, tilt=0.1, contour=-3.0),
}

# (F1, F2, F3) in Hz of five vowels for an adult male-sized vocal tract.
_VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (300.0, 2250.0, 3000.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (320.0, 900.0, 2240.0),  # u
)
_FORMANT_BW = (90.0, 120.0, 180.0)
_FORMANT_GAIN = (1.0, 0.55, 0.3)


@functools.lru_cache(maxsize=256)
def _bandpass(lo: float, hi: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import butter

    nyq = sample_rate / 2
    b, a = butter(2, [max(lo, 20.0) / nyq, min(hi, 0.95 * nyq) / nyq], btype="band")
    return b, a


def synthesize_voice(
    identity: SpeakerIdentity,
    emotion: str,
    *,
    seconds: float,
    sample_rate: int,
    intensity: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise one utterance of harmonic syllables separated by pauses.

    Parameters
    ----------
    identity
        Speaker (base F0, formant scale, rate, loudness, tilt).
    emotion
        Canonical emotion; its :data:`VOICES` profile is scaled by
        ``intensity * identity.expressiveness``.
    seconds, sample_rate
        Length and rate of the output.
    intensity
        Clip intensity, 0-1 (shared with the face).
    rng
        Random stream of this clip.

    Returns
    -------
    audio : numpy.ndarray
        ``(n,)`` float32 in [-1, 1], ``n = round(seconds * sample_rate)``.
    envelope : numpy.ndarray
        ``(n,)`` float32 voicing envelope in [0, 1] (drives the mouth).
    """
    n = round(seconds * sample_rate)
    k = float(np.clip(intensity * identity.expressiveness, 0.0, 1.2))
    voice = VOICES["neutral"].blend(VOICES[emotion], k)  # neutral -> emotion by the clip's strength
    # The steps draw from ``rng`` in this order; reordering them changes every clip.
    spans = _syllables(voice.rate * identity.rate * rng.uniform(0.9, 1.1), n, sample_rate, rng)
    f0 = _f0_contour(identity, voice, spans, n, seconds, sample_rate, rng)
    source = _harmonic_source(f0, 1.0 + voice.tilt + identity.tilt, voice.breath, sample_rate, rng)
    # loud -> wider jaw -> higher F1
    formant_scale = identity.formant_scale * (1 + 0.12 * max(0.0, voice.gain_db) / 8)
    voiced, envelope = _articulate(source, spans, formant_scale, sample_rate, rng)
    target_db = -24.0 + voice.gain_db + identity.loudness_db
    return _loudness(voiced, envelope, target_db, rng), envelope.astype(np.float32)


def _syllables(rate: float, n: int, sample_rate: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Syllable layout: ``(start, stop, vowel)`` voiced spans in samples, separated by short
    pauses, longer at word ends, at ``rate`` syllables per second."""
    period = 1.0 / rate
    spans: list[tuple[int, int, int]] = []  # (start, stop, vowel) in samples
    pos = rng.uniform(0.04, 0.18) * sample_rate
    end = n - 0.08 * sample_rate
    while True:
        dur = period * rng.uniform(0.55, 0.85) * sample_rate
        if pos + dur > end:
            break
        spans.append((int(pos), int(pos + dur), int(rng.integers(len(_VOWELS)))))
        gap = period * rng.uniform(0.15, 0.45) + (rng.random() < 0.25) * rng.uniform(0.06, 0.15)
        pos += dur + gap * sample_rate
    if not spans:  # very short clips: one syllable filling the middle
        spans.append((int(0.1 * n), int(0.9 * n), int(rng.integers(len(_VOWELS)))))
    return spans


def _f0_contour(
    identity: SpeakerIdentity,
    voice: VoiceProfile,
    spans: list[tuple[int, int, int]],
    n: int,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n,)`` F0 in Hz: emotion level, accents per syllable, declination/rise, tremor."""
    t = np.arange(n) / sample_rate  # (n,)
    f0_level = identity.f0 * voice.pitch * 2 ** (rng.normal(0.0, 0.6) / 12)
    centres = np.array([(s + e) / 2 for s, e, _ in spans]) / sample_rate
    accents = rng.normal(0.0, voice.range_st / 2, len(spans))
    semitones = np.interp(t, centres, accents) + voice.contour * t / seconds
    tremor = voice.tremor * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * t)
    wobble = np.convolve(rng.normal(0.0, 0.004, n), np.ones(200) / 200**0.5, mode="same")
    f0 = f0_level * 2 ** (semitones / 12) * (1 + tremor + wobble)  # (n,) Hz
    return np.clip(f0, 50.0, 0.2 * sample_rate)


def _harmonic_source(
    f0: np.ndarray, rolloff: float, breath: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n,)`` harmonic source at ``f0`` with a ``1 / h**rolloff`` spectrum, plus aspiration noise."""
    # Phase accumulates in float64, then wraps to one period so float32 suffices for the
    # (H, n) harmonic table, which is the costliest step of the whole generator.
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sample_rate, 2 * np.pi).astype(np.float32)  # (n,)
    # The highest formant filter ends near 4 kHz, so harmonics above it would be filtered away.
    n_harm = max(1, int(min(0.45 * sample_rate, 4500.0) / f0.max()))
    harm = np.arange(1, n_harm + 1, dtype=np.float32)[:, None]  # (H, 1)
    weights = (1.0 / harm**rolloff).astype(np.float32)  # (H, 1)
    source = (weights * np.sin(harm * phase[None, :])).sum(axis=0, dtype=np.float64)  # (n,)
    source += breath * rng.normal(0.0, 1.0, f0.size) * np.abs(source).mean()
    return source


def _articulate(
    source: np.ndarray,
    spans: list[tuple[int, int, int]],
    formant_scale: float,
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Vowels: the source through each span's vowel formant filter bank, with a syllable
    envelope and a fricative onset. Returns ``(voiced, envelope)``, both ``(n,)`` float64."""
    from scipy.signal import lfilter

    n = source.size
    voiced = np.zeros(n)
    envelope = np.zeros(n)
    filtered: dict[int, np.ndarray] = {}
    for start, stop, v in spans:
        if v not in filtered:
            y = np.zeros(n)
            for f, bw, g in zip(_VOWELS[v], _FORMANT_BW, _FORMANT_GAIN, strict=True):
                b, a = _bandpass(f * formant_scale - bw, f * formant_scale + bw, sample_rate)
                y += g * lfilter(b, a, source)
            filtered[v] = y
        length = stop - start
        att, dec = min(length // 3, int(0.02 * sample_rate)), min(length // 2, int(0.05 * sample_rate))
        env = np.ones(length)
        env[:att] = np.sin(np.linspace(0, np.pi / 2, att)) ** 2
        env[length - dec :] = np.cos(np.linspace(0, np.pi / 2, dec)) ** 2
        env *= rng.uniform(0.7, 1.0)  # syllable stress
        voiced[start:stop] += filtered[v][start:stop] * env
        envelope[start:stop] = np.maximum(envelope[start:stop], env)
        # A short fricative burst before most syllables (consonant onset).
        burst = int(rng.uniform(0.015, 0.04) * sample_rate)
        if start > burst and rng.random() < 0.7:
            b, a = _bandpass(2500.0, 6500.0, sample_rate)
            noise = lfilter(b, a, rng.normal(0.0, 1.0, burst)) * np.hanning(burst)
            voiced[start - burst : start] += 0.25 * noise * np.abs(filtered[v][start:stop]).mean() * 4
    return voiced, envelope


def _loudness(
    voiced: np.ndarray, envelope: np.ndarray, target_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Set the RMS of the voiced part to about ``target_db`` dBFS, add a faint noise floor, soft-clip.

    Returns ``(n,)`` float32 in [-1, 1].
    """
    n = voiced.size
    active = envelope > 0.5
    rms = np.sqrt(np.mean(voiced[active] ** 2)) if active.any() else np.sqrt(np.mean(voiced**2)) + 1e-12
    target_db = target_db + rng.normal(0.0, 1.0)
    audio = voiced * (10 ** (target_db / 20) / max(rms, 1e-12))
    audio += rng.normal(0.0, 10 ** (-58 / 20), n)
    audio = np.tanh(audio * 1.2) / 1.2  # soft clip keeps loud clips in range without hard edges
    return audio.astype(np.float32)
