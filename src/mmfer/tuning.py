"""Settings searched by nested selection besides the estimator's own, and the selection metric.

A search space (an estimator's declared one or ``eval.search.<model>``) may hold *fuser
text settings* under ``text.<field>`` keys (``text.layers``, ``text.context``: see
:mod:`mmfer.features.words.text_view`) and *fuser settings* under ``fusion.<field>`` keys
(``fusion.audio_layers``: which extracted Whisper layers enter, ``fusion.audio_pool``).
:func:`fold_configs` routes them to the :class:`~mmfer.config.TextConfig` and
:class:`~mmfer.config.FusionConfig` the fold's Fuser is built with; the rest go to the
estimator. Such settings are chosen on the inner validation rows like any other.

Model *variants* ``<estimator>@<tag>`` (e.g. ``logreg@context``) are the registered
estimator ``<estimator>`` under another name: their own rows in the report and their
own ``eval.search`` entry (e.g. one that searches ``text.context``).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.config import FusionConfig, TextConfig
from mmfer.errors import ConfigError

if TYPE_CHECKING:
    from mmfer.recognizer import Recognizer

__all__ = [
    "TEXT_PREFIX",
    "VARIANT_SEP",
    "accuracy_on",
    "base_model",
    "fold_configs",
    "score_on",
    "split_params",
    "text_config",
]

TEXT_PREFIX = "text."
FUSION_PREFIX = "fusion."
#: Fuser settings nested selection may search (the others define the experiment).
SEARCHABLE_FUSION = ("audio_layers", "audio_norm", "audio_pool", "steps")
VARIANT_SEP = "@"
SELECTION_METRICS = ("accuracy", "uar", "macro_f1", "weighted_f1")


def base_model(name: str) -> str:
    """The registered estimator of a model name (``logreg@context`` -> ``logreg``)."""
    return name.split(VARIANT_SEP, 1)[0]


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(estimator params, text overrides)``: ``text.<field>`` keys lose their prefix;
    ``fusion.<field>`` keys are in neither (see :func:`fold_configs`)."""
    est = {k: v for k, v in params.items() if not k.startswith((TEXT_PREFIX, FUSION_PREFIX))}
    text = {k[len(TEXT_PREFIX) :]: v for k, v in params.items() if k.startswith(TEXT_PREFIX)}
    return est, text


def fusion_config(base: FusionConfig, params: dict[str, Any]) -> FusionConfig:
    """``base`` with the ``fusion.<field>`` settings of ``params`` applied.

    Raises
    ------
    ConfigError
        A ``fusion.`` key that nested selection may not search.
    """
    over = {k[len(FUSION_PREFIX) :]: v for k, v in params.items() if k.startswith(FUSION_PREFIX)}
    bad = sorted(set(over) - set(SEARCHABLE_FUSION))
    if bad:
        raise ConfigError(
            f"eval.search: fusion.{bad[0]} cannot be searched; searchable: "
            + ", ".join(f"fusion.{k}" for k in SEARCHABLE_FUSION)
        )
    if not over:
        return base
    return replace(base, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in over.items()})


def fold_configs(
    params: dict[str, Any], text: TextConfig, fusion: FusionConfig
) -> tuple[dict[str, Any], TextConfig, FusionConfig]:
    """``(estimator params, text config, fusion config)`` of one candidate's settings."""
    est, text_over = split_params(params)
    return est, text_config(text, text_over), fusion_config(fusion, params)


def text_config(base: TextConfig, overrides: dict[str, Any]) -> TextConfig:
    """``base`` with ``overrides`` (field -> value) applied.

    Raises
    ------
    ConfigError
        An override names no TextConfig field.
    """
    if not overrides:
        return base
    valid = {f.name for f in fields(TextConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise ConfigError(
            f"eval.search: unknown text setting text.{bad[0]}; valid: {', '.join(sorted(valid))}"
        )
    return replace(base, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()})


def score_on(
    rec: Recognizer, table: pd.DataFrame, feats: dict[str, Any], rows: np.ndarray, metric: str = "accuracy"
) -> float:
    """``metric`` (accuracy, uar, macro_f1 or weighted_f1) of a fitted recogniser on ``rows``."""
    from mmfer.evaluation.metrics import classification_metrics

    if metric not in SELECTION_METRICS:
        raise ConfigError(f"eval.headline_metric: {metric!r} not one of {', '.join(SELECTION_METRICS)}")
    ids = table["id"].astype(str).to_numpy()[rows]
    y = table["emotion"].map({e: i for i, e in enumerate(rec.labels)}).to_numpy()[rows]
    speakers = table["speaker"].astype(str).tolist()
    pred = rec.predict_proba([feats[i] for i in ids], speakers=[speakers[i] for i in rows]).argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    labels = list(range(len(rec.labels)))
    return float(classification_metrics(y.astype(np.int64), pred, labels=labels)[metric])


def accuracy_on(rec: Recognizer, table: pd.DataFrame, feats: dict[str, Any], rows: np.ndarray) -> float:
    """Accuracy of a fitted recogniser on ``rows``."""
    return score_on(rec, table, feats, rows, "accuracy")
