"""Late fusion: one estimator per modality, combined at the level of class log-probabilities.

Early fusion (the paper's concatenation, every other estimator) lets one model see the
whole fused vector; when one modality is weak or noisy it can pull the fused model below
its best single modality. Late fusion fits a clone of a base estimator on each modality's
own block of the fused vector (:class:`~mmfer.fusion.layout.FusedLayout`), on the training
rows where that modality is present, and combines them per sample over the modalities
that sample has::

    log p(c | x) = sum_m w_m present_m log p_m(c | x_m) + const

``combine="mean"``: ``w_m = 1`` (the average of log-probabilities, up to a temperature).
``combine="learned"`` (default): the weights are fitted on *inner held-out rows of the
training data* (speaker-grouped out-of-fold predictions of heads refitted without those
rows), by minimising the log-loss over ``w >= 0``; then the learned weights, the equal
weights and each single modality alone are compared by their out-of-fold accuracy and
the best is kept. So when fusion does not help on the training speakers the combination
falls back to the best single modality instead of averaging in a worse one. Test rows
are never seen.

Every registered estimator ``<base>`` gets a ``late_<base>`` twin (``late_rmlstm``,
``late_logreg`` ...) whose parameters are the base's parameters plus ``combine`` and
``combine_folds``; its search space is the base's (each head gets the same settings).
A sample missing a modality is predicted from the modalities it has (weights of the
others drop out); a sample whose present modalities all have weight 0 falls back to equal
weights over them, and one with no modality at all gets the training class prior.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmfer.errors import ConfigError
from mmfer.estimators.base import ESTIMATORS, Estimator, create_estimator, named_factory
from mmfer.fusion.layout import FusedLayout

__all__ = ["LateFusionEstimator", "fit_combination"]

_OWN_PARAMS: dict[str, Any] = {"combine": "learned", "combine_folds": 3}
_EPS = 1e-8


def _log_proba(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _EPS, 1.0))


def _combine(logp: np.ndarray, present: np.ndarray, w: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """Combined class log-scores.

    Parameters
    ----------
    logp
        ``(N, M, C)`` per-modality log-probabilities (anything where absent).
    present
        ``(N, M)`` bool, modality present and having a head.
    w
        ``(M,)`` non-negative weights.
    log_prior
        ``(C,)`` used for rows with no present modality.

    Returns
    -------
    np.ndarray
        ``(N, C)`` unnormalised log-scores.
    """
    pw = present * w[None, :]  # (N, M)
    # rows whose present modalities all have weight 0: equal weights over them
    dead = (pw.sum(1) <= 0) & present.any(1)  # (N,)
    pw[dead] = present[dead].astype(np.float64)
    z = np.einsum("nm,nmc->nc", pw, np.where(present[..., None], logp, 0.0))  # (N, C)
    z[~present.any(1)] = log_prior  # no modality at all: the training prior
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)  # (N, C)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_combination(
    logp: np.ndarray, present: np.ndarray, y: np.ndarray, log_prior: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Choose modality weights on held-out (out-of-fold) predictions.

    Parameters
    ----------
    logp
        ``(N, M, C)`` out-of-fold log-probabilities of each modality's head.
    present
        ``(N, M)`` bool, where those predictions exist.
    y
        ``(N,)`` true classes of the held-out rows.
    log_prior
        ``(C,)`` fallback for rows with nothing present.

    Returns
    -------
    weights
        ``(M,)`` the chosen weights.
    scores
        Held-out accuracy of every candidate (``learned``, ``equal``, ``only_<j>``).

    Notes
    -----
    ``learned`` minimises the mean log-loss of the combination over ``w >= 0``
    (L-BFGS-B from equal weights); the candidates are then ranked by held-out accuracy,
    ties going to ``learned`` then ``equal``.
    """
    from scipy.optimize import minimize

    m = logp.shape[1]
    rows = np.arange(len(y))

    def nll(w: np.ndarray) -> float:
        z = _combine(logp, present, np.maximum(w, 0.0), log_prior)  # (N, C)
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[rows, y]))

    res = minimize(nll, np.ones(m), method="L-BFGS-B", bounds=[(0.0, 10.0)] * m)
    cands: dict[str, np.ndarray] = {"learned": np.maximum(res.x, 0.0), "equal": np.ones(m)}
    for j in range(m):
        cands[f"only_{j}"] = np.eye(m)[j]
    scores = {
        k: float(np.mean(_combine(logp, present, w, log_prior).argmax(1) == y)) for k, w in cands.items()
    }
    best = max(scores, key=lambda k: scores[k])  # dict order breaks ties: learned, equal, singles
    return cands[best], scores


def _mean_history(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per-epoch mean of the heads' train/validation losses (one curve for the report)."""
    out = []
    for e in range(max((len(h) for h in histories), default=0)):
        rows = [h[e] for h in histories if len(h) > e]
        entry: dict[str, Any] = {"epoch": e + 1}
        for key in ("train_loss", "val_loss"):
            vals = [r[key] for r in rows if r.get(key) is not None]
            if vals:
                entry[key] = float(np.mean(vals))
        out.append(entry)
    return out


def _group_folds(groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` boolean ``(N,)`` held-out masks over whole groups (fewer if there are fewer groups)."""
    unique = np.random.default_rng(seed).permutation(np.unique(groups))
    k = min(k, len(unique))
    return [np.isin(groups, part) for part in np.array_split(unique, k)]


class LateFusionEstimator(Estimator):
    """Per-modality clones of a base estimator, combined over present modalities.

    Parameters
    ----------
    base
        Registered name of the per-modality estimator (``rmlstm``, ``logreg`` ...).
    **params
        The base's parameters, plus ``combine`` (``learned`` | ``mean``) and
        ``combine_folds`` (inner speaker-grouped folds for learning the weights).

    Attributes
    ----------
    heads_
        Fitted base estimator of each modality that had training rows.
    weights_
        ``{modality: weight}`` of the combination.
    combine_scores_
        Inner held-out accuracy of each candidate combination (``learned`` only).
    """

    search_space: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, base: str, **params: Any) -> None:
        self.base_name = base
        self.name = f"late_{base}"
        self._proto = create_estimator(base)
        clash = set(_OWN_PARAMS) & set(self._proto.params)
        if clash:
            raise ConfigError(f"late fusion: base {base!r} already has parameter(s) {sorted(clash)}")
        super().__init__(**params)
        if self.params["combine"] not in ("learned", "mean"):
            raise ConfigError(
                f"{self.name}: combine must be 'learned' or 'mean', got {self.params['combine']!r}"
            )
        if int(self.params["combine_folds"]) < 2:
            raise ConfigError(f"{self.name}: combine_folds must be >= 2, got {self.params['combine_folds']}")
        # the base's declared grid: every head is fitted with the candidate's settings
        self.search_space = dict(self._proto.search_space)  # type: ignore[misc]
        self.heads_: dict[str, Estimator] = {}
        self.weights_: dict[str, float] = {}
        self.combine_scores_: dict[str, float] = {}
        self.log_prior_ = np.zeros(0)
        self.history: list[dict[str, Any]] = []
        #: Folder for the heads' training logs/checkpoints (``<out_dir>/<modality>``; None = none).
        self.out_dir: str | Path | None = None

    @property
    def base_estimator(self) -> Estimator:
        """An unfitted base estimator with the current base parameters."""
        return self._head()

    def default_params(self) -> dict[str, Any]:
        """The base estimator's parameters plus ``combine`` and ``combine_folds``."""
        return {**self._proto.default_params(), **_OWN_PARAMS}

    def clone(self, **params: Any) -> Estimator:
        """An unfitted late fusion of the same base with ``params`` replaced."""
        return LateFusionEstimator(self.base_name, **{**self.params, **params})

    def _head(self) -> Estimator:
        base = {k: v for k, v in self.params.items() if k not in _OWN_PARAMS}
        if "modality_dropout" in base:
            base["modality_dropout"] = 0.0  # a head sees one modality: nothing to drop
        return self._proto.clone(**base)

    def _fit_heads(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None,
        present: np.ndarray,
        out_dir: str | Path | None,
    ) -> dict[str, Estimator]:
        """One head per modality on its block and its present rows (skipped if < 2 classes there)."""
        layout = self.layout_
        assert layout is not None
        heads: dict[str, Estimator] = {}
        for j, m in enumerate(layout.modalities):
            rows = np.flatnonzero(present[:, j])
            if len(np.unique(y[rows])) < 2:
                continue
            head = self._head()
            if out_dir is not None and hasattr(head, "out_dir"):
                head.out_dir = Path(out_dir) / m  # type: ignore[attr-defined]
            head.fit(
                x[rows][:, :, layout.block(m)],  # (n_m, T, D_m)
                mask[rows],
                y[rows],
                num_classes=self.num_classes_,
                groups=None if groups is None else groups[rows],
                pretrain=self.pretrain_rows_[rows],  # train-only corpus rows, for pretrain_epochs
            )
            heads[m] = head
        return heads

    def _head_logp(
        self, heads: dict[str, Estimator], x: np.ndarray, mask: np.ndarray, present: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(N, M, C)`` log-probabilities of each head on its present rows, ``(N, M)`` where they exist."""
        layout = self.layout_
        assert layout is not None
        n, c = x.shape[0], self.num_classes_
        logp = np.zeros((n, len(layout.modalities), c))  # (N, M, C)
        have = np.zeros((n, len(layout.modalities)), dtype=bool)  # (N, M)
        for j, m in enumerate(layout.modalities):
            rows = np.flatnonzero(present[:, j])
            if m not in heads or len(rows) == 0:
                continue
            p = heads[m].predict_proba(x[rows][:, :, layout.block(m)], mask[rows])  # (n_m, C)
            logp[rows, j] = _log_proba(p)
            have[rows, j] = True
        return logp, have

    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None:
        layout = self.require_layout(x.shape[2], "late fusion")
        present = layout.present(x)  # (N, M)
        counts = np.bincount(y, minlength=self.num_classes_).astype(np.float64) + 1.0  # (C,) smoothed
        self.log_prior_ = np.log(counts / counts.sum())
        mods = layout.modalities
        w = np.ones(len(mods))
        self.combine_scores_ = {}
        trainable = [j for j in range(len(mods)) if len(np.unique(y[present[:, j]])) >= 2]
        if self.params["combine"] == "learned" and len(trainable) >= 2:
            # out-of-fold head predictions on whole held-out speakers of the training rows
            g = groups if groups is not None else np.arange(len(y))
            logp = np.zeros((len(y), len(mods), self.num_classes_))  # (N, M, C)
            have = np.zeros((len(y), len(mods)), dtype=bool)  # (N, M)
            seed = int(self.params.get("seed", 0) or 0)
            for held in _group_folds(g, int(self.params["combine_folds"]), seed):
                fit_rows = np.flatnonzero(~held)
                heads = self._fit_heads(
                    x[fit_rows],
                    mask[fit_rows],
                    y[fit_rows],
                    None if groups is None else groups[fit_rows],
                    present[fit_rows],
                    None,
                )
                lp, hv = self._head_logp(heads, x[held], mask[held], present[held])
                logp[held], have[held] = lp, hv
            w, scores = fit_combination(logp, have, y, self.log_prior_)
            self.combine_scores_ = {
                (k if not k.startswith("only_") else f"only_{mods[int(k[5:])]}"): v for k, v in scores.items()
            }
        self.heads_ = self._fit_heads(x, mask, y, groups, present, self.out_dir)
        self.weights_ = {m: float(w[j]) for j, m in enumerate(mods)}
        self.history = _mean_history([getattr(h, "history", []) for h in self.heads_.values()])

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        layout = self.require_layout(x.shape[2], "late fusion")
        present = layout.present(x)  # (N, M)
        logp, have = self._head_logp(self.heads_, x, mask, present)
        w = np.array([self.weights_.get(m, 0.0) for m in layout.modalities])  # (M,)
        return _softmax(_combine(logp, have, w, self.log_prior_))  # (N, C)

    # ------------------------------------------------------------------ persistence

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Every head's arrays under ``<modality>/``, and the layout, weights and prior."""
        if not self.heads_ or self.layout_ is None:
            raise ConfigError(f"{self.name}: nothing to save before fit")
        arrays: dict[str, np.ndarray] = {}
        heads_meta: dict[str, Any] = {}
        for m, head in self.heads_.items():
            a, meta = head.state()
            arrays |= {f"{m}/{k}": v for k, v in a.items()}
            heads_meta[m] = meta
        return arrays, {
            "num_classes": self.num_classes_,
            "layout": self.layout_.to_dict(),
            "weights": self.weights_,
            "log_prior": self.log_prior_.tolist(),
            "combine_scores": self.combine_scores_,
            "heads": heads_meta,
        }

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Inverse of :meth:`state`."""
        self.num_classes_ = int(meta["num_classes"])
        self.layout_ = FusedLayout.from_dict(meta["layout"])
        self.weights_ = {str(k): float(v) for k, v in meta["weights"].items()}
        self.log_prior_ = np.asarray(meta["log_prior"], dtype=np.float64)
        self.combine_scores_ = dict(meta.get("combine_scores", {}))
        self.heads_ = {}
        for m, head_meta in meta["heads"].items():
            sub = {k[len(m) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{m}/")}
            self.heads_[m] = self._head().load_state(sub, head_meta)
        return self


def _register_all() -> None:
    """Register ``late_<base>`` for every registered estimator but ``majority`` and late ones."""
    # the estimators to wrap register themselves when imported
    import mmfer.estimators.linear
    import mmfer.estimators.neural  # noqa: F401

    for name in ESTIMATORS.names():
        if name.startswith("late_") or name == "majority" or f"late_{name}" in ESTIMATORS:
            continue
        doc = f"Late fusion of per-modality {name!r} estimators."
        ESTIMATORS.register(f"late_{name}")(named_factory(LateFusionEstimator, name, f"late_{name}", doc))


_register_all()
