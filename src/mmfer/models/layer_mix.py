"""Learned softmax weighting of stacked encoder layers (the SUPERB recipe) in front of any network.

Multi-layer Whisper frames (``features.audio.whisper_layers``) put ``L`` encoder states of
width ``D`` side by side in the fused audio block. With ``model.layer_mix`` on, every network
first combines them as ``sum_l softmax(w)_l * x_l`` with ``w`` learned jointly with the
classifier (initialised equal, i.e. the mean of the layers), so the input projection sees one
``D``-wide state per pooled statistic instead of ``L``.

The mixed columns are described by a *span* ``[start, stop, stats, layers]``: columns
``[start, stop)`` of the fused vector hold ``stats`` consecutive groups (one per pooled
statistic of ``fusion.audio_pool``: 1 for ``mean``, 4 for ``stats``, 2 for ``clipstats``), each
of ``layers`` blocks of width ``D``, in that order (what the fuser writes). Columns outside
the span (other modalities, presence flags) pass through unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfer.errors import ConfigError

__all__ = ["AUTO", "LayerMix", "layer_span"]

#: ``model.layer_mix`` value meaning "every layer the fuser's audio view holds" (from the layout).
AUTO = -1


def layer_span(
    layer_mix: int,
    width: int,
    block: tuple[int, int] | None = None,
    *,
    stats: int = 1,
    layers: int = 0,
) -> list[int]:
    """The span ``[start, stop, stats, layers]`` ``model.layer_mix`` mixes, checked.

    Parameters
    ----------
    layer_mix
        ``model.layer_mix``: the number ``L`` of stacked layers, or :data:`AUTO`.
    width
        Width ``F`` of the fused input.
    block
        ``(start, stop)`` columns of the audio block (from the fused layout); ``None`` = the
        whole input is one stack (plain arrays fitted without a layout).
    stats
        Pooled statistics per step in the block (``fusion.audio_pool``).
    layers
        Layer blocks the fuser's view holds (0 = unknown: no ``fusion.audio_block``).

    Returns
    -------
    list of int
        ``[start, stop, stats, L]``.

    Raises
    ------
    ConfigError
        ``AUTO`` without a known layer count, ``L`` different from the view's layer count,
        or a span width not divisible into ``stats * L`` equal blocks.
    """
    start, stop = block if block is not None else (0, width)
    n = layers if layer_mix == AUTO else layer_mix
    if n < 1:
        raise ConfigError(
            f"model.layer_mix={layer_mix} (every layer of the audio view) needs a known layer count: "
            "fit through the pipeline with fusion.audio_block set to the encoder width (384 for "
            "tiny.en) and several layers extracted (features.audio.whisper_layers)"
        )
    if layers and n != layers:
        raise ConfigError(
            f"model.layer_mix={layer_mix}: the fuser's audio view holds {layers} layer block(s) "
            "(fusion.audio_layers), not that many; use model.layer_mix=-1 for every layer of the view"
        )
    span = stop - start
    if span % (stats * n):
        raise ConfigError(
            f"model.layer_mix={layer_mix}: the {'audio block' if block is not None else 'input'} is "
            f"{span} columns wide, not {stats} pooled statistic(s) x {n} equal layer blocks "
            "(check features.audio.whisper_layers, fusion.audio_layers and fusion.audio_block)"
        )
    return [int(start), int(stop), int(stats), int(n)]


class LayerMix(nn.Module):
    """``x (B, T, F)`` -> ``(B, T, F - W + W / L)``: the span's ``L`` layer blocks -> their softmax mix.

    Parameters
    ----------
    span
        ``[start, stop, stats, layers]`` (see :func:`layer_span`); ``W = stop - start``.
    in_features
        ``F``; the span must lie inside it.

    Attributes
    ----------
    logits : torch.nn.Parameter
        ``(L,)`` mixing logits, zero at init (equal weights: the mean of the layers).
    out_features : int
        Width after mixing.
    """

    def __init__(self, span: list[int], in_features: int) -> None:
        super().__init__()
        start, stop, stats, layers = (int(v) for v in span)
        fits = 0 <= start < stop <= in_features and stats >= 1 and layers >= 1
        if not fits or (stop - start) % (stats * layers):
            raise ConfigError(
                f"model.layer_mix_span={list(span)} does not fit an input of {in_features} columns "
                "(expected [start, stop, stats, layers] with stop - start divisible by stats * layers)"
            )
        self.start, self.stop, self.stats, self.layers = start, stop, stats, layers
        self.width = (stop - start) // (stats * layers)  # D
        self.logits = nn.Parameter(torch.zeros(layers))
        self.out_features = in_features - (stop - start) + stats * self.width

    def weights(self) -> Tensor:
        """``(L,)`` softmax mixing weights (sum to 1)."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, T, F)`` -> ``(B, T, out_features)``: mixed block in place of the span."""
        b, t, _ = x.shape
        stack = x[..., self.start : self.stop].reshape(b, t, self.stats, self.layers, self.width)
        mixed = torch.einsum("btsld,l->btsd", stack, self.weights()).reshape(b, t, -1)  # (B, T, S*D)
        return torch.cat([x[..., : self.start], mixed, x[..., self.stop :]], dim=-1)

    def extra_repr(self) -> str:
        return f"span=[{self.start}, {self.stop}), stats={self.stats}, layers={self.layers}, D={self.width}"
