"""Shared helpers of the real-data benchmarks (``bench_ravdess.py``, ``bench_ckplus.py``).

Both scripts compare RMLSTM (run through :func:`mmfer.pipeline.cross_validate`)
with a scikit-learn baseline fitted on the *same* folds and the *same* cached
per-sample features, under a speaker-independent and a speaker-dependent
protocol, and write a markdown report with the speed figures.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmfer.config import ExperimentConfig, FeatureConfig, dump_config
from mmfer.data.splits import make_splits
from mmfer.emotions import label_order
from mmfer.evaluation.metrics import classification_metrics, format_pm, summarise_folds
from mmfer.features.extract import SampleFeatures, extract_features

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / "runs" / "bench-cache"
RESULTS = REPO / "bench" / "results"

#: Columns of every result table: (header, key path into summarise_folds output).
METRIC_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accuracy", ("accuracy",)),
    ("macro PPV", ("macro", "ppv")),
    ("macro sensitivity", ("macro", "sensitivity")),
    ("macro specificity", ("macro", "specificity")),
    ("macro MCC (OvR)", ("macro", "mcc_ovr")),
)


def set_threads(n: int) -> None:
    """Pin torch (and BLAS) intra-op threads for the whole benchmark.

    On this shared 2-core machine torch's default (2 threads) made the
    EfficientNet forward ~27x slower under load than 1 thread (3.5 s vs
    0.13 s per 224 px image, measured), because OpenMP threads spin waiting
    for a core; one thread gives stable, honest figures.
    """
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def single_modality_overrides() -> list[str]:
    """Config overrides that keep single-modality runs as they were tuned.

    ``fusion.balance`` (scale each modality block by ``1/sqrt(width)``) only
    matters when several modalities are fused; with one it just shrinks the
    input, which the hyper-parameters here were not tuned for. Older configs
    have no such key, hence the check.
    """
    from mmfer.config import FusionConfig

    names = {f.name for f in dataclasses.fields(FusionConfig)}
    return ["fusion.balance=false"] if "balance" in names else []


def require_data(sub: str) -> Path:
    """Return ``DATA / sub`` or exit with a message saying where the corpus is expected."""
    path = DATA / sub
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (expected the shared corpora beside the repository)")
    return path


@dataclass
class CVSummary:
    """Cross-validated figures of one model under one protocol.

    Attributes
    ----------
    name
        Row label, e.g. ``"RMLSTM"``.
    protocol
        Protocol description.
    fold_metrics
        One :func:`classification_metrics` dict per fold.
    train_seconds
        ``(k,)`` wall-clock training time of each fold.
    test_seconds_per_sample
        Mean prediction time per test sample.
    """

    name: str
    protocol: str
    fold_metrics: list[dict[str, Any]]
    train_seconds: list[float]
    test_seconds_per_sample: float
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return summarise_folds(self.fold_metrics)

    def mean(self, path: tuple[str, ...] = ("accuracy",)) -> float:
        node: Any = self.summary
        for k in path:
            node = node[k]
        return float(node["mean"])

    def row(self) -> list[str]:
        """Markdown cells: name, each metric as ``mean ± std`` (percent), train s/fold, test ms/sample."""
        s = self.summary
        cells = [self.name]
        for _, path in METRIC_COLUMNS:
            node: Any = s
            for k in path:
                node = node[k]
            cells.append(format_pm(node["mean"], node["std"]))
        cells.append(f"{np.mean(self.train_seconds):.1f}")
        cells.append(f"{1000 * self.test_seconds_per_sample:.3f}")
        return cells


def markdown_table(rows: list[CVSummary]) -> str:
    """Markdown table of several :class:`CVSummary` (metrics in %, mean ± std over folds)."""
    head = ["model", *(h for h, _ in METRIC_COLUMNS), "train s/fold", "test ms/sample"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.row()) + " |" for r in rows]
    return "\n".join(lines)


def inflation_table(independent: list[CVSummary], dependent: list[CVSummary], who: str) -> str:
    """Markdown table of how much the ``who``-dependent split inflates each model's accuracy."""
    lines = [
        f"| model | {who}-independent acc | {who}-dependent acc | inflation (points) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {a.name} | {100 * a.mean():.1f} | {100 * b.mean():.1f} | {100 * (b.mean() - a.mean()):+.1f} |"
        for a, b in zip(independent, dependent, strict=True)
    ]
    return "\n".join(lines)


def results_tail(who: str, diff: str, speed: list[str], cfg: ExperimentConfig) -> list[str]:
    """Closing sections of a results file: inflation table, speed figures, the RMLSTM config."""
    return [
        f"## {who}-dependent inflation",
        "",
        diff,
        "",
        "## Speed",
        "",
        *speed,
        "",
        "## RMLSTM config",
        "",
        "```yaml",
        dump_config(cfg).rstrip(),
        "```",
        "",
    ]


def pooled_stats(frames: np.ndarray) -> np.ndarray:
    """Mean, std, min and max over time of every feature dimension.

    Parameters
    ----------
    frames
        ``(T, D)`` per-frame features.

    Returns
    -------
    numpy.ndarray
        ``(4 * D,)`` float32 ``[mean, std, min, max]``.
    """
    return np.concatenate([frames.mean(0), frames.std(0), frames.min(0), frames.max(0)]).astype(np.float32)


def feature_matrix(
    table: pd.DataFrame,
    feats: dict[str, SampleFeatures],
    modality: str,
    pool: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Stack ``pool(features)`` of every sample in table order -> ``(N, D')``.

    A sample whose modality is missing gets a zero row (there is none in
    RAVDESS speech or CK+48, but a masked file must not crash the baseline).
    """
    rows: list[np.ndarray | None] = [
        None if getattr(feats[i], modality) is None else pool(getattr(feats[i], modality))
        for i in table["id"]
    ]
    width = next(r.shape[0] for r in rows if r is not None)
    return np.stack([np.zeros(width, np.float32) if r is None else r for r in rows])


def speaker_normalise(table: pd.DataFrame, feats: dict[str, SampleFeatures], modality: str) -> dict[str, Any]:
    """Standardise each speaker's frames with that speaker's own mean/std (no labels used).

    Each speaker is normalised with statistics of *all* of their own clips, test
    clips included: this is unsupervised per-speaker adaptation (the labels are
    never read), the usual "speaker normalisation" of speech emotion
    recognition. In a speaker-independent fold, the test speaker's statistics
    come only from the test speaker's unlabeled audio, never from training data,
    so no label or training information crosses the split.

    Returns
    -------
    dict
        New sample id -> :class:`SampleFeatures` with the modality replaced by
        the normalised ``(T, D)`` float32 frames.
    """
    out = dict(feats)
    ids = table["id"].to_numpy()
    spk = table["speaker"].astype(str).to_numpy()
    for s in np.unique(spk):
        mine = [i for i in ids[spk == s] if getattr(feats[i], modality) is not None]
        if not mine:
            continue
        frames = np.concatenate([getattr(feats[i], modality) for i in mine]).astype(np.float64)  # (sum T, D)
        mu, sd = frames.mean(0), np.maximum(frames.std(0), 1e-6)
        for i in mine:
            z = ((getattr(feats[i], modality) - mu) / sd).astype(np.float32)
            out[i] = dataclasses.replace(feats[i], **{modality: z})
    return out


def sklearn_cv(
    name: str,
    x: np.ndarray,
    table: pd.DataFrame,
    protocol: str,
    folds: int,
    seed: int,
    make_clf: Callable[[], Any],
    describe: str,
    views: tuple[np.ndarray, ...] = (),
) -> CVSummary:
    """Fit ``make_clf()`` on each training fold of ``protocol`` and score the test fold.

    Parameters
    ----------
    x
        ``(N, D)`` per-sample feature vectors in table order.
    make_clf
        Factory of an unfitted scikit-learn estimator (a fresh one per fold, so
        its scaler sees only training rows).
    views
        Extra ``(N, D)`` views of the same samples (e.g. flipped images): their
        training-fold rows are added as training samples and the test
        prediction averages ``predict_proba`` over ``x`` and every view.
    """
    splits = make_splits(table, protocol, folds, seed)  # same call as cross_validate: same folds
    labels = label_order(set(table["emotion"]))
    y = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    fold_metrics, train_s, test_s, n_test = [], [], 0.0, 0
    for tr, te in splits:
        t0 = time.perf_counter()
        x_fit = np.concatenate([x[tr], *(v[tr] for v in views)])
        clf = make_clf().fit(x_fit, np.tile(y[tr], 1 + len(views)))
        train_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if views:
            pred = sum(clf.predict_proba(v[te]) for v in (x, *views)).argmax(1)
        else:
            pred = clf.predict(x[te])
        test_s += time.perf_counter() - t0
        n_test += len(te)
        fold_metrics.append(
            classification_metrics(y[te], pred, labels=list(range(len(labels))), names=labels)
        )
    return CVSummary(name, describe, fold_metrics, train_s, test_s / max(n_test, 1))


def cold_extraction_rate(table: pd.DataFrame, cfg: FeatureConfig, modality: str, n: int) -> tuple[int, float]:
    """Time extraction of the first ``n`` samples into a fresh, empty cache.

    Returns
    -------
    (int, float)
        Samples timed and samples per second (decode + features, ``cfg.workers`` processes).
    """
    sub = table.iloc[:n]
    with tempfile.TemporaryDirectory(prefix="mmfer-bench-cold-") as tmp:
        t0 = time.perf_counter()
        extract_features(sub, cfg, tmp, modalities=(modality,), progress=False)
        dt = time.perf_counter() - t0
    return len(sub), len(sub) / dt


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_line() -> str:
    """CPU count, load average, torch/python versions."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} at start, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), python {platform.python_version()}"
    )


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def header(title: str) -> list[str]:
    """First lines of a results file: title, command, date, machine."""
    return [
        f"# {title}",
        "",
        f"- command: `{command_line()}` (from the repository root)",
        f"- date: {datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine_line()}",
    ]


def segment_stats(feats: dict[str, SampleFeatures], modality: str, segments: int) -> dict[str, Any]:
    """Replace each sample's frames by per-segment statistics (prototype of a fusion option).

    The Fuser mean-pools frames into ``fusion.steps`` segments, which throws away
    the spread of each segment; this keeps ``[mean, std, min, max]`` of each of
    ``segments`` contiguous segments. With ``fusion.steps == segments`` the
    Fuser's own pooling is then the identity. Stateless per clip (nothing fitted).

    Returns
    -------
    dict
        Sample id -> :class:`SampleFeatures` with the modality ``(segments, 4 * D)`` float32.
    """
    out = dict(feats)
    for sid, f in feats.items():
        a = getattr(f, modality)
        if a is None:
            continue
        if len(a) < segments:  # too short to split: repeat frames, as the Fuser does
            a = a[np.minimum(np.arange(segments) * len(a) // segments, len(a) - 1)]
        z = np.stack([pooled_stats(seg) for seg in np.array_split(a, segments)])  # (segments, 4 * D)
        out[sid] = dataclasses.replace(f, **{modality: z})
    return out


def speaker_standardise_rows(x: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Standardise the rows of each speaker with that speaker's own mean/std (no labels used).

    Parameters
    ----------
    x
        ``(N, D)`` per-sample vectors in table order.

    Returns
    -------
    numpy.ndarray
        ``(N, D)`` float32; see :func:`speaker_normalise` for why this is label-free.
    """
    out = np.empty_like(x, dtype=np.float32)
    spk = table["speaker"].astype(str).to_numpy()
    for s in np.unique(spk):
        rows = spk == s
        mu, sd = x[rows].mean(0), np.maximum(x[rows].std(0), 1e-6)
        out[rows] = (x[rows] - mu) / sd
    return out


def ensemble_cv(
    name: str,
    table: pd.DataFrame,
    feats: dict[str, SampleFeatures],
    cfg: Any,
    protocol: str,
    modalities: list[str],
    seeds: tuple[int, ...] = (0,),
    *,
    test_views: tuple[dict[str, SampleFeatures], ...] = (),
    train_views: tuple[dict[str, SampleFeatures], ...] = (),
    only_folds: tuple[int, ...] | None = None,
) -> tuple[CVSummary, CVSummary]:
    """RMLSTM cross-validation with seed ensembling and optional feature-level augmentation.

    Each fold of ``protocol`` (the same :func:`make_splits` call as
    :func:`mmfer.pipeline.cross_validate`, hence the same folds) fits one
    recogniser per seed with :func:`mmfer.pipeline.fit_recognizer` on the
    training rows only, and averages their :meth:`Recognizer.predict_proba`.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.ExperimentConfig`; ``cfg.train.seed`` is replaced by each seed.
    seeds
        One model per seed; probabilities ``(N_test, C)`` are averaged over them.
    test_views
        Extra feature dicts of the same samples (e.g. horizontally flipped
        images); test probabilities are also averaged over these views.
    train_views
        Extra feature dicts whose *training-fold* samples are added as extra
        training rows (same speaker and label); test rows are never added.
    only_folds
        Fold indices to run (for tuning runs); ``None`` = all folds.

    Returns
    -------
    (CVSummary, CVSummary)
        The first seed's model alone (named ``name + " (seed s)"``, with its own
        training and test time) and the ensemble (``train_seconds`` per fold
        covers all seeds; test time covers all seeds and views). Both come from
        the same fitted models.
    """
    from mmfer.data.splits import is_speaker_independent
    from mmfer.pipeline import fit_recognizer

    splits = make_splits(table, protocol, cfg.eval.folds, cfg.eval.seed)
    labels = label_order(set(table["emotion"]))
    y = table["emotion"].map({e: i for i, e in enumerate(labels)}).to_numpy()
    ids = table["id"].to_numpy()
    fusion_cfg = dataclasses.replace(cfg.fusion, modalities=list(modalities))
    si = is_speaker_independent(protocol)
    # Augmented training rows get new ids ("<id>#augK") and keep speaker and emotion,
    # so a speaker-grouped validation split would still hold whole speakers.
    big_table, big_feats = table, dict(feats)
    aug_rows: list[np.ndarray] = []
    for k, view in enumerate(train_views):
        extra = table.copy()
        extra["id"] = [f"{i}#aug{k}" for i in ids]
        big_feats.update({f"{i}#aug{k}": view[i] for i in ids})
        aug_rows.append(np.arange(len(table)) + len(table) * (k + 1))
        big_table = pd.concat([big_table, extra], ignore_index=True)
    fold_metrics, train_s, test_s, n_test = [], [], 0.0, 0
    one_metrics, one_train_s, one_test_s = [], [], 0.0
    for f, (tr, te) in enumerate(splits):
        if only_folds is not None and f not in only_folds:
            continue
        tr_all = np.concatenate([tr, *(rows[tr] for rows in aug_rows)])
        proba = np.zeros((len(te), len(labels)))  # (N_test, C)
        t_train = 0.0
        for s in seeds:
            train_cfg = dataclasses.replace(cfg.train, seed=s, progress=False)
            t0 = time.perf_counter()
            out = fit_recognizer(
                big_table,
                big_feats,
                tr_all,
                labels=labels,
                model_cfg=cfg.model,
                fusion_cfg=fusion_cfg,
                text_cfg=cfg.features.text,
                train_cfg=train_cfg,
                features_cfg=cfg.features,
                speaker_independent=si,
            )
            t_train += time.perf_counter() - t0
            t0 = time.perf_counter()
            for view in (feats, *test_views):
                proba += out.recognizer.predict_proba([view[i] for i in ids[te]])
            test_s += time.perf_counter() - t0
            if s == seeds[0]:
                one_metrics.append(
                    classification_metrics(
                        y[te], proba.argmax(1), labels=list(range(len(labels))), names=labels
                    )
                )
                one_train_s.append(t_train)
                one_test_s += time.perf_counter() - t0
        train_s.append(t_train)
        n_test += len(te)
        fold_metrics.append(
            classification_metrics(y[te], proba.argmax(1), labels=list(range(len(labels))), names=labels)
        )
        print(
            f"  {name} fold {f}: acc {one_metrics[-1]['accuracy']:.3f} (seed {seeds[0]}), "
            f"{fold_metrics[-1]['accuracy']:.3f} ({len(seeds)} seeds, {t_train:.0f} s)",
            flush=True,
        )
    single = CVSummary(
        f"{name} (seed {seeds[0]})", protocol, one_metrics, one_train_s, one_test_s / max(n_test, 1)
    )
    return single, CVSummary(name, protocol, fold_metrics, train_s, test_s / max(n_test, 1))


def append_rows(
    table: pd.DataFrame, feats: dict[str, SampleFeatures], modality: str, x: np.ndarray
) -> dict[str, Any]:
    """Append row ``x[k]`` of sample ``k`` (table order) to every time step of its modality.

    Parameters
    ----------
    feats
        Sample id -> features whose modality is ``(T, D)``.
    x
        ``(N, E)`` per-sample vectors in table order (e.g. clip-level statistics).

    Returns
    -------
    dict
        Sample id -> :class:`SampleFeatures` with the modality ``(T, D + E)`` float32.
    """
    out = dict(feats)
    for k, sid in enumerate(table["id"]):
        a = getattr(feats[sid], modality)
        if a is None:
            continue
        glob = np.repeat(x[k][None].astype(np.float32), len(a), axis=0)  # (T, E)
        out[sid] = dataclasses.replace(feats[sid], **{modality: np.concatenate([a, glob], axis=1)})
    return out
