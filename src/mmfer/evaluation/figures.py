"""Report figures: confusion matrices, per-fold accuracy and training curves as PNG bytes.

Drawn with matplotlib's object API on an explicit Agg canvas (no pyplot, no global
backend state); every title names the corpus and the protocol. Nothing is written
to disk here. matplotlib is imported when the first figure is drawn, not with this
module.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmfer.evaluation.results import ReportData, RunResult, corpus_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

__all__ = ["Figure", "fig_confusion", "fig_fold_accuracy", "fig_training"]

_FIG_DPI = 100
#: Above this many folds the training-curve legend stops naming each fold.
_MAX_LEGEND_FOLDS = 8


@dataclass
class Figure:
    """One PNG of the report: its file name, the caption (naming corpus and protocol) and the bytes."""

    filename: str
    caption: str
    png: bytes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def _new_figure(figsize: tuple[float, float]) -> MplFigure:
    """An empty matplotlib figure (matplotlib imported here, on first use)."""
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=figsize)


def _render(fig: MplFigure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # Agg canvas explicitly: no pyplot, no global backend state
    buf = io.BytesIO()
    # No "Software" tag: keeps the PNG free of the matplotlib URL and byte-stable across versions.
    fig.savefig(buf, format="png", dpi=_FIG_DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _wrap(title: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(title, width))


def fig_confusion(r: RunResult, data: ReportData) -> Figure:
    """Row-normalised confusion matrix (%) of one run's predictions pooled over folds."""
    c = len(r.labels)
    cm = np.zeros((c, c), dtype=np.float64)  # (true, pred)
    np.add.at(cm, (np.asarray(r.y_true, dtype=np.int64), np.asarray(r.y_pred, dtype=np.int64)), 1.0)
    rows = cm.sum(axis=1, keepdims=True)  # (C, 1)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)  # empty classes stay 0, no warning
    size = max(4.0, 0.55 * c + 2.5)
    fig = _new_figure((size + 1.0, size))
    ax = fig.add_subplot()
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(c), r.labels, rotation=45, ha="right")
    ax.set_yticks(range(c), r.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                f"{norm[i, j] * 100:.0f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    title = (
        f"Confusion (row-normalised %, pooled over folds): {r.name} — corpus {corpus_label(data)} — "
        f"protocol: {data.protocol}"
    )
    ax.set_title(_wrap(title, 60), fontsize=9)
    return Figure(f"confusion_{_slug(r.model)}_{_slug(r.modality_text)}.png", title, _render(fig))


def fig_fold_accuracy(runs: Sequence[RunResult], data: ReportData) -> Figure:
    """Accuracy of every fold, one bar per run (all-modality runs)."""
    k = max(len(r.fold_metrics) for r in runs)
    width = 0.8 / len(runs)
    # Capped width: a 24-speaker LOSO must still fit a page; labels rotate instead.
    fig = _new_figure((min(16.0, max(6.0, (0.25 * len(runs) + 0.3) * k + 2)), 4.0))
    ax = fig.add_subplot()
    for j, r in enumerate(runs):
        acc = [m["accuracy"] * 100 for m in r.fold_metrics]  # (k,)
        x = np.arange(len(acc)) + (j - (len(runs) - 1) / 2) * width
        ax.bar(x, acc, width=width, label=r.model)
    ax.set_xticks(range(k), [f"fold {i + 1}" for i in range(k)], rotation=45 if k > 8 else 0)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides bars or ticks
    title = f"Per-fold accuracy (all modalities) — corpus {corpus_label(data)} — protocol: {data.protocol}"
    ax.set_title(_wrap(title, 80), fontsize=9)
    return Figure("fold_accuracy.png", title, _render(fig))


def fig_training(r: RunResult, data: ReportData) -> Figure | None:
    """Training (solid) and validation (dashed) loss per epoch of each fold; None without a history."""
    from matplotlib.ticker import MaxNLocator

    if not any(r.history):
        return None
    fig = _new_figure((7.0, 4.0))
    ax = fig.add_subplot()
    per_fold_legend = len(r.history) <= _MAX_LEGEND_FOLDS
    for i, hist in enumerate(r.history):
        col = f"C{i % 10}"
        epochs = [h.get("epoch", e + 1) for e, h in enumerate(hist)]
        ax.plot(
            epochs,
            [h.get("train_loss", math.nan) for h in hist],
            color=col,
            label=f"fold {i + 1} train" if per_fold_legend else None,
        )
        if any("val_loss" in h for h in hist):
            ax.plot(
                epochs,
                [h.get("val_loss", math.nan) for h in hist],
                color=col,
                linestyle="--",
                label=f"fold {i + 1} val" if per_fold_legend else None,
            )
    if not per_fold_legend:  # too many folds to name: explain the line styles only
        ax.plot([], [], color="grey", label=f"train ({len(r.history)} folds)")
        ax.plot([], [], color="grey", linestyle="--", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncols=2)
    title = (
        f"Training curves, {r.name} (solid train, dashed validation) — corpus {corpus_label(data)} — "
        f"protocol: {data.protocol}"
    )
    ax.set_title(_wrap(title, 80), fontsize=9)
    return Figure(f"training_curves_{_slug(r.model)}.png", title, _render(fig))
