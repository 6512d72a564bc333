"""Nested model selection: candidates drawn from an estimator's declared space, scored on inner splits.

The caller supplies the scoring function (fit on the inner-training rows, score
on the inner-validation rows, both taken from the outer *training* rows only);
this module only decides which candidates are tried and which one wins, so it
can never see an outer test row.

Every estimator gets the same budget (``eval.select_budget`` candidates), but the
spaces differ in size, so the same budget reaches a different share of each: the
draw (:class:`Candidates`) and the outcome (:class:`Selection`) carry how many
configurations were tried out of how many the space holds. Each model draws
with its own seed (:func:`model_seed`: the model name and the fold seed), so two
models with the same space do not try the same settings.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfer.errors import ConfigError

__all__ = ["Candidates", "Selection", "candidate_grid", "model_seed", "select", "space_size"]


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
        Mean inner-validation accuracy of each candidate (empty when a single
        candidate was taken without scoring).
    inner_folds
        Number of inner splits each candidate was scored on.
    space_size
        Number of configurations in the searched space (the product of its value
        lists; 1 for an empty space). ``tried`` of ``space_size`` is the reach.
    """

    params: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    inner_folds: int = 0
    space_size: int = 0

    @property
    def best_score(self) -> float | None:
        """Highest mean inner accuracy, or None when nothing was scored."""
        return max(self.scores) if self.scores else None

    @property
    def tried(self) -> int:
        """Number of configurations tried (the candidates drawn)."""
        return len(self.candidates)

    @property
    def reach(self) -> float:
        """``tried / space_size`` (1.0 when the whole space was tried; 0.0 if unknown)."""
        return self.tried / self.space_size if self.space_size else 0.0


class Candidates(list[dict[str, Any]]):
    """The candidates drawn from one search space: a list of parameter dicts that
    also knows the size of the space they came from and the seed of the draw.

    Parameters
    ----------
    items
        The drawn candidates.
    space_size
        Configurations in the whole space.
    seed
        Seed the draw used (after :func:`model_seed`); None when no random draw was made.
    """

    def __init__(self, items: Iterable[dict[str, Any]] = (), *, space_size: int, seed: int | None) -> None:
        super().__init__(items)
        self.space_size = int(space_size)
        self.seed = seed

    @property
    def tried(self) -> int:
        """Number of candidates drawn."""
        return len(self)


def model_seed(model: str, seed: int) -> int:
    """A draw seed for ``model`` in the fold seeded ``seed``.

    Derived with SHA-256 of ``"<model>:<seed>"`` (not Python's salted ``hash``), so it
    is the same in every run and every process, and differs between models.

    Returns
    -------
    int
        A non-negative 64-bit integer, usable with :func:`numpy.random.default_rng`.
    """
    digest = hashlib.sha256(f"{model.lower()}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def space_size(space: dict[str, list[Any]]) -> int:
    """Number of configurations in ``space`` (product of its value counts; 1 if empty)."""
    return math.prod(len(v) for v in space.values())


def candidate_grid(
    space: dict[str, list[Any]], budget: int, seed: int = 0, *, model: str | None = None
) -> Candidates:
    """At most ``budget`` candidates from the product of ``space``.

    The whole grid when it fits the budget; for a single parameter, values
    evenly spread over its list (seed unused); otherwise a seeded random draw
    without replacement. Every estimator thus gets the same number of tries.

    Parameters
    ----------
    space
        ``{parameter: candidate values}``.
    budget
        Most candidates returned (``eval.select_budget``).
    seed
        The fold's seed.
    model
        Name of the estimator drawing: the draw then uses :func:`model_seed`
        ``(model, seed)``, so every model draws its own candidates. None = ``seed``
        as is (every caller with the same space and seed gets the same draw).

    Returns
    -------
    Candidates
        The candidates (sorted in grid order), with ``space_size`` and ``seed``.

    Raises
    ------
    ConfigError
        ``budget < 1`` or an empty value list.
    """
    if budget < 1:
        raise ConfigError(f"eval.select_budget must be >= 1, got {budget}")
    if not space:
        return Candidates([{}], space_size=1, seed=None)
    for k, v in space.items():
        if not v:
            raise ConfigError(f"search space of {k!r} is empty")
    keys = sorted(space)
    combos = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(space[k] for k in keys))]
    size = len(combos)
    if size <= budget:
        return Candidates(combos, space_size=size, seed=None)
    if len(keys) == 1:
        idx = np.unique(np.round(np.linspace(0, size - 1, budget)).astype(int))
        return Candidates([combos[i] for i in idx], space_size=size, seed=None)
    draw_seed = model_seed(model, seed) if model is not None else int(seed)
    idx = np.sort(np.random.default_rng(draw_seed).choice(size, size=budget, replace=False))
    return Candidates([combos[i] for i in idx], space_size=size, seed=draw_seed)


def select(
    candidates: list[dict[str, Any]],
    score: Callable[[dict[str, Any]], float],
    *,
    space_size: int | None = None,
) -> Selection:
    """Score every candidate with ``score`` (higher is better); ties go to the earlier one.

    Parameters
    ----------
    candidates
        What to try, e.g. from :func:`candidate_grid`.
    score
        ``params -> mean inner accuracy``; not called when there is one candidate.
    space_size
        Size of the space the candidates came from; default: ``candidates.space_size``
        when they are :class:`Candidates`, else ``len(candidates)``.

    Returns
    -------
    Selection
        The winner, every candidate with its score, and the reach (``tried``/``space_size``).

    Raises
    ------
    ConfigError
        No candidates.
    """
    if not candidates:
        raise ConfigError("no candidates to select from")
    if space_size is None:
        space_size = getattr(candidates, "space_size", len(candidates))
    tried = [dict(c) for c in candidates]
    if len(candidates) == 1:
        return Selection(params=dict(candidates[0]), candidates=tried, scores=[], space_size=space_size)
    scores = [float(score(c)) for c in candidates]
    best = int(np.argmax(scores))
    return Selection(params=dict(candidates[best]), candidates=tried, scores=scores, space_size=space_size)
