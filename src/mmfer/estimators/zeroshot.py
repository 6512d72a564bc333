"""Zero-shot expression heads: a pretrained network's own classifier, nothing fitted.

The expression backbones (``fer2013``, ``faceapi``, ``fer2013+faceapi``:
:mod:`mmfer.features.face.backbones`) give, per face frame, their pooled features
*and* their own 7 class logits. :class:`ZeroShotHeads` turns those logits into
probabilities over mmfer's canonical emotions without any training:

1. per head ``h`` and frame ``t``: ``log p_h(c | t) = log_softmax(z_h(t) / T_h)``, with the
   head's temperature ``T_h`` (1 = the network as shipped);
2. per head, the clip's score of each class is the mean of ``log p_h(c | t)`` over the
   clip's face frames (a normalised geometric mean of the frame probabilities);
3. heads are combined by the weighted mean of those mean log-probabilities (a head
   that does not know a class gives it its own mean score, as in
   :func:`mmfer.inference.fusion_rules.fuse_scores`), then a softmax over the labels.

Each head's classes are given in canonical names (``disgust``, ``fearful``, ...), so
the estimator needs nothing from the face modules. Parameters (JSON, stored in the
checkpoint) say where each head's logits are in a frame's features.

It is deliberately *not* in the estimator registry (``mmfer train model.name=...`` cannot
pick it, and the late-fusion wrappers do not wrap it): nothing is trained.
:mod:`mmfer.inference.zeroshot` builds and loads it.

Examples
--------
>>> est = ZeroShotHeads(labels=["happy", "sad"], heads=[
...     {"name": "h", "columns": [0, 2], "classes": ["happy", "sad"], "temperature": 1.0, "weight": 1.0}])
>>> est.clip_probabilities(np.array([[2.0, 0.0], [0.0, 0.0]])).round(3).tolist()
[0.731, 0.269]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmfer.errors import ConfigError, DataError
from mmfer.estimators.base import Estimator

__all__ = ["ZeroShotHeads", "log_softmax"]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``(..., C)`` scores (float64)."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


class ZeroShotHeads(Estimator):
    """Pretrained expression heads used as they are (see the module docstring).

    Parameters
    ----------
    labels
        Output classes (canonical emotion names), in output order.
    heads
        One dict per head: ``name``, ``columns`` (``[start, stop)`` of its logits in a
        frame's features), ``classes`` (canonical name of each logit), ``temperature``
        (> 0) and ``weight`` (>= 0).
    """

    name = "zeroshot_face"

    def default_params(self) -> dict[str, Any]:
        """``labels`` and ``heads`` (empty: set them)."""
        return {"labels": [], "heads": []}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        labels = list(self.params["labels"])
        heads = [dict(h) for h in self.params["heads"]]
        if not labels or not heads:
            raise ConfigError(f"{self.name}: give the output labels and at least one head")
        for h in heads:
            a, b = (int(v) for v in h["columns"])
            if b - a != len(h["classes"]) or a < 0:
                raise ConfigError(f"{self.name}: head {h.get('name')!r}: columns {h['columns']} vs classes")
            if not float(h.get("temperature", 1.0)) > 0 or float(h.get("weight", 1.0)) < 0:
                raise ConfigError(f"{self.name}: head {h.get('name')!r}: temperature > 0 and weight >= 0")
        if sum(float(h.get("weight", 1.0)) for h in heads) <= 0:
            raise ConfigError(f"{self.name}: every head has weight 0")
        self.params = {"labels": labels, "heads": heads}
        self.num_classes_ = len(labels)  # nothing to fit: usable at once

    @property
    def labels(self) -> list[str]:
        """Output classes."""
        return list(self.params["labels"])

    @property
    def heads(self) -> list[dict[str, Any]]:
        """The heads' parameters (copies)."""
        return [dict(h) for h in self.params["heads"]]

    def head_log_probs(self, frames: np.ndarray, head: Mapping[str, Any]) -> np.ndarray:
        """Per-frame log-probabilities of one head, ``(T, D) -> (T, C_h)``, temperature applied."""
        a, b = (int(v) for v in head["columns"])
        if frames.ndim != 2 or frames.shape[1] < b:
            raise DataError(None, f"{self.name}: frames {frames.shape} lack head {head['name']!r}'s columns")
        return log_softmax(frames[:, a:b] / float(head.get("temperature", 1.0)))  # (T, C_h)

    def head_scores(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Per head: ``(C,)`` mean log-probability over the frames, in :attr:`labels` order.

        A class the head does not know gets the head's mean score (no evidence either way).
        """
        pos = {lab: i for i, lab in enumerate(self.labels)}
        out = {}
        for h in self.params["heads"]:
            m = self.head_log_probs(frames, h).mean(axis=0)  # (C_h,) mean over frames
            row = np.full(len(pos), m.mean())  # (C,)
            for j, lab in enumerate(h["classes"]):
                if lab in pos:
                    row[pos[lab]] = m[j]
            out[str(h["name"])] = row
        return out

    def clip_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """``(T, D)`` face frames of one clip -> ``(C,)`` probabilities (weighted mean of log-probs)."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or len(frames) == 0:
            raise DataError(None, f"{self.name}: expected (T, D) frames with T >= 1, got {frames.shape}")
        scores = self.head_scores(frames)
        num = np.zeros(len(self.labels))
        den = 0.0
        for h in self.params["heads"]:
            w = float(h.get("weight", 1.0))
            num += w * scores[str(h["name"])]
            den += w
        s = num / den
        z = np.exp(s - s.max())
        return z / z.sum()  # (C,)

    def predict_frames(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``N`` clips of ``(T_i, D)`` face frames -> ``(N, C)`` probabilities."""
        return (
            np.stack([self.clip_probabilities(f) for f in clips])
            if clips
            else np.zeros((0, self.num_classes_))
        )

    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None:
        raise ConfigError(
            f"{self.name}: a zero-shot head is not trained (build it with mmfer.inference.zeroshot)"
        )

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Fused input ``(N, T, F)`` (face block first, unstandardised) -> ``(N, C)``.

        The fuser resamples a clip's frames to its steps (nearest neighbour), so a frame
        may count twice here; :class:`mmfer.inference.zeroshot.ZeroShotFacePredictor`
        reads the frames themselves instead (each face frame once).
        """
        return np.stack([self.clip_probabilities(xi[mi]) for xi, mi in zip(x, mask, strict=True)])

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """No arrays: the networks' weights come from the installed packages."""
        return {}, {"zero_shot": True}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Nothing to load (the parameters say everything)."""
        return self
