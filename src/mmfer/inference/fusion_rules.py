"""The arithmetic of decision-level fusion, and its calibration on labelled clips.

Used by :mod:`mmfer.inference.compose` (which re-exports :class:`Part`,
:func:`default_label_map` and :func:`fuse_scores`); everything here works on
probabilities already predicted, so it is tested without any model.

- :func:`fuse_scores`: one input's part probabilities -> fused probabilities (see the
  :mod:`~mmfer.inference.compose` docstring for the rule: a class a part does not know
  gets that part's mean score; each part's probabilities are first sharpened or
  softened by its temperature, ``p_T ∝ p^(1/T)``, T = 1 leaving them as they are).
- :func:`fit_weight_grid`: part weights on a simplex grid, maximising the mean
  log-likelihood of the true class.
- :func:`fit_temperature_grid`: one temperature per part, minimising the negative
  log-likelihood (NLL) of the fused prediction, by coordinate descent over a
  log-spaced grid (T = 1 is on the grid, so the NLL never gets worse than before).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError

__all__ = [
    "MODES",
    "TEMPERATURE_GRID",
    "Part",
    "default_label_map",
    "fit_temperature_grid",
    "fit_weight_grid",
    "fuse_scores",
    "mean_log_likelihood",
]

MODES = ("log", "prob")
FLOOR = 1e-6  # probability floor before log: a part's hard zero must not veto a class outright
#: Candidate temperatures of :func:`fit_temperature_grid` (log-spaced, 1 included).
TEMPERATURE_GRID: tuple[float, ...] = (*(float(t) for t in np.round(np.geomspace(0.25, 8.0, 16), 4)), 1.0)

#: ``(C_p,)`` probabilities of each part for one input (``None`` = the part could not predict it).
PartProbs = Sequence[np.ndarray | None]


@dataclass
class Part:
    """One checkpoint inside a composed model.

    Attributes
    ----------
    name
        Short name (``face``, ``voice``), used in notes and ``--about``.
    predictor
        The loaded checkpoint (:class:`~mmfer.inference.predictor.Predictor` or a subclass).
    label_map
        Part label -> common label (``None`` = the part's class is ignored).
    weight
        Non-negative weight in the fusion.
    about
        Free-form description (training data, protocol-honest accuracy, licence).
    temperature
        > 0: the part's probabilities become ``p^(1/T)``, renormalised, before fusion
        (1 = unchanged; > 1 softer, < 1 sharper).
    """

    name: str
    predictor: Any
    label_map: dict[str, str | None]
    weight: float = 1.0
    about: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0

    def common_index(self, labels: Sequence[str]) -> list[tuple[int, int]]:
        """``(part column, common column)`` pairs of the classes this part knows."""
        pos = {lab: i for i, lab in enumerate(labels)}
        out = []
        for j, lab in enumerate(self.predictor.labels):
            target = self.label_map.get(lab, lab)
            if target is not None and target in pos:
                out.append((j, pos[target]))
        return out


def default_label_map(
    labels: Iterable[str], overrides: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """Canonical name of each label, with ``overrides`` (label -> common label or ``None``) applied."""
    overrides = dict(overrides or {})
    out: dict[str, str | None] = {}
    for lab in labels:
        out[lab] = overrides[lab] if lab in overrides else canonical_emotion(lab, source="label map")
    return out


def _tempered(q: np.ndarray, temperature: float) -> np.ndarray:
    """``(C_p,)`` probabilities to the power ``1/T``, renormalised (returned as is for T = 1)."""
    if temperature == 1.0:
        return q
    lq = np.log(np.maximum(q, FLOOR)) / temperature  # (C_p,)
    z = np.exp(lq - lq.max())
    return z / z.sum()


def fuse_scores(
    probs: PartProbs, parts: Sequence[Part], labels: Sequence[str], mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decision-level fusion of one input's part probabilities.

    Parameters
    ----------
    probs
        Per part: ``(C_p,)`` probabilities over the part's labels, or ``None`` when the
        part could not predict this input.
    parts, labels
        The parts and the common label list (``C`` labels).
    mode
        ``"log"`` or ``"prob"`` (see the :mod:`~mmfer.inference.compose` docstring).

    Returns
    -------
    p : numpy.ndarray
        ``(C,)`` fused probabilities (0 for classes no usable part knows).
    known : numpy.ndarray
        ``(C,)`` bool, some usable part knows the class.
    """
    c = len(labels)
    num = np.zeros(c)  # (C,) weighted sum of (log-)probabilities, neutral where unknown
    den = 0.0  # sum of the weights of the usable parts (the same for every class)
    known = np.zeros(c, dtype=bool)  # (C,) some usable part knows the class
    for q, part in zip(probs, parts, strict=True):
        if q is None or part.weight <= 0:
            continue
        pairs = part.common_index(labels)
        if not pairs:
            continue
        cols = [j for j, _ in pairs]
        qt = _tempered(np.asarray(q, dtype=np.float64), float(part.temperature))  # (C_p,)
        v = qt[cols]  # (C_p',) the part's known classes
        v = np.log(np.maximum(v, FLOOR)) if mode == "log" else v
        # a class this part does not know: its average score, i.e. no evidence either way
        row = np.full(c, v.mean())  # (C,)
        row[[k for _, k in pairs]] = v
        num += part.weight * row
        den += part.weight
        known[[k for _, k in pairs]] = True
    p = np.zeros(c)
    if not known.any():
        return p, known
    score = num[known] / den
    if mode == "log":
        z = np.exp(score - score.max())
        p[known] = z / z.sum()
    else:
        total = score.sum()
        p[known] = score / total if total > 0 else 1.0 / known.sum()
    return p, known


def mean_log_likelihood(
    probs: Sequence[PartProbs], y: Sequence[str], parts: Sequence[Part], labels: Sequence[str], mode: str
) -> tuple[float, float, int]:
    """Mean log-probability of the true class, accuracy and clip count under the parts' current settings.

    Clips whose label no usable part knows are skipped.
    """
    pos = {lab: i for i, lab in enumerate(labels)}
    ll, hits, n = 0.0, 0, 0
    for row, lab in zip(probs, y, strict=True):
        if lab not in pos:
            continue
        p, known = fuse_scores(row, parts, labels, mode)
        if not known[pos[lab]]:
            continue
        n += 1
        ll += float(np.log(max(p[pos[lab]], FLOOR)))
        hits += int(np.argmax(p) == pos[lab])
    return (ll / n if n else float("-inf")), (hits / n if n else 0.0), n


def fit_weight_grid(
    probs: Sequence[PartProbs], y: Sequence[str], parts: Sequence[Part], labels: Sequence[str], mode: str,
    *, grid: int = 10,
) -> dict[str, Any]:  # fmt: skip
    """Best part weights on a simplex grid of step ``1/grid`` (set on ``parts``; ties: most even).

    Returns
    -------
    dict
        ``{"weights": {part: w}, "log_likelihood": float, "accuracy": float}``.

    Raises
    ------
    DataError
        No clip has a label the parts can predict.
    """
    best: tuple[float, float, tuple[float, ...]] | None = None
    best_acc = 0.0
    for combo in itertools.product(range(grid + 1), repeat=len(parts)):
        if sum(combo) != grid:
            continue
        w = tuple(c / grid for c in combo)
        for part, wi in zip(parts, w, strict=True):
            part.weight = wi
        ll, acc, n = mean_log_likelihood(probs, y, parts, labels, mode)
        if n == 0:
            continue
        key = (ll, -float(np.std(w)), w)
        if best is None or key[:2] > best[:2]:
            best, best_acc = key, acc
    if best is None:
        raise DataError(None, "fit_weights: no clip has a label the composed model can predict")
    for part, wi in zip(parts, best[2], strict=True):
        part.weight = wi
    return {"weights": {p.name: p.weight for p in parts}, "log_likelihood": best[0], "accuracy": best_acc}


def fit_temperature_grid(
    probs: Sequence[PartProbs], y: Sequence[str], parts: Sequence[Part], labels: Sequence[str], mode: str,
    *, grid: Sequence[float] = TEMPERATURE_GRID, rounds: int = 3,
) -> dict[str, Any]:  # fmt: skip
    """One temperature per part minimising the fused NLL (coordinate descent; set on ``parts``).

    Starts from the parts' current temperatures; each round tries every grid value for
    each part in turn, keeping a change only if it lowers the NLL, so the result is never
    worse than the start.

    Returns
    -------
    dict
        ``{"temperatures": {part: T}, "nll_before": float, "nll_after": float,
        "accuracy_before": float, "accuracy_after": float, "clips": n}``.

    Raises
    ------
    DataError
        No clip has a label the parts can predict.
    """
    ll0, acc0, n = mean_log_likelihood(probs, y, parts, labels, mode)
    if n == 0:
        raise DataError(None, "fit_temperatures: no clip has a label the composed model can predict")
    best = -ll0
    for _ in range(rounds):
        changed = False
        for part in parts:
            keep = part.temperature
            for t in grid:
                part.temperature = float(t)
                nll = -mean_log_likelihood(probs, y, parts, labels, mode)[0]
                if nll < best - 1e-12:
                    best, keep, changed = nll, float(t), True
            part.temperature = keep
        if not changed:
            break
    _, acc1, _ = mean_log_likelihood(probs, y, parts, labels, mode)
    return {
        "temperatures": {p.name: p.temperature for p in parts},
        "nll_before": -ll0,
        "nll_after": best,
        "accuracy_before": acc0,
        "accuracy_after": acc1,
        "clips": n,
    }
