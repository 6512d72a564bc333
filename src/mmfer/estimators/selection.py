"""Nested model selection: candidates drawn from an estimator's declared space, scored on inner splits.

The caller supplies the scoring function (fit on the inner-training rows, score
on the inner-validation rows, both taken from the outer *training* rows only);
this module only decides which candidates are tried and which one wins, so it
can never see an outer test row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfer.errors import ConfigError

__all__ = ["Selection", "candidate_grid", "select"]


@dataclass
class Selection:
    """Outcome of one inner selection.

    Attributes
    ----------
    params
        The chosen candidate (``{}`` when there was nothing to choose).
    candidates
        Every candidate tried, in order.
    scores
        Mean inner-validation accuracy of each candidate.
    inner_folds
        Number of inner splits each candidate was scored on.
    """

    params: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    inner_folds: int = 0

    @property
    def best_score(self) -> float | None:
        return max(self.scores) if self.scores else None


def candidate_grid(space: dict[str, list[Any]], budget: int, seed: int = 0) -> list[dict[str, Any]]:
    """At most ``budget`` candidates from the product of ``space``.

    The whole grid when it fits the budget; for a single parameter, values
    evenly spread over its sorted list; otherwise a seeded random draw without
    replacement. Every estimator thus gets the same number of tries.

    Raises
    ------
    ConfigError
        ``budget < 1`` or an empty value list.
    """
    if budget < 1:
        raise ConfigError(f"eval.select_budget must be >= 1, got {budget}")
    if not space:
        return [{}]
    for k, v in space.items():
        if not v:
            raise ConfigError(f"search space of {k!r} is empty")
    keys = sorted(space)
    combos = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(space[k] for k in keys))]
    if len(combos) <= budget:
        return combos
    if len(keys) == 1:
        idx = np.unique(np.round(np.linspace(0, len(combos) - 1, budget)).astype(int))
        return [combos[i] for i in idx]
    idx = np.sort(np.random.default_rng(seed).choice(len(combos), size=budget, replace=False))
    return [combos[i] for i in idx]


def select(candidates: list[dict[str, Any]], score: Callable[[dict[str, Any]], float]) -> Selection:
    """Score every candidate with ``score`` (higher is better); ties go to the earlier one."""
    if not candidates:
        raise ConfigError("no candidates to select from")
    if len(candidates) == 1:
        return Selection(params=dict(candidates[0]), candidates=[dict(candidates[0])], scores=[])
    scores = [float(score(c)) for c in candidates]
    best = int(np.argmax(scores))
    return Selection(params=dict(candidates[best]), candidates=[dict(c) for c in candidates], scores=scores)
