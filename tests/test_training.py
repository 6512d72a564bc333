"""The one training loop: learning, class weights, early stopping, clipping, schedules, log."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.config import TrainConfig
from mmfer.errors import ConfigError, DataError
from mmfer.training import (
    LOG_COLUMNS,
    Hook,
    TensorData,
    Trainer,
    class_weights,
    load_checkpoint,
    predict,
    seed_everything,
)

FEATURES, STEPS, CLASSES = 5, 6, 3


class TinyNet(nn.Module):
    """Masked mean over time + 2-layer MLP: forward(x (B,T,F), mask (B,T)) -> (B,C)."""

    def __init__(self, in_features: int = FEATURES, num_classes: int = CLASSES, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, 16)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, F)
        return self.head(self.drop(torch.relu(self.hidden(pooled))))  # (B, C)


def blobs(n: int, seed: int, *, labels: torch.Tensor | None = None) -> TensorData:
    """Class-dependent Gaussian sequences with random padding of the last steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g) if labels is None else labels
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(1234)) * 2.0
    x = centres[y][:, None, :] + torch.randn(n, STEPS, FEATURES, generator=g)  # (N, T, F)
    mask = torch.ones(n, STEPS, dtype=torch.bool)
    mask[:, -2:] = torch.rand(n, 2, generator=g) > 0.5
    return TensorData(x, mask, y)


def cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 8, "batch_size": 16, "progress": False, "threads": 1, "patience": 0}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def fresh_model(seed: int = 0, dropout: float = 0.0) -> TinyNet:
    seed_everything(seed)
    return TinyNet(dropout=dropout)


def weighted_ce(model: nn.Module, data: TensorData, weight: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model.eval()(data.x, data.mask)
        return float(F.cross_entropy(logits, data.y, weight=weight))


def test_learns_toy_problem(tmp_path: Path) -> None:
    model = fresh_model(dropout=0.1)
    train, val = blobs(240, 1), blobs(90, 2)
    result = Trainer(cfg(epochs=12)).fit(model, train, val, num_classes=CLASSES, out_dir=tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.history[-1]["train_acc"] > 0.9
    probs = predict(model, val.x, val.mask, batch_size=32)
    assert probs.shape == (90, CLASSES)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == val.y.numpy()).mean() > 0.9
    assert result.epochs_run == 12 and not result.stopped_early


def test_class_weights_hand_computed() -> None:
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    # inverse counts 1/6, 1/3, 1 -> sum 1.5; scaled so the 3 present classes average 1;
    # class 3 is absent -> neutral weight 1.
    expected = torch.tensor([1 / 3, 2 / 3, 2.0, 1.0])
    assert torch.allclose(class_weights(y, 4), expected)
    balanced = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.allclose(class_weights(balanced, 3), torch.ones(3))


@pytest.mark.parametrize("weighted", [True, False])
def test_loop_uses_class_weighted_loss(weighted: bool) -> None:
    labels = torch.tensor([0] * 30 + [1] * 12 + [2] * 6)
    data = blobs(len(labels), 3, labels=labels)
    model = fresh_model(5)
    w = class_weights(labels, CLASSES) if weighted else torch.ones(CLASSES)
    initial = weighted_ce(model, data, w)
    trainer = Trainer(cfg(epochs=1, batch_size=len(labels), class_weighted=weighted))
    result = trainer.fit(model, data, num_classes=CLASSES)
    # One full batch: the reported loss is the loss of the initial weights.
    assert result.history[0]["train_loss"] == pytest.approx(initial, rel=1e-5)
    assert torch.allclose(trainer.class_weight, w)


def test_early_stopping_restores_best(tmp_path: Path) -> None:
    train = blobs(160, 1)
    # Validation labels are a permutation of the true ones: the better the model
    # fits train, the worse the validation loss gets, so it peaks early.
    val = blobs(60, 2)
    val = TensorData(val.x, val.mask, (val.y + 1) % CLASSES)
    model = fresh_model()
    config = cfg(epochs=30, patience=3, lr=5e-3, scheduler="none")
    result = Trainer(config).fit(model, train, val, num_classes=CLASSES, out_dir=tmp_path)
    assert result.stopped_early and result.stop_reason == "early_stopping"
    assert result.epochs_run == result.best_epoch + 3 < 30
    val_losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(val_losses) == val_losses[result.best_epoch - 1]
    # The model holds the best weights, not the last ones.
    restored = weighted_ce(model, val, class_weights(train.y, CLASSES))
    assert restored == pytest.approx(result.best_val_loss, rel=1e-5)
    best, meta = load_checkpoint(tmp_path / Trainer.BEST)
    assert meta["epoch"] == result.best_epoch
    last, _ = load_checkpoint(tmp_path / Trainer.LAST)
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[f"model.{k}"])
    assert any(not torch.equal(v, last[f"model.{k}"]) for k, v in model.state_dict().items())


class GradNormProbe(Hook):
    """Total gradient norm as the optimizer saw it (after clipping) and before clipping."""

    def __init__(self) -> None:
        self.after: list[float] = []
        self.before: list[float] = []

    def on_batch_end(self, trainer: Trainer, loss: float) -> None:
        assert trainer.model is not None
        grads = [p.grad.norm() for p in trainer.model.parameters() if p.grad is not None]
        self.after.append(float(torch.linalg.vector_norm(torch.stack(grads))))
        if trainer.last_grad_norm is not None:
            self.before.append(trainer.last_grad_norm)


def test_gradient_clipping_applied() -> None:
    clip = 0.05
    probe = GradNormProbe()
    Trainer(cfg(epochs=2, grad_clip=clip), hooks=[probe]).fit(
        fresh_model(), blobs(64, 1), num_classes=CLASSES
    )
    assert len(probe.after) == 2 * 4
    assert max(probe.before) > clip  # clipping had something to do
    assert all(a <= clip * (1 + 1e-4) for a in probe.after)
    for before, after in zip(probe.before, probe.after, strict=True):
        assert after == pytest.approx(min(before, clip), rel=1e-3)

    unclipped = GradNormProbe()
    Trainer(cfg(epochs=1, grad_clip=0.0), hooks=[unclipped]).fit(
        fresh_model(), blobs(64, 1), num_classes=CLASSES
    )
    assert unclipped.before == [] and max(unclipped.after) > clip


def _trajectory(result_history: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [tuple(h[k] for k in LOG_COLUMNS if k != "seconds") for h in result_history]


def test_same_seed_same_history() -> None:
    def run(seed: int) -> tuple[list[tuple[object, ...]], dict[str, torch.Tensor]]:
        model = fresh_model(seed, dropout=0.3)
        result = Trainer(cfg(epochs=4, seed=seed)).fit(model, blobs(96, 1), blobs(30, 2), num_classes=CLASSES)
        return _trajectory(result.history), model.state_dict()

    h1, w1 = run(0)
    h2, w2 = run(0)
    h3, _ = run(1)
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert h1 != h3


def test_cosine_schedule_changes_lr() -> None:
    config = cfg(epochs=6, lr=1e-2, scheduler="cosine")
    result = Trainer(config).fit(fresh_model(), blobs(64, 1), num_classes=CLASSES)
    lrs = [h["lr"] for h in result.history]
    eta_min = config.lr * 1e-2
    expected = [eta_min + (config.lr - eta_min) * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert all(a > b for a, b in itertools.pairwise(lrs))


def test_plateau_schedule_halves_lr_when_val_stalls() -> None:
    val = blobs(40, 2)
    val = TensorData(val.x, val.mask, (val.y + 1) % CLASSES)  # val loss rises as train improves
    config = cfg(epochs=8, lr=5e-3, scheduler="plateau", patience=0)  # plateau patience 2
    result = Trainer(config).fit(fresh_model(), blobs(96, 1), val, num_classes=CLASSES)
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == config.lr
    assert min(lrs) <= config.lr / 2
    assert all(b in (a, a / 2) for a, b in itertools.pairwise(lrs))


def test_no_scheduler_keeps_lr() -> None:
    result = Trainer(cfg(epochs=3, scheduler="none")).fit(fresh_model(), blobs(48, 1), num_classes=CLASSES)
    assert [h["lr"] for h in result.history] == [2e-3] * 3


@pytest.mark.parametrize("with_val", [True, False])
def test_log_csv_rows_match_epochs(tmp_path: Path, with_val: bool) -> None:
    val = blobs(30, 2) if with_val else None
    result = Trainer(cfg(epochs=5)).fit(
        fresh_model(), blobs(64, 1), val, num_classes=CLASSES, out_dir=tmp_path
    )
    with open(tmp_path / Trainer.LOG, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    for row, hist in zip(rows, result.history, strict=True):
        assert float(row["train_loss"]) == hist["train_loss"]
        assert float(row["lr"]) == hist["lr"]
        if with_val:
            assert float(row["val_acc"]) == hist["val_acc"]
        else:
            assert row["val_loss"] == row["val_acc"] == ""
    assert result.best_val_loss is None if not with_val else result.best_val_loss is not None
    assert not list(tmp_path.glob("*.tmp"))


def test_predict_is_eval_mode_and_restores_training_flag() -> None:
    model = fresh_model(dropout=0.5).train()
    data = blobs(20, 4)
    p1 = predict(model, data.x.numpy(), data.mask.numpy(), batch_size=7)
    p2 = predict(model, data.x, data.mask, batch_size=20)
    np.testing.assert_allclose(p1, p2, atol=1e-6)  # dropout off, batching irrelevant
    assert model.training
    with pytest.raises(DataError, match="mask"):
        predict(model, data.x, data.mask[:, :3], batch_size=4)


def test_tensordata_validation_and_npz(tmp_path: Path) -> None:
    data = blobs(10, 0)
    assert len(data) == 10
    x, mask, y = data[[0, 3]]
    assert x.shape == (2, STEPS, FEATURES) and mask.shape == (2, STEPS) and y.shape == (2,)
    path = data.save_npz(tmp_path / "d.npz")
    back = TensorData.from_npz(path)
    assert torch.equal(back.x, data.x) and torch.equal(back.mask, data.mask) and torch.equal(back.y, data.y)
    with pytest.raises(DataError, match="mask shape"):
        TensorData(data.x, data.mask[:, :2], data.y)
    with pytest.raises(DataError, match="integer"):
        TensorData(data.x, data.mask, data.y.float())
    np.savez(tmp_path / "bad.npz", x=data.x.numpy(), y=data.y.numpy())
    with pytest.raises(DataError, match=r"bad\.npz.*mask"):
        TensorData.from_npz(tmp_path / "bad.npz")


def test_fit_rejects_bad_input() -> None:
    data = blobs(12, 0)
    with pytest.raises(DataError, match="outside"):
        Trainer(cfg(epochs=1)).fit(fresh_model(), data, num_classes=2)
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        Trainer(cfg(epochs=0))
