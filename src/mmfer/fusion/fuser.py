"""Feature-level fusion: per-modality features -> one time-aligned sequence.

The paper (section 2.4) concatenates the modality vectors. We keep the time
axis so recurrent models have something to recur over: face frames are
resampled to ``steps`` time steps, MFCC frames are mean-pooled into ``steps``
segments and the TF-IDF vector is broadcast to every step. A modality missing
from a clip is zero-filled and flagged by a presence feature, so training on
any subset of modalities (Tables 1-2) and inference on incomplete clips work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmfer.config import MODALITIES, FusionConfig, TextConfig
from mmfer.errors import ConfigError, MmferError


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


class _Standardiser:
    """Per-dimension mean/std over all frames of the training samples."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, arrays: list[np.ndarray]) -> _Standardiser:
        allf = np.concatenate(arrays, axis=0).astype(np.float64)  # (sum T_i, D)
        self.mean = allf.mean(axis=0)
        # a floor keeps dimensions that are constant on the training fold finite
        self.std = np.maximum(allf.std(axis=0), 1e-6)
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
        if cfg.steps < 1:
            raise ConfigError(f"fusion.steps: must be >= 1, got {cfg.steps}")
        self.cfg = cfg
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

    def _stats(self, modality: str) -> bool:
        return modality == "audio" and self.cfg.audio_pool == "stats"

    def fit(self, feats: list[Any]) -> Fuser:
        """Fit TF-IDF and standardisers on the training samples' features.

        Raises
        ------
        ConfigError
            A requested modality is absent from every training sample.
        """
        from mmfer.features.text import fit_text_block

        dims: dict[str, int] = {}
        for m in self.modalities:
            if m == "text":
                # TF-IDF and/or sentence embedding (text.representation)
                self.tfidf_, dims["text"] = fit_text_block(feats, self.text_cfg)
                continue
            arrays = [getattr(f, m) for f in feats if getattr(f, m) is not None]
            if not arrays:
                raise ConfigError(f"modality {m!r} requested but no training sample has it")
            if self._stats(m):
                # std/min/max of a segment live on other scales than its frames:
                # standardise the pooled statistics themselves
                arrays = [pool_stats(a, self.cfg.steps) for a in arrays]
            dims[m] = int(arrays[0].shape[1])
            if self.cfg.standardise:
                self.scalers_[m] = _Standardiser().fit(arrays)
        self.dims_ = dims
        return self

    # ---------------------------------------------------------------- transform
    def transform(self, feats: list[Any]) -> FusedBatch:
        """Fuse samples into ``x (N, T, F)``, ``mask (N, T)``, ``present (N, 3)``."""
        self._check_fitted()
        assert self.dims_ is not None
        n, t = len(feats), self.cfg.steps
        x = np.zeros((n, t, self.n_features), dtype=np.float32)  # (N, T, F)
        present = np.zeros((n, len(MODALITIES)), dtype=bool)  # (N, 3)
        text_rows = text_present = None
        if "text" in self.dims_:
            from mmfer.features.text import text_block

            # (N, D_text) TF-IDF and/or embedding rows, (N,) which samples have text
            text_rows, text_present = text_block(feats, self.text_cfg, self.tfidf_, self.dims_["text"])
        col = 0
        for m in self.modalities:
            d = self.dims_[m]
            mi = MODALITIES.index(m)
            for i, f in enumerate(feats):
                if m == "text":
                    assert text_rows is not None and text_present is not None
                    if not text_present[i]:
                        continue
                    x[i, :, col : col + d] = text_rows[i]  # broadcast over T
                else:
                    a = getattr(f, m)
                    if a is None:
                        continue
                    stats = self._stats(m)
                    if a.shape[1] * (4 if stats else 1) != d:
                        raise MmferError(
                            f"{m} features of width {a.shape[1]} do not match the fitted width {d}"
                            " (extracted with a different config?)"
                        )
                    if stats:
                        a = pool_stats(a, t)
                        if m in self.scalers_:
                            a = self.scalers_[m](a)
                    else:
                        if m in self.scalers_:
                            a = self.scalers_[m](a)
                        a = resample_steps(a, t) if m == "face" else pool_steps(a, t)
                    if m in self.scalers_ and self.cfg.balance:
                        a = a / np.float32(np.sqrt(d))
                    x[i, :, col : col + d] = a
                present[i, mi] = True
            col += d
        flags = present[:, [MODALITIES.index(m) for m in self.modalities]].astype(np.float32)
        x[:, :, col:] = flags[:, None, :]  # presence flags, broadcast over T
        mask = np.ones((n, t), dtype=bool)
        return FusedBatch(x=x, mask=mask, present=present)

    def fit_transform(self, feats: list[Any]) -> FusedBatch:
        return self.fit(feats).transform(feats)

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
        from mmfer.features.text import TextTfidf

        cfg = FusionConfig(
            modalities=list(state["modalities"]),
            steps=int(state["steps"]),
            standardise=bool(state["standardise"]),
            balance=bool(state.get("balance", False)),
            audio_pool=state.get("audio_pool", "mean"),
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
