"""Model contract, registry helpers and masking utilities shared by every model.

Every recognition model is an :class:`EmotionModel` registered under a name in
:data:`mmfer.registry.MODELS` and built with :func:`create_model` (timm style)::

    model = create_model("rmlstm", in_features=1400, num_classes=8, hidden_size=64)
    logits = model(x, mask)  # x (B, T, F) float, mask (B, T) bool -> (B, C)

Padding never changes a sample's output: :meth:`EmotionModel.forward_features`
first moves each sample's valid steps to the front (keeping their order), drops
the columns nobody uses and zeroes what is left of the padding, so every model
sees prefix-form masks ``mask[b, t] == (t < length[b])`` and only has to pool
over valid steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from mmfer.config import ModelConfig, from_dict
from mmfer.errors import ConfigError, DataError
from mmfer.models.layer_mix import AUTO, LayerMix, layer_span
from mmfer.registry import MODELS

__all__ = [
    "EmotionModel",
    "compact_valid",
    "create_model",
    "list_models",
    "pool_sequence",
    "register_model",
]

M = TypeVar("M", bound=type)

_POOLINGS = ("mean", "last")


def register_model(name: str | None = None) -> Callable[[M], M]:
    """Register an :class:`EmotionModel` subclass in :data:`mmfer.registry.MODELS`.

    Parameters
    ----------
    name
        Registry name (case-insensitive); default: the class name lower-cased.
    """
    return MODELS.register(name)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return MODELS.names()


def create_model(
    name: str,
    *,
    in_features: int,
    num_classes: int,
    cfg: ModelConfig | None = None,
    **overrides: Any,
) -> EmotionModel:
    """Build the registered model ``name``.

    Parameters
    ----------
    name
        Registered model name (see :func:`list_models`).
    in_features
        Size F of the fused input features ``x (B, T, F)``.
    num_classes
        Number C of emotion classes (logits per sample).
    cfg
        Hyper-parameters; default :class:`~mmfer.config.ModelConfig`. Its ``name``
        is replaced by ``name`` so the stored config says what was built.
    **overrides
        :class:`~mmfer.config.ModelConfig` fields to replace, e.g. ``hidden_size=64``.

    Returns
    -------
    EmotionModel
        A freshly initialised model in training mode.

    Raises
    ------
    ConfigError
        Unknown model name (the message lists the valid ones), unknown override
        key, or an invalid value.
    """
    cls = MODELS.get(name)
    cfg = cfg if cfg is not None else ModelConfig()
    valid = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - (valid - {"name"}))
    if unknown:
        raise ConfigError(
            f"unknown model option {unknown[0]!r} for model {name!r}; valid options: "
            f"{', '.join(sorted(valid - {'name'}))} (the model name is the first argument)"
        )
    cfg = dataclasses.replace(cfg, **overrides, name=name.lower())
    return cls(in_features=in_features, num_classes=num_classes, cfg=cfg)


def compact_valid(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move each sample's valid steps to the front and trim unused columns.

    Parameters
    ----------
    x
        ``(B, T, F)`` sequence.
    mask
        ``(B, T)`` bool, True = valid step; every row needs at least one True.

    Returns
    -------
    x
        ``(B, T', F)`` with ``T' = max(lengths)``; valid steps first in their
        original order, padding zeroed (so NaN/inf padding cannot leak).
    mask
        ``(B, T')`` prefix-form mask ``t < length[b]``.
    """
    if bool(mask.all()):
        return x, mask  # nothing padded: skip the gather copy
    lengths = mask.sum(dim=1)  # (B,)
    steps = int(lengths.max())
    # A stable sort on "is padding" keeps valid steps in order ahead of padding.
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :steps]  # (B, T')
    x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, T', F)
    new_mask = torch.arange(steps, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T')
    x = x.masked_fill(~new_mask.unsqueeze(-1), 0.0)
    return x, new_mask


def pool_sequence(seq: Tensor, mask: Tensor, how: str) -> Tensor:
    """Pool a sequence over its valid steps.

    Parameters
    ----------
    seq
        ``(B, T, H)`` per-step outputs.
    mask
        ``(B, T)`` bool, True = valid; at least one True per row.
    how
        ``mean`` (average of valid steps) or ``last`` (last valid step).

    Returns
    -------
    Tensor
        ``(B, H)``.
    """
    if how == "mean":
        # masked_fill rather than multiply: 0 * NaN from a padded step would still be NaN.
        summed = seq.masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1)  # (B, H)
        return summed / mask.sum(dim=1, keepdim=True).clamp_min(1).to(seq.dtype)
    if how == "last":
        steps = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # (B, T)
        last = torch.where(mask, steps, -1).amax(dim=1)  # (B,)
        return seq[torch.arange(seq.shape[0], device=seq.device), last]  # (B, H)
    raise ConfigError(f"model.pooling: {how!r} is not one of {list(_POOLINGS)}")


class EmotionModel(nn.Module):
    """Base class of the recognition models: encoder + pooled features + linear head.

    Subclasses build their encoder on ``self.feature_size`` inputs per step,
    call :meth:`_build_head` with their pooled feature size and implement
    :meth:`encode`.

    Parameters
    ----------
    in_features
        Size F of the fused input features.
    num_classes
        Number C of classes.
    cfg
        Hyper-parameters (types and ranges are checked here).

    Attributes
    ----------
    cfg : ModelConfig
        The effective configuration (after any model-specific forcing).
    feature_size : int
        Per-step size entering the encoder (``cfg.input_proj`` or F).
    num_features : int
        Size H of :meth:`forward_features` output.
    """

    #: Smallest ``cfg.num_layers`` the model accepts.
    min_layers: int = 1

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else ModelConfig()
        self.cfg = self.check_config(cfg)
        for key, value in (("in_features", in_features), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{type(self).__name__}: {key} must be a positive integer, got {value!r}")
        self.in_features = in_features
        self.num_classes = num_classes
        # the layer mix sits in front of the projection, so one place serves every network
        self.layer_mix = self._build_layer_mix(in_features)
        mixed = in_features if self.layer_mix is None else self.layer_mix.out_features
        self.input_proj: nn.Module
        if self.cfg.input_proj > 0:
            # LayerNorm tames the very different scales of the fused modalities.
            self.input_proj = nn.Sequential(
                nn.Linear(mixed, self.cfg.input_proj), nn.LayerNorm(self.cfg.input_proj)
            )
            self.feature_size = self.cfg.input_proj
        else:
            self.input_proj = nn.Identity()
            self.feature_size = mixed
        self.num_features = 0
        self.head_drop = nn.Dropout(self.cfg.dropout)
        self.head: nn.Linear | None = None

    # ------------------------------------------------------------------ config

    def check_config(self, cfg: ModelConfig) -> ModelConfig:
        """Check types and ranges of ``cfg``; return a (re-typed) copy.

        Raises
        ------
        ConfigError
            Naming the ``model.<key>`` at fault.
        """
        cfg = from_dict(ModelConfig, dataclasses.asdict(cfg), prefix="model.")
        checks = (
            ("hidden_size", cfg.hidden_size >= 1, ">= 1"),
            ("num_layers", cfg.num_layers >= self.min_layers, f">= {self.min_layers}"),
            ("dropout", 0.0 <= cfg.dropout < 1.0, "in [0, 1)"),
            ("mogrify_rounds", cfg.mogrify_rounds >= 0, ">= 0"),
            ("mogrify_rank", cfg.mogrify_rank >= 0, ">= 0"),
            ("num_heads", cfg.num_heads >= 1, ">= 1"),
            ("ff_size", cfg.ff_size >= 1, ">= 1"),
            ("input_proj", cfg.input_proj >= 0, ">= 0"),
            ("layer_mix", cfg.layer_mix >= AUTO, f">= {AUTO} ({AUTO} = every layer of the audio view)"),
            ("layer_mix_span", len(cfg.layer_mix_span) in (0, 4), "empty or [start, stop, stats, layers]"),
        )
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"model.{key} must be {rule}, got {getattr(cfg, key)!r} ({cfg.name})")
        return cfg

    def _build_layer_mix(self, in_features: int) -> LayerMix | None:
        """The learned layer weighting of ``cfg.layer_mix`` (None when off or a single layer).

        Raises
        ------
        ConfigError
            The span does not divide into the requested layer blocks (see :func:`layer_span`).
        """
        c = self.cfg
        if c.layer_mix == 0:
            return None
        span = list(c.layer_mix_span) or layer_span(c.layer_mix, in_features)
        if c.layer_mix not in (AUTO, span[3]):
            raise ConfigError(f"model.layer_mix={c.layer_mix} disagrees with model.layer_mix_span={span}")
        return LayerMix(span, in_features) if span[3] > 1 else None

    def layer_weights(self) -> Tensor | None:
        """``(L,)`` learned softmax layer weights (detached, sum to 1), or None without a layer mix."""
        return None if self.layer_mix is None else self.layer_mix.weights().detach()

    def project(self, x: Tensor) -> Tensor:
        """``x (B, T, F)`` -> ``(B, T, feature_size)``: layer mix (if any), then the input projection."""
        if self.layer_mix is not None:
            x = self.layer_mix(x)
        return self.input_proj(x)

    def _build_head(self, num_features: int) -> None:
        """Create the classifier for pooled features of size ``num_features``."""
        self.num_features = num_features
        self.head = nn.Linear(num_features, self.num_classes)

    # ----------------------------------------------------------------- forward

    def _check_input(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Validate ``x (B, T, F)`` / ``mask (B, T)``; default mask = all valid."""
        if x.dim() != 3 or x.shape[-1] != self.in_features or not x.is_floating_point():
            raise DataError(
                None,
                f"{type(self).__name__} expects float input of shape (batch, time, {self.in_features}), "
                f"got {x.dtype} {tuple(x.shape)}",
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise DataError(None, f"empty input batch of shape {tuple(x.shape)}")
        if mask is None:
            return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if mask.shape != x.shape[:2]:
            raise DataError(None, f"mask shape {tuple(mask.shape)} does not match input {tuple(x.shape[:2])}")
        mask = mask.to(device=x.device, dtype=torch.bool)
        empty = (~mask.any(dim=1)).nonzero().flatten()
        if len(empty):
            raise DataError(None, f"sample(s) {empty.tolist()} of the batch have no valid time step")
        return x, mask

    def forward_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode and pool a batch.

        Parameters
        ----------
        x
            ``(B, T, F)`` fused features.
        mask
            ``(B, T)`` bool, True = valid step; ``None`` = all valid. Invalid
            steps may hold anything (even NaN): they never reach the encoder.

        Returns
        -------
        Tensor
            ``(B, H)`` pooled features, ``H = self.num_features``.

        Raises
        ------
        DataError
            Wrong shapes/dtype or a sample with no valid step.
        """
        x, mask = self._check_input(x, mask)
        x, mask = compact_valid(x, mask)  # (B, T', F), prefix-form (B, T')
        x = self.project(x)  # (B, T', feature_size)
        return self.encode(x, mask)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Model-specific encoder: ``x (B, T, feature_size)``, prefix mask ``(B, T)`` -> ``(B, H)``."""
        raise NotImplementedError

    def forward_head(self, h: Tensor) -> Tensor:
        """Logits ``(B, C)`` from pooled features ``h (B, H)`` (dropout + linear)."""
        if self.head is None:  # pragma: no cover - subclass bug
            raise RuntimeError(f"{type(self).__name__} did not call _build_head()")
        return self.head(self.head_drop(h))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, C)`` for ``x (B, T, F)`` and ``mask (B, T)`` (see :meth:`forward_features`)."""
        return self.forward_head(self.forward_features(x, mask))

    def extra_repr(self) -> str:
        return f"name={self.cfg.name!r}, in_features={self.in_features}, num_classes={self.num_classes}"
