"""MLP baseline: pool the fused sequence over valid steps, then a feed-forward net."""

from __future__ import annotations

from torch import Tensor, nn

from mmfer.config import ModelConfig
from mmfer.models.base import EmotionModel, pool_sequence, register_model

__all__ = ["MLPModel"]


@register_model("mlp")
class MLPModel(EmotionModel):
    """Pooled features (``cfg.pooling``, mean by default) -> ``num_layers`` x (Linear, ReLU).

    Ignores time order entirely, which makes it the "no temporal model" control.
    ``num_layers=0`` gives a linear classifier on the pooled features. Dropout
    sits between hidden layers (the head adds its own).

    Uses ``hidden_size``, ``num_layers``, ``dropout``, ``pooling`` and ``input_proj``.
    """

    min_layers = 0

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        super().__init__(in_features, num_classes, cfg)
        c = self.cfg
        layers: list[nn.Module] = []
        size = self.feature_size
        for i in range(c.num_layers):
            if i > 0:
                layers.append(nn.Dropout(c.dropout))
            layers += [nn.Linear(size, c.hidden_size), nn.ReLU()]
            size = c.hidden_size
        self.mlp = nn.Sequential(*layers)
        self._build_head(size)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, feature_size)``, ``mask (B, T)`` -> ``(B, hidden)``."""
        pooled = pool_sequence(x, mask, self.cfg.pooling)  # (B, feature_size)
        return self.mlp(pooled)
