"""Transformer-encoder baseline over the fused sequence."""

from __future__ import annotations

from torch import Tensor, nn

from mmfer.config import ModelConfig
from mmfer.errors import ConfigError, DataError
from mmfer.models.base import EmotionModel, pool_sequence, register_model

__all__ = ["MAX_STEPS", "TransformerModel"]

#: Longest sequence the learned positional embedding covers. Fusion aligns every
#: sample to ``FusionConfig.steps`` (8 by default), far below this.
MAX_STEPS = 512


@register_model("transformer")
class TransformerModel(EmotionModel):
    """Pre-norm ``nn.TransformerEncoder`` with a learned positional embedding.

    The input is projected to ``hidden_size`` (which must be divisible by
    ``num_heads``); padded steps are excluded as attention keys through
    ``src_key_padding_mask`` and from pooling.

    Uses ``hidden_size``, ``num_layers``, ``num_heads``, ``ff_size``,
    ``dropout``, ``pooling`` and ``input_proj``.
    """

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        super().__init__(in_features, num_classes, cfg)
        c = self.cfg
        if c.hidden_size % c.num_heads:
            raise ConfigError(
                f"model.hidden_size ({c.hidden_size}) must be divisible by model.num_heads ({c.num_heads})"
            )
        self.embed = nn.Linear(self.feature_size, c.hidden_size)
        self.pos = nn.Embedding(MAX_STEPS, c.hidden_size)
        nn.init.normal_(self.pos.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c.hidden_size,
            c.num_heads,
            dim_feedforward=c.ff_size,
            dropout=c.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without warm-up
        )
        # Nested tensors are incompatible with pre-norm anyway; say so to silence the warning.
        self.encoder = nn.TransformerEncoder(
            layer, c.num_layers, norm=nn.LayerNorm(c.hidden_size), enable_nested_tensor=False
        )
        self._build_head(c.hidden_size)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, feature_size)``, ``mask (B, T)`` -> pooled ``(B, hidden)``."""
        steps = x.shape[1]
        if steps > MAX_STEPS:
            raise DataError(None, f"sequence of {steps} valid steps exceeds the transformer's {MAX_STEPS}")
        z = self.embed(x) + self.pos.weight[:steps]  # (B, T, hidden)
        z = self.encoder(z, src_key_padding_mask=~mask)  # (B, T, hidden)
        return pool_sequence(z, mask, self.cfg.pooling)
