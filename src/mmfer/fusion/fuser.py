"""Feature-level fusion: per-modality features -> one time-aligned sequence.

The paper (section 2.4) concatenates the modality vectors. We keep the time
axis so recurrent models have something to recur over: face frames are
resampled to ``steps`` time steps, audio frames (MFCC, Whisper, ...) are pooled
into ``steps`` segments (``audio_pool``: ``mean``, ``stats`` = [mean, std, min,
max] per segment, or ``clipstats`` = [mean, std] over the whole clip, broadcast)
and the TF-IDF vector is broadcast to every step. A modality missing from a
clip is zero-filled and flagged by a presence feature, so training on any
subset of modalities (Tables 1-2) and inference on incomplete clips work.
Steps that carry nothing (an audio-only clip shorter than ``steps`` frames) are
False in ``FusedBatch.mask``; models ignore them.

With ``speaker_norm`` every speaker's face/audio frames are z-normalised with that
speaker's own statistics first (label-free; ``fit``/``transform`` then take the
rows' speaker ids), which removes much of the voice/identity offset between
speakers that speaker-independent protocols otherwise have to generalise over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mmfer.config import MODALITIES, FusionConfig, TextConfig
from mmfer.errors import ConfigError, MmferError
from mmfer.features.words.text_view import context_steps, text_sequence
from mmfer.fusion.enrol import norm_condition
from mmfer.fusion.layout import FusedLayout


class NotFittedError(MmferError, RuntimeError):
    """A fitted component was used before :meth:`fit`."""


@dataclass
class FusedBatch:
    """Fused model input.

    Attributes
    ----------
    x
        ``(N, T, F)`` float32 fused features.
    mask
        ``(N, T)`` bool, True on valid steps.
    present
        ``(N, 3)`` bool, which of (face, audio, text) each sample has.
    """

    x: np.ndarray
    mask: np.ndarray
    present: np.ndarray


def resample_steps(frames: np.ndarray, steps: int) -> np.ndarray:
    """Nearest-neighbour resampling of ``(T_in, D)`` frames to ``(steps, D)``.

    A single frame (a still image) is repeated; longer clips are subsampled
    evenly, shorter clips have frames repeated.
    """
    idx = np.floor(np.linspace(0, len(frames), steps, endpoint=False)).astype(int)
    return frames[np.clip(idx, 0, len(frames) - 1)]


def pool_steps(frames: np.ndarray, steps: int) -> np.ndarray:
    """Mean-pool ``(T_in, D)`` frames into ``steps`` contiguous segments -> ``(steps, D)``.

    When there are fewer frames than steps, falls back to :func:`resample_steps`
    (there is nothing to average).
    """
    if len(frames) < steps:
        return resample_steps(frames, steps)
    return np.stack([seg.mean(axis=0) for seg in np.array_split(frames, steps)])


def pool_stats(frames: np.ndarray, steps: int) -> np.ndarray:
    """[mean, std, min, max] of ``steps`` contiguous segments of ``(T_in, D)`` -> ``(steps, 4 D)``.

    Clips with fewer frames than steps have frames repeated first (each segment
    then holds one frame and its std is 0).
    """
    if len(frames) < steps:
        frames = resample_steps(frames, steps)
    segs = np.array_split(frames, steps)
    return np.stack([np.concatenate([g.mean(0), g.std(0), g.min(0), g.max(0)]) for g in segs]).astype(
        np.float32
    )


#: Floor on a standard deviation, so dimensions that are constant stay finite.
STD_FLOOR = 1e-6


def frame_normalise(a: np.ndarray, width: int = 0) -> np.ndarray:
    """Per-utterance normalisation: each frame's ``width``-wide blocks (all of it when 0)
    z-scored over their own dimensions, ``(T, D)`` -> ``(T, D)``.

    A LayerNorm without gain: it removes each frame's overall level and spread (recording
    gain, channel, the residual stream's growth through the encoder) using that frame only,
    so it needs no statistics of anybody else, test speakers included.
    """
    t, d = a.shape
    w = width if width > 0 and d % width == 0 else d
    blocks = a.reshape(t, d // w, w).astype(np.float64)  # (T, n_blocks, w)
    mu = blocks.mean(axis=2, keepdims=True)
    sd = np.maximum(blocks.std(axis=2, keepdims=True), STD_FLOOR)
    return ((blocks - mu) / sd).reshape(t, d).astype(np.float32)


def mean_std(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-dimension mean and floored standard deviation over all rows of ``arrays``.

    Parameters
    ----------
    arrays
        ``(T_i, D)`` frames (or pooled rows) of one or more samples.

    Returns
    -------
    tuple
        ``mean (D,)`` and ``std (D,)`` float64 (std at least :data:`STD_FLOOR`, so a
        dimension constant over these rows stays finite), and the row count ``sum T_i``.
    """
    allf = np.concatenate(arrays, axis=0).astype(np.float64)  # (sum T_i, D)
    return allf.mean(axis=0), np.maximum(allf.std(axis=0), STD_FLOOR), int(allf.shape[0])


class _Standardiser:
    """Per-dimension mean/std over all frames of the training samples."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, arrays: list[np.ndarray]) -> _Standardiser:
        self.mean, self.std, _ = mean_std(arrays)  # (D,), (D,)
        return self

    def __call__(self, a: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.std is not None
        return ((a - self.mean) / self.std).astype(np.float32)


class Fuser:
    """Fit-on-train, transform-anything fusion of per-sample features.

    Parameters
    ----------
    cfg
        Which modalities to use, number of steps, standardisation.
    text_cfg
        TF-IDF settings (the vocabulary is fitted in :meth:`fit`).

    Notes
    -----
    ``fit`` sees only the training fold: the TF-IDF vocabulary/idf and the
    standardisation statistics never look at test samples.
    """

    def __init__(self, cfg: FusionConfig, text_cfg: TextConfig) -> None:
        bad = [m for m in cfg.modalities if m not in MODALITIES]
        if bad or not cfg.modalities:
            raise ConfigError(
                f"fusion.modalities: {cfg.modalities!r} must be a non-empty subset of {list(MODALITIES)}"
            )
        if not set(cfg.raw) <= set(MODALITIES) - {"text"}:
            raise ConfigError(f"fusion.raw: {cfg.raw!r} must name face and/or audio")
        if cfg.steps < 1:
            raise ConfigError(f"fusion.steps: must be >= 1, got {cfg.steps}")
        # The Fuser only needs on/off: where a test speaker's statistics come from
        # (enrol, neutral_enrol, transductive) is the evaluation's business.
        self.cfg = replace(cfg, speaker_norm=norm_condition(cfg) != "none")
        self.text_cfg = text_cfg
        self.dims_: dict[str, int] | None = None
        self.scalers_: dict[str, _Standardiser] = {}
        self.tfidf_: Any = None

    # ------------------------------------------------------------------ fitting
    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.cfg.modalities]

    @property
    def n_features(self) -> int:
        """Width F of the fused vector (modality blocks + presence flags)."""
        self._check_fitted()
        assert self.dims_ is not None
        return sum(self.dims_.values()) + len(self.modalities)

    def layout(self) -> FusedLayout:
        """Column map of the fused vector: each modality's block, then its presence flag."""
        self._check_fitted()
        assert self.dims_ is not None
        stats = self._audio_width(1)
        block = int(self.cfg.audio_block)
        width = self.dims_.get("audio", 0) // stats
        layers = width // block if block > 0 and width % block == 0 else 0
        return FusedLayout.from_dims(self.modalities, self.dims_, audio_stats=stats, audio_layers=layers)

    def face_frames_used(self, n_frames: int) -> np.ndarray | None:
        """Indices of the face frames :meth:`transform` reads out of a clip's ``n_frames``.

        Face frames are standardised one by one and then resampled (:func:`resample_steps`),
        so only these rows reach the model: an extractor may compute just them (inference
        fast path) and give ``(len(idx), D)`` features, which ``transform`` maps to the same
        fused input. ``None`` when every frame matters: ``speaker_norm`` (statistics over
        every frame) or ``n_frames <= steps``.

        Returns
        -------
        numpy.ndarray or None
            ``(steps,)`` increasing distinct int indices, or ``None``.
        """
        steps = self.cfg.steps
        if "face" not in self.cfg.modalities or self.cfg.speaker_norm or n_frames <= steps:
            return None
        idx = np.floor(np.linspace(0, n_frames, steps, endpoint=False)).astype(int)  # (steps,)
        # n_frames > steps: the stride exceeds 1, so the indices are distinct and resampling
        # these `steps` rows is the identity
        return np.clip(idx, 0, n_frames - 1)

    def _steps(self) -> int:
        """Steps of the fused input: ``fusion.steps``, or more for text dialogue steps."""
        need = context_steps(self.text_cfg)
        if need and (list(self.modalities) != ["text"] or self.text_cfg.representation != "embedding"):
            raise ConfigError(
                "text.context_steps needs text-only fusion (fusion.modalities=[text]) of sentence "
                "embeddings (text.representation=embedding)"
            )
        return max(self.cfg.steps, need)

    def _pooled(self, modality: str) -> bool:
        """Whether ``modality``'s scaler is fitted on pooled statistics instead of frames."""
        return modality == "audio" and self.cfg.audio_pool in ("stats", "clipstats")

    def _audio_width(self, d_frame: int) -> int:
        """Width of the audio block for frames of width ``d_frame``."""
        return d_frame * {"mean": 1, "stats": 4, "clipstats": 2}[self.cfg.audio_pool]

    def _pool_audio(self, a: np.ndarray) -> np.ndarray:
        """Audio frames ``(T_a, D)`` -> pooled rows ``(n, D')``, one per valid step.

        ``mean``/``stats``: ``n = min(steps, T_a)`` segments — a clip with fewer frames
        than steps gets one step per frame and its other steps are masked out (no
        frames are repeated). ``clipstats``: one row ``[mean, std]`` over every frame.
        Under ``mean`` the frames are standardised before pooling, as before.
        """
        t = self.cfg.steps
        pool = self.cfg.audio_pool
        if pool == "clipstats":
            return np.concatenate([a.mean(0), a.std(0)])[None].astype(np.float32)  # (1, 2 D)
        if pool == "stats":
            return pool_stats(a, min(t, len(a)))  # (n, 4 D)
        if "audio" in self.scalers_:
            a = self.scalers_["audio"](a)
        return a if len(a) < t else pool_steps(a, t)  # (n, D)

    def _view(self, modality: str, a: np.ndarray | None) -> np.ndarray | None:
        """``fusion.audio_layers`` view of one clip's audio frames ``(T, n_blocks * B)`` -> ``(T, k * B)``.

        Multi-layer Whisper frames (``audio.whisper_layers``) hold ``n_blocks`` blocks of
        width ``B = fusion.audio_block``; the view keeps blocks ``audio_layers`` (positions in
        that list), so nested selection can choose layers without extracting again.
        """
        picks, width = self.cfg.audio_layers, int(self.cfg.audio_block)
        if modality != "audio" or a is None:
            return a
        if self.cfg.audio_norm == "frame":
            a = frame_normalise(a, width)
        if not picks:
            return a
        if width <= 0 or a.shape[1] % width or max(picks) >= a.shape[1] // width or min(picks) < 0:
            raise ConfigError(
                f"fusion.audio_layers={list(picks)} with fusion.audio_block={width}: audio frames are "
                f"{a.shape[1]} wide, i.e. not {width}-wide blocks that include those positions "
                "(set audio.whisper_layers to extract several layers, audio_block to d_model)"
            )
        return a.reshape(len(a), -1, width)[:, list(picks)].reshape(len(a), -1)  # (T, k * B)

    def speaker_statistics(self, feats: list[Any]) -> dict[str, dict[str, Any]]:
        """Per-dimension mean/std of the face/audio frames of ``feats`` (one speaker's clips).

        The statistics ``speaker_norm`` normalises a speaker with (label-free); used for
        enrolment at inference (:meth:`mmfer.inference.Predictor.enrol`).

        Returns
        -------
        dict
            ``{modality: {"mean": list (D,), "std": list (D,), "frames": int}}`` (JSON-able),
            only for modalities some clip has.
        """
        out: dict[str, dict[str, Any]] = {}
        for m in (m for m in self.modalities if m != "text"):
            arrays = [self._view(m, getattr(f, m)) for f in feats if getattr(f, m, None) is not None]
            if not arrays:
                continue
            mu, sd, n = mean_std(arrays)  # (D,), (D,)
            out[m] = {"mean": mu.tolist(), "std": sd.tolist(), "frames": n}
        return out

    def _frames(
        self,
        feats: list[Any],
        speakers: Sequence[Any] | None,
        stats: dict[str, dict[str, Any]] | None = None,
    ) -> list[dict[str, np.ndarray | None]]:
        """Per-sample face/audio frames, z-normalised per speaker when ``speaker_norm`` is on.

        Each speaker's frames are normalised with the mean/std of that speaker's frames
        *among the given rows only* (label-free; at transform time these are the rows
        being transformed, so test speakers are normalised with their own statistics,
        and nothing about them is stored), unless ``stats[speaker][modality]`` gives
        them (enrolment at inference: ``{"mean": (D,), "std": (D,)}``).
        """
        mods = [m for m in self.modalities if m != "text"]
        frames: list[dict[str, np.ndarray | None]] = [
            {m: self._view(m, getattr(f, m)) for m in mods} for f in feats
        ]
        if not self.cfg.speaker_norm:
            return frames
        if speakers is None:
            raise ConfigError(
                "fusion.speaker_norm=true needs the speaker id of every row: "
                "fit(feats, speakers=...) / transform(feats, speakers=...)"
            )
        spk = [str(s) for s in speakers]
        if len(spk) != len(feats):
            raise ConfigError(f"fusion.speaker_norm: {len(spk)} speaker ids for {len(feats)} samples")
        for m in (m for m in mods if m not in self.cfg.raw):  # raw blocks enter as extracted
            rows_of: dict[str, list[int]] = {}
            for i, fr in enumerate(frames):
                if fr[m] is not None:
                    rows_of.setdefault(spk[i], []).append(i)
            for who, rows in rows_of.items():
                given = (stats or {}).get(who, {}).get(m)
                if given is not None:
                    mu = np.asarray(given["mean"], dtype=np.float64)  # (D,)
                    sd = np.maximum(np.asarray(given["std"], dtype=np.float64), STD_FLOOR)  # (D,)
                else:
                    mu, sd, _ = mean_std([frames[i][m] for i in rows])  # (D,), (D,)
                for i in rows:
                    frames[i][m] = ((frames[i][m] - mu) / sd).astype(np.float32)
        return frames

    def fit(
        self, feats: list[Any], speakers: Sequence[Any] | None = None, *, ids: Sequence[str] | None = None
    ) -> Fuser:
        """Fit TF-IDF and standardisers on the training samples' features.

        Parameters
        ----------
        feats
            Training samples (objects with ``face``, ``audio``, ``text``).
        speakers
            Speaker id of each sample; needed only with ``speaker_norm`` (each training
            speaker is then normalised with its own statistics before anything is fitted).
        ids
            Sample id of each row, kept in :attr:`fitted_on_` for the leakage audit.

        Raises
        ------
        ConfigError
            A requested modality is absent from every training sample, or ``speaker_norm``
            without speakers.
        """
        from mmfer.features.words.tfidf import fit_text_block

        self.fitted_on_: frozenset[str] = frozenset(str(i) for i in ids) if ids is not None else frozenset()
        frames = self._frames(feats, speakers)
        dims: dict[str, int] = {}
        for m in self.modalities:
            if m == "text":
                # TF-IDF and/or sentence embedding (text.representation)
                self.tfidf_, dims["text"] = fit_text_block(feats, self.text_cfg)
                continue
            arrays = [fr[m] for fr in frames if fr[m] is not None]
            if not arrays:
                raise ConfigError(f"modality {m!r} requested but no training sample has it")
            if self._pooled(m):
                # std/min/max of a segment live on other scales than its frames:
                # standardise the pooled statistics themselves
                arrays = [self._pool_audio(a) for a in arrays]
            dims[m] = int(arrays[0].shape[1])
            if self.cfg.standardise and m not in self.cfg.raw:  # no scaler: no balance scaling either
                self.scalers_[m] = _Standardiser().fit(arrays)
        self.dims_ = dims
        return self

    # ---------------------------------------------------------------- transform
    def transform(
        self,
        feats: list[Any],
        speakers: Sequence[Any] | None = None,
        *,
        stats: dict[str, dict[str, Any]] | None = None,
    ) -> FusedBatch:
        """Fuse samples into ``x (N, T, F)``, ``mask (N, T)``, ``present (N, 3)``.

        Parameters
        ----------
        feats
            Samples to fuse.
        speakers
            Speaker id of each sample, needed only with ``speaker_norm``: every speaker is
            normalised with the statistics of *its own rows in this call*, unless ``stats``
            gives that speaker's statistics.
        stats
            ``{speaker: {modality: {"mean": (D,), "std": (D,)}}}``: per-speaker statistics
            to use instead (see :meth:`speaker_statistics`; enrolment).

        Notes
        -----
        ``mask[i, s]`` is False on steps that carry nothing: when audio is the only
        sequence present and the clip has fewer frames than steps (``mean``/``stats``
        pooling), steps past its last frame are masked. Face (resampled) and text
        (broadcast) fill every step, so with them present all steps stay valid and the
        audio block is zero (the training mean) past the clip's last frame.
        """
        self._check_fitted()
        assert self.dims_ is not None
        frames = self._frames(feats, speakers, stats)
        n, t = len(feats), self._steps()
        x = np.zeros((n, t, self.n_features), dtype=np.float32)  # (N, T, F)
        present = np.zeros((n, len(MODALITIES)), dtype=bool)  # (N, 3)
        valid = np.zeros(n, dtype=np.int64)  # (N,) steps carrying content
        col = 0
        for m in self.modalities:
            d = self.dims_[m]
            if m == "text":
                self._fill_text(feats, x[:, :, col : col + d], present[:, MODALITIES.index(m)], valid)
            else:
                for i, fr in enumerate(frames):
                    if fr[m] is not None:
                        self._fill_sequence(m, fr[m], x[i, :, col : col + d], valid, i)
                        present[i, MODALITIES.index(m)] = True
            col += d
        return self._finish(x, present, valid, col)

    def _fill_text(self, feats: list[Any], block: np.ndarray, present: np.ndarray, valid: np.ndarray) -> None:
        """Broadcast each sample's text row over every step of ``block`` ``(N, T, D_text)`` (in place).

        ``present`` ``(N,)`` and ``valid`` ``(N,)`` are updated for samples that have text.
        """
        from mmfer.features.words.tfidf import text_block

        assert self.dims_ is not None
        # (N, D_text) TF-IDF and/or embedding rows, (N,) which samples have text
        rows, has = text_block(feats, self.text_cfg, self.tfidf_, self.dims_["text"])
        present[has] = True
        if context_steps(self.text_cfg):
            for i in np.flatnonzero(has):  # dialogue steps: earlier utterances, then this one
                seq = text_sequence(feats[i], self.text_cfg)  # (L, D_text)
                assert seq is not None
                block[i, : len(seq)] = seq
                valid[i] = max(int(valid[i]), len(seq))
            return
        block[has] = rows[has][:, None, :]  # broadcast over T
        valid[has] = self.cfg.steps

    def _fill_sequence(self, m: str, a: np.ndarray, block: np.ndarray, valid: np.ndarray, i: int) -> None:
        """Write face/audio frames ``a`` ``(T_in, D)`` of sample ``i`` into ``block`` ``(T, d)`` (in place).

        Face frames are standardised then resampled to ``steps``; audio frames are pooled
        (:meth:`_pool_audio`, pooled statistics standardised after pooling). ``valid[i]``
        grows to the number of steps filled.
        """
        d, t = block.shape[1], self.cfg.steps
        width = self._audio_width(a.shape[1]) if m == "audio" else a.shape[1]
        if width != d:
            raise MmferError(
                f"{m} features of width {a.shape[1]} do not match the fitted width {d}"
                " (extracted with a different config?)"
            )
        if m == "face":
            if m in self.scalers_:
                a = self.scalers_[m](a)
            a = resample_steps(a, t)  # (T, D)
        else:
            a = self._pool_audio(a)  # (n_a, D')
            if self._pooled(m) and m in self.scalers_:
                a = self.scalers_[m](a)
        if m in self.scalers_ and self.cfg.balance:
            a = a / np.float32(np.sqrt(d))
        if m == "audio" and self.cfg.audio_pool == "clipstats":
            block[:] = a  # (1, D') broadcast over T
            valid[i] = t
        else:
            block[: len(a)] = a
            valid[i] = max(valid[i], len(a))

    def _finish(self, x: np.ndarray, present: np.ndarray, valid: np.ndarray, col: int) -> FusedBatch:
        """Presence flags into ``x[:, :, col:]``, the step mask from ``valid`` ``(N,)``, padding zeroed."""
        t = x.shape[1]
        flags = present[:, [MODALITIES.index(m) for m in self.modalities]].astype(np.float32)
        x[:, :, col:] = flags[:, None, :]  # presence flags, broadcast over T
        valid[valid == 0] = t  # a sample with no modality at all: all-zero steps, as before
        mask = np.arange(t)[None, :] < valid[:, None]  # (N, T)
        x[~mask] = 0.0  # padding carries nothing, not even presence flags
        return FusedBatch(x=x, mask=mask, present=present)

    def fit_transform(self, feats: list[Any], speakers: Sequence[Any] | None = None) -> FusedBatch:
        return self.fit(feats, speakers=speakers).transform(feats, speakers=speakers)

    def _check_fitted(self) -> None:
        if self.dims_ is None:
            raise NotFittedError("this Fuser is not fitted yet: call fit() on the training fold first")

    # ---------------------------------------------------------------- state I/O
    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state (for checkpoints; no pickle)."""
        self._check_fitted()
        return {
            "modalities": self.modalities,
            "steps": self.cfg.steps,
            "standardise": self.cfg.standardise,
            "balance": self.cfg.balance,
            "audio_pool": self.cfg.audio_pool,
            "audio_layers": list(self.cfg.audio_layers),
            "audio_block": int(self.cfg.audio_block),
            "audio_norm": self.cfg.audio_norm,
            # a flag only: per-speaker statistics are recomputed from the rows being transformed
            "speaker_norm": self.cfg.speaker_norm,
            "raw": list(self.cfg.raw),
            "dims": self.dims_,
            "scalers": {
                m: {"mean": s.mean.tolist(), "std": s.std.tolist()}  # type: ignore[union-attr]
                for m, s in self.scalers_.items()
            },
            "tfidf": None if self.tfidf_ is None else self.tfidf_.get_state(),
            "text_cfg": vars(self.text_cfg).copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Fuser:
        """Rebuild a fitted Fuser from :meth:`get_state` output."""
        from mmfer.config import from_dict
        from mmfer.features.words.tfidf import TextTfidf

        cfg = FusionConfig(
            modalities=list(state["modalities"]),
            steps=int(state["steps"]),
            standardise=bool(state["standardise"]),
            balance=bool(state.get("balance", False)),
            audio_pool=state.get("audio_pool", "mean"),
            audio_layers=[int(i) for i in state.get("audio_layers", [])],
            audio_block=int(state.get("audio_block", 0)),
            audio_norm=state.get("audio_norm", "none"),
            speaker_norm=bool(state.get("speaker_norm", False)),
            raw=[str(m) for m in state.get("raw", [])],
        )
        fuser = cls(cfg, from_dict(TextConfig, state["text_cfg"]))
        fuser.dims_ = {k: int(v) for k, v in state["dims"].items()}
        for m, s in state["scalers"].items():
            sc = _Standardiser()
            sc.mean = np.asarray(s["mean"], dtype=np.float64)
            sc.std = np.asarray(s["std"], dtype=np.float64)
            fuser.scalers_[m] = sc
        if state.get("tfidf") is not None:
            fuser.tfidf_ = TextTfidf.from_state(state["tfidf"])
        return fuser
