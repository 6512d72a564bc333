"""Predictions as text: JSON, CSV and the aligned table of ``mmfer predict``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from mmfer.inference.types import Prediction, without_path

__all__ = ["to_csv", "to_json", "to_table"]


def to_json(preds: Sequence[Prediction], *, indent: int | None = 2) -> str:
    """Predictions as a JSON array of objects (every :class:`Prediction` field)."""
    return json.dumps([p.to_dict() for p in preds], indent=indent, ensure_ascii=False)


def _labels_of(preds: Sequence[Prediction]) -> list[str]:
    labels: dict[str, None] = {}
    for p in preds:
        labels.update(dict.fromkeys(p.probabilities))
    return list(labels)


def _missing_text(p: Prediction) -> str:
    return "; ".join(f"{m}: {r}" for m, r in p.modalities_missing.items())


def to_csv(preds: Sequence[Prediction]) -> str:
    """Predictions as CSV: ``path, label, confidence, partial, modalities_used,
    modalities_missing, error`` then one ``p_<label>`` column per emotion."""
    labels = _labels_of(preds)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "path",
            "label",
            "confidence",
            "partial",
            "modalities_used",
            "modalities_missing",
            "error",
            *(f"p_{lab}" for lab in labels),
        ]
    )
    for p in preds:
        conf = "" if p.confidence is None else f"{p.confidence:.6f}"
        probs = [f"{p.probabilities[lab]:.6f}" if lab in p.probabilities else "" for lab in labels]
        w.writerow(
            [
                p.path,
                p.label or "",
                conf,
                str(p.partial).lower(),
                "+".join(p.modalities_used),
                _missing_text(p),
                p.error or "",
                *probs,
            ]
        )
    return buf.getvalue()


def to_table(preds: Sequence[Prediction], *, top: int = 3) -> str:
    """Human-readable aligned table: file, label, top-``top`` probabilities, modalities, notes."""
    header = ("FILE", "LABEL", "PROBABILITIES", "MODALITIES", "NOTES")
    rows: list[tuple[str, ...]] = []
    for p in preds:
        name = p.path if len(p.path) <= 60 else "..." + p.path[-57:]
        if p.error is not None:
            rows.append((name, "-", "-", "-", f"ERROR: {without_path(p.error, p.path)}"))
            continue
        best = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:top]
        probs = " ".join(f"{lab}={v:.2f}" for lab, v in best)
        notes = []
        if p.partial:
            notes.append("partial (" + _missing_text(p) + ")")
        if p.modalities_ignored:
            notes.append("unused: " + "+".join(p.modalities_ignored))
        rows.append((name, p.label or "-", probs, "+".join(p.modalities_used), "; ".join(notes)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines) + "\n"
