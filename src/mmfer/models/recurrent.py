"""Recurrent recognition models: RMLSTM (the paper's), MLSTM, LSTM and RNN baselines.

All four read the fused sequence ``(B, T, F)`` step by step and pool the
per-step outputs over valid steps (``cfg.pooling``). The base class hands them
prefix-form masks, so the torch RNNs can use :func:`pack_padded_sequence` and
the mogrifier stack freezes its state on padded steps.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmfer.config import ModelConfig
from mmfer.models.base import EmotionModel, pool_sequence, register_model
from mmfer.models.mogrifier import MogrifierLSTM

__all__ = [
    "MLSTM",
    "RMLSTM",
    "LSTMModel",
    "MogrifierLSTMModel",
    "RMLSTMGateOnly",
    "RMLSTMHFirst",
    "RMLSTMLayersOnly",
    "RNNModel",
]


class MogrifierLSTMModel(EmotionModel):
    """Mogrifier LSTM stack honouring ``cfg.residual_gate`` / ``cfg.residual_layers``.

    Not registered itself: use it directly for ablations between
    :class:`MLSTM` (both off) and :class:`RMLSTM` (both on).

    Uses ``hidden_size``, ``num_layers``, ``dropout``, ``mogrify_rounds``,
    ``mogrify_rank``, ``residual_gate``, ``residual_layers``, ``pooling`` and
    ``input_proj``.
    """

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        super().__init__(in_features, num_classes, cfg)
        c = self.cfg
        self.rnn = MogrifierLSTM(
            self.feature_size,
            c.hidden_size,
            c.num_layers,
            rounds=c.mogrify_rounds,
            rank=c.mogrify_rank,
            residual_gate=c.residual_gate,
            residual_layers=c.residual_layers,
            dropout=c.dropout,
            gate_order=c.gate_order,
        )
        self._build_head(c.hidden_size)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, feature_size)``, ``mask (B, T)`` -> pooled ``(B, hidden)``."""
        seq, _ = self.rnn(x, mask)  # (B, T, hidden)
        return pool_sequence(seq, mask, self.cfg.pooling)


@register_model("rmlstm")
class RMLSTM(MogrifierLSTMModel):
    """The paper's residual mogrifier LSTM.

    Forces ``residual_gate=True`` (eqs. 9, 11: ``x' = x + 2 sigma(.) * x``) and
    ``residual_layers=True`` (residual connections between stacked layers),
    whatever ``cfg`` says; :attr:`cfg` records the forced values.
    """

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        cfg = cfg if cfg is not None else ModelConfig(name="rmlstm")
        super().__init__(
            in_features, num_classes, dataclasses.replace(cfg, residual_gate=True, residual_layers=True)
        )


@register_model("mlstm")
class MLSTM(MogrifierLSTMModel):
    """Melis et al.'s original mogrifier LSTM.

    Forces ``residual_gate=False`` (``x' = 2 sigma(.) * x``) and
    ``residual_layers=False``, whatever ``cfg`` says; :attr:`cfg` records the
    forced values.
    """

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        cfg = cfg if cfg is not None else ModelConfig(name="mlstm")
        super().__init__(
            in_features, num_classes, dataclasses.replace(cfg, residual_gate=False, residual_layers=False)
        )


def _forced(cfg: ModelConfig | None, name: str, **fields: object) -> ModelConfig:
    """``cfg`` (default: a fresh config named ``name``) with ``fields`` forced."""
    return dataclasses.replace(cfg if cfg is not None else ModelConfig(name=name), **fields)


@register_model("rmlstm_gate")
class RMLSTMGateOnly(MogrifierLSTMModel):
    """Ablation: the paper's residual gate, without residual connections between layers."""

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        cfg = _forced(cfg, "rmlstm_gate", residual_gate=True, residual_layers=False)
        super().__init__(in_features, num_classes, cfg)


@register_model("rmlstm_layers")
class RMLSTMLayersOnly(MogrifierLSTMModel):
    """Ablation: residual connections between layers, with Melis' plain gate ``x' = 2 sigma(.) x``."""

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        cfg = _forced(cfg, "rmlstm_layers", residual_gate=False, residual_layers=True)
        super().__init__(in_features, num_classes, cfg)


@register_model("rmlstm_hfirst")
class RMLSTMHFirst(MogrifierLSTMModel):
    """RMLSTM with the paper's round order (eqs. 8-11: h gated first), both residual forms on."""

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        cfg = _forced(cfg, "rmlstm_hfirst", residual_gate=True, residual_layers=True, gate_order="h_first")
        super().__init__(in_features, num_classes, cfg)


class _TorchRNNModel(EmotionModel):
    """A cuDNN-style torch RNN (``nn.LSTM``/``nn.RNN``) run on packed sequences.

    Uses ``hidden_size``, ``num_layers``, ``dropout`` (between layers and before
    the head), ``pooling`` and ``input_proj``.
    """

    rnn: nn.LSTM | nn.RNN

    def _make_rnn(self) -> nn.LSTM | nn.RNN:
        raise NotImplementedError

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        super().__init__(in_features, num_classes, cfg)
        self.rnn = self._make_rnn()
        self._build_head(self.cfg.hidden_size)

    def _rnn_kwargs(self) -> dict[str, object]:
        c = self.cfg
        return {
            "input_size": self.feature_size,
            "hidden_size": c.hidden_size,
            "num_layers": c.num_layers,
            "batch_first": True,
            # torch warns (and ignores it) for a single layer.
            "dropout": c.dropout if c.num_layers > 1 else 0.0,
        }

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, feature_size)``, prefix ``mask (B, T)`` -> pooled ``(B, hidden)``."""
        lengths = mask.sum(dim=1).cpu()  # (B,) pack_padded_sequence wants CPU lengths
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, hidden)
        return pool_sequence(seq, mask, self.cfg.pooling)


@register_model("lstm")
class LSTMModel(_TorchRNNModel):
    """Standard stacked LSTM baseline (``torch.nn.LSTM``, packed sequences)."""

    def _make_rnn(self) -> nn.LSTM:
        return nn.LSTM(**self._rnn_kwargs())  # type: ignore[arg-type]


@register_model("rnn")
class RNNModel(_TorchRNNModel):
    """Elman RNN baseline (``torch.nn.RNN`` with tanh, packed sequences)."""

    def _make_rnn(self) -> nn.RNN:
        return nn.RNN(nonlinearity="tanh", **self._rnn_kwargs())  # type: ignore[arg-type]
