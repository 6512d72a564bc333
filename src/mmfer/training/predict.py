"""Class probabilities of a trained network (eval mode, no autograd, batched)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmfer.errors import ConfigError, DataError

__all__ = ["predict"]


def predict(
    model: nn.Module,
    data_x: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities of ``model`` in eval mode, without autograd.

    Parameters
    ----------
    model
        ``forward(x (B, T, F), mask (B, T)) -> logits (B, C)``.
    data_x
        ``(N, T, F)`` features.
    mask
        ``(N, T)`` bool, True = valid step.
    batch_size
        Rows per forward pass.
    device
        Defaults to the device of the model's first parameter (CPU if none).

    Returns
    -------
    np.ndarray
        ``(N, C)`` float32 softmax probabilities.
    """
    if batch_size < 1:
        raise ConfigError(f"predict: batch_size must be >= 1, got {batch_size}")
    x = torch.as_tensor(data_x, dtype=torch.float32)  # (N, T, F)
    m = torch.as_tensor(mask).to(torch.bool)  # (N, T)
    if x.ndim != 3 or tuple(m.shape) != tuple(x.shape[:2]):
        raise DataError(
            None, f"predict: x {tuple(x.shape)} must be (N, T, F) with mask (N, T), got {tuple(m.shape)}"
        )
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, x.shape[0], batch_size):
                xb = x[start : start + batch_size].to(device)  # (B, T, F)
                mb = m[start : start + batch_size].to(device)  # (B, T)
                out.append(torch.softmax(model(xb, mb).float(), dim=-1).cpu())  # (B, C)
    finally:
        model.train(was_training)
    if not out:
        raise DataError(None, "predict: no rows to predict")
    return torch.cat(out).numpy()
