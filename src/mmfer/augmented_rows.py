"""Train-time voice augmentation on the fitting side: augmented copies become extra training rows.

:func:`mmfer.pipeline.fit_rows` calls :func:`with_augmented` once, after its Fuser is
fitted and its training rows fused. Each training row whose sample has augmented audio
copies (``SampleFeatures.audio_aug``, extracted and cached by
:func:`mmfer.features.extract.extract_features` when ``features.augment.copies > 0``) gets
``copies`` extra rows: the same sample with its audio replaced by copy ``k``, the same
label and speaker, id ``<id>#aug<k>`` (:data:`mmfer.evaluation.audit.AUGMENTED_SEP`).

Who sees what:

* only the rows passed to ``fit_rows`` get copies, so in nested selection the inner
  training part gets copies of its own rows and the inner validation and outer test
  rows are scored on their real features only (they go through ``predict_proba``);
* the Fuser (TF-IDF, standardisers, speaker statistics) is fitted on the real rows
  only: the standardiser then describes real recordings, which is what it is applied
  to at test time, and a model fitted with ``copies=0`` and one fitted with copies
  share the same input scaling;
* the estimator is fitted on real + augmented rows; its ``fitted_on_`` lists the
  augmented ids, which the leakage audit maps back to their sample
  (:func:`mmfer.evaluation.audit.source_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from mmfer.config import FeatureConfig
from mmfer.evaluation.audit import AUGMENTED_SEP
from mmfer.fusion.fuser import FusedBatch, Fuser

__all__ = ["augmented_samples", "with_augmented"]


def augmented_samples(
    feats: Mapping[str, Any], ids: np.ndarray, copies: int
) -> tuple[list[Any], np.ndarray, list[str]]:
    """The augmented copies of the samples ``ids``: copy ``k`` = the sample with ``audio_aug[k]`` as audio.

    Parameters
    ----------
    feats
        Sample id -> :class:`~mmfer.features.units.SampleFeatures`.
    ids
        ``(n,)`` ids of the training rows.
    copies
        Copies to use per row (``features.augment.copies``; missing copies are skipped).

    Returns
    -------
    tuple
        ``(samples, rows (m,), aug_ids)``: the copied samples, the position in ``ids`` of
        the row each copy came from, and their ids ``<id>#aug<k>``.
    """
    samples: list[Any] = []
    rows: list[int] = []
    aug_ids: list[str] = []
    for r, sid in enumerate(ids):
        sf = feats[sid]
        if getattr(sf, "audio", None) is None:
            continue  # a masked clip stays masked: its copies are not used either
        for k in range(1, copies + 1):
            a = getattr(sf, "audio_aug", {}).get(k)
            if a is not None:
                samples.append(replace(sf, audio=a, audio_aug={}))
                rows.append(r)
                aug_ids.append(f"{sid}{AUGMENTED_SEP}{k}")
    return samples, np.asarray(rows, dtype=np.int64), aug_ids


def with_augmented(
    fuser: Fuser,
    feats: Mapping[str, Any],
    fused: FusedBatch,
    ids: np.ndarray,
    y: np.ndarray,
    speakers: np.ndarray,
    features_cfg: FeatureConfig,
) -> tuple[FusedBatch, np.ndarray, np.ndarray, np.ndarray]:
    """Training rows plus their augmented copies, fused by the Fuser already fitted on the real rows.

    Parameters
    ----------
    fuser
        Fitted on the real training rows only (see the module docstring).
    feats
        Sample id -> features (``audio_aug`` holds the copies).
    fused
        The real training rows fused: ``x (n, T, F)``, ``mask (n, T)``, ``present (n, 3)``.
    ids, y, speakers
        ``(n,)`` ids, int labels and speakers of those rows.
    features_cfg
        ``augment.copies`` copies per row are used (none when 0, or when the Fuser does
        not read audio).

    Returns
    -------
    tuple
        ``(fused, y, speakers, ids)`` with ``n + m`` rows, the real ones first and
        unchanged (the very same objects when there is no copy to add).

    Notes
    -----
    With ``speaker_norm`` the copies are fused in a call of their own, so each speaker's
    copies are normalised with the statistics of that speaker's copies and the real rows
    keep exactly the normalisation they have without augmentation.
    """
    copies = features_cfg.augment.copies
    if copies <= 0 or "audio" not in fuser.modalities:
        return fused, y, speakers, ids
    samples, rows, aug_ids = augmented_samples(feats, ids, copies)
    if not samples:
        return fused, y, speakers, ids
    extra = fuser.transform(samples, speakers=speakers[rows])  # x (m, T, F), mask (m, T)
    both = FusedBatch(
        x=np.concatenate([fused.x, extra.x]),  # (n + m, T, F)
        mask=np.concatenate([fused.mask, extra.mask]),  # (n + m, T)
        present=np.concatenate([fused.present, extra.present]),  # (n + m, 3)
    )
    ids_all = np.concatenate([np.asarray(ids, dtype=object), np.asarray(aug_ids, dtype=object)])
    return both, np.concatenate([y, y[rows]]), np.concatenate([speakers, speakers[rows]]), ids_all
