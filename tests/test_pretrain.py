"""Pretraining on a train-only corpus, then fine-tuning on the target corpus (issue 23).

``train.pretrain_epochs > 0``: a neural estimator first trains on the rows of the
``data.extra_train`` corpora, then on the target corpus's rows alone, starting from those
weights. These tests check who sees what, not how accurate a tiny fit is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from mmfer.config import FeatureConfig, FusionConfig, TextConfig
from mmfer.data.balance import pretrain_flags
from mmfer.errors import ConfigError
from mmfer.estimators import create_estimator
from mmfer.features.units import SampleFeatures

FAST = {"epochs": 3, "batch_size": 8, "hidden_size": 8, "input_proj": 0, "patience": 0, "threads": 1}


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _data(n_pre: int = 40, n_tgt: int = 16, seed: int = 0) -> Arrays:
    """``x (n, 2, 5)``, ``mask (n, 2)``, ``y (n,)`` in 3 classes, ``pre (n,)`` = first ``n_pre`` rows."""
    rng = np.random.default_rng(seed)
    n = n_pre + n_tgt
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 2, 5)).astype(np.float32) + y[:, None, None].astype(np.float32)
    mask = np.ones((n, 2), dtype=bool)
    pre = np.arange(n) < n_pre
    return x, mask, y, pre


@pytest.fixture
def trainer_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``Trainer.fit`` call's training-set size, epochs and hook count, in order."""
    from mmfer.training import Trainer

    calls: list[dict[str, Any]] = []
    original = Trainer.fit

    def spy(self: Trainer, model: torch.nn.Module, train: Any, val: Any = None, **kw: Any) -> Any:
        calls.append({"n": len(train.y), "epochs": self.cfg.epochs, "labels": train.y.numpy().copy()})
        return original(self, model, train, val, **kw)

    monkeypatch.setattr(Trainer, "fit", spy)
    return calls


def test_pretraining_stage_sees_only_train_only_rows_then_target_rows(trainer_calls: list) -> None:
    x, mask, y, pre = _data()
    y_marked = y.copy()
    est = create_estimator("mlp", pretrain_epochs=2, **FAST)
    est.fit(x, mask, y_marked, num_classes=3, pretrain=pre)
    assert [c["n"] for c in trainer_calls] == [int(pre.sum()), int((~pre).sum())]
    assert [c["epochs"] for c in trainer_calls] == [2, FAST["epochs"]]
    assert trainer_calls[0]["labels"].tolist() == y[pre].tolist()
    assert trainer_calls[1]["labels"].tolist() == y[~pre].tolist()


def test_without_pretraining_every_row_is_one_fit(trainer_calls: list) -> None:
    x, mask, y, pre = _data()
    create_estimator("mlp", **FAST).fit(x, mask, y, num_classes=3, pretrain=pre)
    assert [c["n"] for c in trainer_calls] == [len(y)]


def test_pretraining_changes_the_starting_weights_of_the_fine_tuning() -> None:
    x, mask, y, pre = _data()
    target = ~pre
    plain = create_estimator("mlp", **FAST).fit(x[target], mask[target], y[target], num_classes=3)
    staged = create_estimator("mlp", pretrain_epochs=2, **FAST).fit(x, mask, y, num_classes=3, pretrain=pre)
    # same seed, same target rows and settings: only the pretraining stage differs
    a = plain.predict_proba(x, mask)
    b = staged.predict_proba(x, mask)
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("flags", [None, "all", "none"])
def test_pretraining_without_both_kinds_of_rows_is_a_config_error(flags: str | None) -> None:
    x, mask, y, _ = _data()
    pre = None if flags is None else np.full(len(y), flags == "all")
    est = create_estimator("mlp", pretrain_epochs=2, **FAST)
    with pytest.raises(ConfigError, match="pretrain_epochs=2 needs rows of a train-only corpus"):
        est.fit(x, mask, y, num_classes=3, pretrain=pre)


def test_pretrain_flags_follow_the_train_only_column_and_augmented_copies() -> None:
    table = pd.DataFrame({"id": ["t:1", "t:2", "x:1"], "train_only": [False, False, True]})
    flags = pretrain_flags(table, np.array(["x:1", "t:2", "x:1#aug1", "t:1#aug2"]))
    assert flags is not None and flags.tolist() == [True, False, True, False]
    assert pretrain_flags(table.drop(columns="train_only"), np.array(["t:1"])) is None


def test_fit_rows_passes_the_train_only_rows_to_the_estimator(trainer_calls: list) -> None:
    from mmfer.pipeline import fit_rows

    rng = np.random.default_rng(1)
    rows = [("extra", f"e{i}", e) for i in range(4) for e in ("angry", "happy", "sad")]
    rows += [("main", f"m{i}", e) for i in range(2) for e in ("angry", "happy", "sad")]
    table = pd.DataFrame(
        {
            "id": [f"{c}:{s}_{e}" for c, s, e in rows],
            "corpus": [c for c, _, _ in rows],
            "speaker": [f"{c}:{s}" for c, s, _ in rows],
            "emotion": [e for _, _, e in rows],
        }
    )
    table["train_only"] = table["corpus"] == "extra"
    feats = {i: SampleFeatures(audio=rng.normal(size=(4, 3)).astype(np.float32)) for i in table["id"]}
    rec = fit_rows(
        table,
        feats,
        np.arange(len(table)),
        labels=["angry", "happy", "sad"],
        estimator=create_estimator("mlp", pretrain_epochs=2, **FAST),
        fusion_cfg=FusionConfig(modalities=["audio"], steps=2),
        text_cfg=TextConfig(),
        features_cfg=FeatureConfig(profile="paper"),
    )
    est = rec.estimator
    assert est.pretrain_rows_.sum() == 12 and (~est.pretrain_rows_).sum() == 6
    assert [c["n"] for c in trainer_calls] == [12, 6]
