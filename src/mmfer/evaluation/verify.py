"""An audit that verifies: the outer test rows provably do not influence what is fitted.

The leakage audit (:mod:`mmfer.evaluation.audit`) counts the ids each component
*says* it was fitted on; a component that records the training ids but reads
more rows passes it. This module checks by intervention instead: every outer
fold is fitted twice on the same table, once as is and once with that fold's
test rows' features replaced by noise (or NaN), and the chosen settings, the
Fuser state and the model parameters must be bit-identical (compared as SHA-256
digests, collected through the ``on_fold_fit`` hook of
:func:`mmfer.pipeline.run_fold`, i.e. after fitting and before any prediction).

Example
-------
>>> result = verify_folds(table, feats, cfg, model_name="logreg", modalities=["audio"])
>>> result.raise_if_failed()
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mmfer.errors import MmferError

if TYPE_CHECKING:
    from mmfer.config import ExperimentConfig
    from mmfer.recognizer import Recognizer

__all__ = [
    "FoldCheck",
    "TestInfluenceError",
    "VerifyResult",
    "fit_digests",
    "perturb_rows",
    "verify_folds",
]

Perturbation = Literal["noise", "nan"]


class TestInfluenceError(MmferError, AssertionError):
    """Changing a fold's test rows changed what was fitted on that fold."""

    __test__ = False  # not a pytest test class despite the name


def _digest(obj: Any) -> str:
    """SHA-256 of JSON-able data with arrays/tensors hashed by dtype, shape and raw bytes."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray):
            a = np.ascontiguousarray(x)
            h.update(f"nd{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(x, dict):
            h.update(b"{")
            for k in sorted(x, key=str):
                h.update(json.dumps(str(k)).encode())
                feed(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(json.dumps(x, default=repr, sort_keys=True).encode())

    feed(obj)
    return h.hexdigest()


def fit_digests(settings: dict[str, Any], recognizer: Recognizer) -> dict[str, str]:
    """Digests of what one outer fold fitted: chosen settings, Fuser state, model parameters.

    Parameters
    ----------
    settings
        As passed to ``on_fold_fit`` (``{"params": ..., "inner_accuracy": ..., ...}``).
    recognizer
        The fold's fitted recogniser.

    Returns
    -------
    dict[str, str]
        ``{"settings", "fuser", "model"}`` -> SHA-256 hex digest. ``model`` covers the
        estimator's parameters and its state arrays (a network's ``state_dict``, a linear
        model's coefficients) and metadata.
    """
    arrays, meta = recognizer.estimator.state()
    return {
        "settings": _digest(settings),
        "fuser": _digest(recognizer.fuser.get_state()),
        "model": _digest({"params": recognizer.estimator.get_params(), "arrays": arrays, "meta": meta}),
    }


def _perturb_one(f: Any, rng: np.random.Generator, how: Perturbation) -> Any:
    """A copy of one sample's features with every array replaced (same shape) and new text."""

    def arr(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        if how == "nan":
            return np.full(a.shape, np.nan, dtype=a.dtype)
        return (rng.normal(size=a.shape) * 10.0 + 5.0).astype(a.dtype)

    changes: dict[str, Any] = {}
    for name in ("face", "audio", "text_emb"):
        if hasattr(f, name):
            changes[name] = arr(getattr(f, name))
    if getattr(f, "text", None) is not None:
        changes["text"] = " ".join(f"zq{int(v)}" for v in rng.integers(0, 50, size=8))
    return replace(f, **changes)


def perturb_rows(
    feats: dict[str, Any], ids: list[str], *, how: Perturbation = "noise", seed: int = 0
) -> dict[str, Any]:
    """A copy of ``feats`` whose samples ``ids`` have noise/NaN features and nonsense text.

    Parameters
    ----------
    feats
        Sample id -> features (dataclass instances with ``face``, ``audio``, ``text``, ...).
    ids
        Samples to perturb; every other entry is shared, not copied.
    how
        ``noise`` (large Gaussian noise of the same shape) or ``nan``.
    seed
        Seeds the noise.
    """
    rng = np.random.default_rng(seed)
    out = dict(feats)
    for i in ids:
        out[i] = _perturb_one(feats[i], rng, how)
    return out


def _perturb_labels(table: pd.DataFrame, rows: np.ndarray, labels: list[str], seed: int) -> pd.DataFrame:
    """A copy of ``table`` with random emotions (from ``labels``) on ``rows``."""
    rng = np.random.default_rng(seed)
    out = table.copy()
    col = out.columns.get_loc("emotion")
    out.iloc[rows, col] = rng.choice(labels, size=len(rows))
    return out


@dataclass
class FoldCheck:
    """One outer fold fitted twice: digests as is (``original``) and with its test rows perturbed."""

    fold: int
    original: dict[str, str]
    perturbed: dict[str, str]

    @property
    def differs(self) -> list[str]:
        """Which of ``settings``, ``fuser``, ``model`` changed (empty = test rows had no influence)."""
        return [k for k in self.original if self.original[k] != self.perturbed.get(k)]


@dataclass
class VerifyResult:
    """Fold-by-fold outcome of :func:`verify_folds`."""

    folds: list[FoldCheck]
    how: str
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not f.differs for f in self.folds)

    def lines(self) -> list[str]:
        """One line per fold (report-ready)."""
        out = []
        for f in self.folds:
            verdict = "identical" if not f.differs else "CHANGED: " + ", ".join(f.differs)
            out.append(f"fold {f.fold + 1}: test rows -> {self.how}: settings/fuser/model {verdict}")
        return out

    def raise_if_failed(self) -> None:
        """Raise :class:`TestInfluenceError` naming the folds and parts that changed."""
        if not self.ok:
            bad = "; ".join(f"fold {f.fold + 1}: {', '.join(f.differs)}" for f in self.folds if f.differs)
            raise TestInfluenceError(
                f"outer test rows influenced what was fitted ({self.how} in the test rows changed {bad})"
            )


def verify_folds(
    table: pd.DataFrame,
    feats: dict[str, Any],
    cfg: ExperimentConfig,
    *,
    model_name: str,
    modalities: list[str],
    protocol: str | None = None,
    how: Perturbation = "noise",
    labels_too: bool = True,
    folds: list[int] | None = None,
    seed: int = 12345,
) -> VerifyResult:
    """Fit every outer fold twice and compare digests of what was fitted.

    Per fold ``k``: run :func:`mmfer.pipeline.run_fold` (selection + fit, no scoring)
    on ``feats``, then again with fold ``k``'s test rows perturbed (:func:`perturb_rows`;
    with ``labels_too`` their emotions are also redrawn at random); the chosen settings,
    Fuser state and model parameters (:func:`fit_digests`, from the ``on_fold_fit`` hook)
    must be bit-identical. Only the test rows of the fold under check change, so the
    training rows (and the splits) stay the same.

    Parameters
    ----------
    table, feats, cfg, model_name, modalities, protocol
        As for :func:`mmfer.pipeline.cross_validate`.
    how
        ``noise`` or ``nan`` in the perturbed rows.
    labels_too
        Also redraw the perturbed rows' labels.
    folds
        0-based folds to check (default: all).
    seed
        Seeds the perturbation.

    Returns
    -------
    VerifyResult
        ``ok`` when nothing changed; :meth:`VerifyResult.raise_if_failed` to assert.
    """
    from mmfer.pipeline import prepare_cv, run_fold

    setup, splits = prepare_cv(
        table, feats, cfg, model_name=model_name, modalities=modalities, protocol=protocol
    )
    ids = table["id"].astype(str).to_numpy()
    checks: list[FoldCheck] = []
    for k, (tr, te) in enumerate(splits):
        if folds is not None and k not in folds:
            continue
        got: list[dict[str, str]] = []

        def hook(
            fold: int, settings: dict[str, Any], rec: Recognizer, got: list[dict[str, str]] = got
        ) -> None:
            got.append(fit_digests(settings, rec))

        run_fold(setup, feats, k, tr, te, on_fold_fit=hook, score=False)
        bad_feats = perturb_rows(feats, ids[te].tolist(), how=how, seed=seed + k)
        bad_setup = setup
        if labels_too:
            bad_setup = replace(setup, table=_perturb_labels(table, te, setup.labels, seed + k))
        run_fold(bad_setup, bad_feats, k, tr, te, on_fold_fit=hook, score=False)
        checks.append(FoldCheck(k, got[0], got[1]))
    return VerifyResult(checks, how + (" + random labels" if labels_too else ""))
