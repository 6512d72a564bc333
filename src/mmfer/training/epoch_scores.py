"""Score held-out rows after every epoch (a :class:`~mmfer.training.hooks.Hook`).

The inner epoch selection (:mod:`mmfer.epoch_selection`) fits each candidate on the
inner training rows with this hook watching the inner validation rows: the curve of
scores per epoch, averaged over the inner folds, chooses how many epochs the outer
fit trains. The hook reads the weights the fit would end with if it stopped at that
epoch (the weight average when ``train.ema`` is on) and never changes training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmfer.training.hooks import Hook
from mmfer.training.predict import predict

if TYPE_CHECKING:
    from mmfer.training.loop import Trainer

__all__ = ["EpochScores"]


class EpochScores(Hook):
    """After each epoch, ``metric(y, proba)`` of the model on fixed held-out rows.

    Parameters
    ----------
    x
        ``(N, T, F)`` float32 held-out inputs (already fused).
    mask
        ``(N, T)`` bool.
    y
        ``(N,)`` int class indices.
    metric
        ``(y (N,), proba (N, C)) -> float``, higher is better.

    Attributes
    ----------
    scores
        One score per epoch completed, in order (``scores[e - 1]`` after epoch ``e``).
    """

    def __init__(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        y: np.ndarray,
        metric: Callable[[np.ndarray, np.ndarray], float],
    ) -> None:
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.mask = torch.as_tensor(np.asarray(mask, dtype=bool))
        self.y = np.asarray(y, dtype=np.int64)
        self.metric = metric
        self.scores: list[float] = []

    def on_fit_start(self, trainer: Trainer, model: Any) -> None:
        self.scores = []

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        assert trainer.model is not None
        with trainer.averaged_weights():
            proba = predict(trainer.model, self.x, self.mask)  # (N, C)
        self.scores.append(float(self.metric(self.y, proba)))
