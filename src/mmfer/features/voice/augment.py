"""Train-time voice augmentation: a clip's waveform -> its k-th augmented copy (audiomentations).

The transforms and their ranges come from :class:`mmfer.config.AugmentConfig`: coloured
noise at a random SNR (``AddColorNoise``), gain (``Gain``), pitch shift (``PitchShift``)
and time stretch (``TimeStretch``, which changes the length), each applied with its own
probability, in that order (``Compose``). Reverb is left out: audiomentations only
reverberates through ``RoomSimulator`` (needs pyroomacoustics) or
``ApplyImpulseResponse`` (needs impulse-response files), and mmfer ships neither.

Copies are deterministic per (clip content, copy index, seed): every random draw of
audiomentations (Python's ``random`` and NumPy's global generator) is seeded from a hash
of the three, so a rerun computes the same copy and hits the feature cache
(:class:`mmfer.features.cache.FeatureCache`; the unit key holds the config and the copy
index, see :meth:`mmfer.features.voice.units.VoiceUnitExtractor.config_for`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from typing import Any

import numpy as np

from mmfer.config import AugmentConfig
from mmfer.errors import ConfigError, FeatureError, ModalityMissing

__all__ = ["AUGMENT_VERSION", "MIN_AUGMENT_SECONDS", "augment_key", "augment_seed", "augment_wave"]

#: Bump when the same config would give other copies (order of transforms, their options).
AUGMENT_VERSION = 1
#: Clips shorter than this are not augmented (the pitch shifter and the coloured-noise
#: spectrum need a few windows of signal): the copy is masked, the clip itself is kept.
MIN_AUGMENT_SECONDS = 0.1

# audiomentations draws from process-global generators; one copy at a time per process.
_RNG_LOCK = threading.Lock()
_COMPOSE: dict[str, Any] = {}


def augment_key(cfg: AugmentConfig) -> dict[str, Any]:
    """Cache-key material of the augmentation: every setting except ``copies``, plus versions.

    ``copies`` is left out so that raising it keeps the copies already cached (copy ``k`` is
    the same whatever the number of copies); the copy index is in each unit's key.

    Returns
    -------
    dict
        JSON-able settings, ``version`` (:data:`AUGMENT_VERSION`) and the audiomentations version.
    """
    d = dataclasses.asdict(cfg)
    d.pop("copies")
    d.pop("corpora")  # which clips get copies, not what a copy is
    return {**d, "version": AUGMENT_VERSION, "audiomentations": _library_version()}


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("audiomentations")
    except PackageNotFoundError:
        return "missing"


def _compose(cfg: AugmentConfig) -> Any:
    """The audiomentations ``Compose`` of ``cfg`` (memoised per config)."""
    memo = repr(augment_key(cfg))
    comp = _COMPOSE.get(memo)
    if comp is not None:
        return comp
    try:
        import audiomentations as am
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError(
            f"features.augment needs audiomentations (pip install --no-deps audiomentations==0.43.1): {e}"
        ) from None
    comp = _COMPOSE[memo] = am.Compose(
        [
            am.AddColorNoise(
                min_snr_db=cfg.noise_min_snr_db,
                max_snr_db=cfg.noise_max_snr_db,
                min_f_decay=cfg.noise_min_f_decay,
                max_f_decay=cfg.noise_max_f_decay,
                p=cfg.noise_p,
            ),
            am.Gain(min_gain_db=-cfg.gain_db, max_gain_db=cfg.gain_db, p=cfg.gain_p),
            am.PitchShift(
                min_semitones=-cfg.pitch_semitones,
                max_semitones=cfg.pitch_semitones,
                method="signalsmith_stretch",
                p=cfg.pitch_p,
            ),
            am.TimeStretch(
                min_rate=cfg.stretch_min_rate,
                max_rate=cfg.stretch_max_rate,
                leave_length_unchanged=False,
                method="signalsmith_stretch",
                p=cfg.stretch_p,
            ),
        ]
    )
    return comp


def augment_seed(wave: np.ndarray, copy: int, seed: int) -> int:
    """The 32-bit seed of copy ``copy`` of ``wave``: a hash of its samples, the copy index and ``seed``.

    Parameters
    ----------
    wave
        ``(n_samples,)`` float32 waveform (its bytes are hashed).
    copy
        Copy index (1-based).
    seed
        :attr:`mmfer.config.AugmentConfig.seed`.
    """
    h = hashlib.sha256(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
    h.update(f"|copy={int(copy)}|seed={int(seed)}".encode())
    return int.from_bytes(h.digest()[:4], "little")


def augment_wave(
    wave: np.ndarray, sample_rate: int, cfg: AugmentConfig, copy: int, source: Any = None
) -> np.ndarray:
    """Augmented copy ``copy`` of a waveform, deterministic per (content, copy, ``cfg.seed``).

    Parameters
    ----------
    wave
        ``(n_samples,)`` float waveform in [-1, 1].
    sample_rate
        Rate of ``wave`` (Hz).
    cfg
        Transforms, their ranges and probabilities, and the seed.
    copy
        Copy index, ``>= 1`` (copies with other indices differ).
    source
        File or clip name for messages.

    Returns
    -------
    numpy.ndarray
        ``(n_samples',)`` float32 finite waveform; ``n_samples'`` differs from
        ``n_samples`` when the copy was time-stretched (by the rate, within
        ``[1 / stretch_max_rate, 1 / stretch_min_rate]`` of it).

    Raises
    ------
    ModalityMissing
        The clip is shorter than :data:`MIN_AUGMENT_SECONDS` or all zeros (nothing to augment).
    FeatureError
        The augmentation produced non-finite samples.
    """
    if copy < 1:
        raise ValueError(f"copy index must be >= 1, got {copy}")
    w = np.ascontiguousarray(np.asarray(wave, dtype=np.float32).reshape(-1))  # (n_samples,)
    need = int(np.ceil(MIN_AUGMENT_SECONDS * sample_rate))
    if w.size < need:
        raise ModalityMissing(source, f"too short to augment ({w.size} samples < {need})")
    if not np.any(w):
        raise ModalityMissing(source, "silent audio (all zeros): nothing to augment")
    comp = _compose(cfg)
    s = augment_seed(w, copy, cfg.seed)
    with _RNG_LOCK:
        # audiomentations draws from the global generators: seed them, then put them back
        py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
        try:
            random.seed(s)
            np.random.seed(s)  # noqa: NPY002
            out = comp(samples=w.copy(), sample_rate=int(sample_rate))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1))  # (n_samples',)
    if out.size == 0 or not np.all(np.isfinite(out)):
        raise FeatureError(source, f"augmented copy {copy} is empty or not finite")
    return out
