"""The small-data training recipe: epochs chosen from per-epoch inner scores, schedule, smoothing, EMA."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from mmfer.config import ExperimentConfig, FusionConfig, ModelConfig, TrainConfig
from mmfer.epoch_selection import EpochScorer, best_epoch, selects_epochs
from mmfer.features.units import SampleFeatures
from mmfer.training import TensorData, Trainer
from mmfer.training.schedule import FLOOR, lr_factor


def _corpus(
    n_speakers: int = 6, per: int = 9, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    rng = np.random.default_rng(seed)
    emotions = ["angry", "happy", "neutral"]
    rows, feats = [], {}
    for s in range(n_speakers):
        for k in range(per):
            emo = emotions[k % 3]
            sid = f"spk{s}_{k}"
            frames = rng.normal(size=(6, 4))
            frames[:, 0] += 2.0 * emotions.index(emo)
            rows.append({"id": sid, "speaker": f"spk{s}", "emotion": emo})
            feats[sid] = SampleFeatures(audio=frames.astype(np.float32))
    return pd.DataFrame(rows), feats


def _cfg(epochs: int = 6) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.fusion = FusionConfig(modalities=["audio"], steps=2)
    cfg.model = ModelConfig(hidden_size=8, num_layers=1)
    cfg.train = TrainConfig(
        epochs=epochs, batch_size=16, patience=3, val_fraction=0.2, progress=False, threads=1
    )
    search = {"neural": {"epochs": [epochs], "lr": [1e-2, 3e-3]}}
    cfg.eval = replace(
        cfg.eval, protocol="group_kfold", folds=3, inner_folds=2, select_budget=2, search=search
    )
    return cfg


def test_best_epoch_is_the_peak_of_the_mean_inner_curve() -> None:
    curves = np.array([[0.2, 0.5, 0.6, 0.4, 0.3], [0.2, 0.3, 0.4, 0.8, 0.1]])  # (K=2, E=5)
    assert best_epoch(curves) == (4, pytest.approx(0.6))  # mean (.2, .4, .5, .6, .2): epoch 4
    # neither fold's own best (3 and 4) decides alone; ties go to the earliest epoch
    assert best_epoch(np.array([[0.1, 0.7, 0.7]]))[0] == 2


def test_outer_fit_trains_exactly_the_epoch_count_the_inner_folds_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A planted history: the inner curves peak (on average) at epoch 4 of 6 for the lr=3e-3 candidate."""
    from mmfer.pipeline import fit_fold, prepare_cv

    planted = {
        0.01: [[0.1, 0.2, 0.3, 0.3, 0.3, 0.3], [0.1, 0.2, 0.3, 0.3, 0.3, 0.3]],  # best mean 0.3 at epoch 3
        0.003: [[0.1, 0.2, 0.5, 0.6, 0.5, 0.1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.1]],  # mean peak 0.6 at epoch 4
    }
    calls: list[int] = []

    def fake_curve(self, params, rows, val):  # type: ignore[no-untyped-def]
        k = len(calls) % 2
        calls.append(k)
        return np.asarray(planted[params["lr"]][k])

    monkeypatch.setattr(EpochScorer, "_curve", fake_curve)
    table, feats = _corpus()
    cfg = _cfg()
    setup, splits = prepare_cv(table, feats, cfg, model_name="mlp", modalities=["audio"])
    assert selects_epochs(setup.base, cfg)
    train_idx, _ = splits[0]
    settings, rec, _, _ = fit_fold(setup, feats, 0, train_idx, [])
    assert settings["params"]["lr"] == 0.003
    assert settings["params"]["stop_epoch"] == 4 and settings["params"]["patience"] == 0
    assert settings["inner_accuracy"] == pytest.approx(0.6)
    hist = rec.estimator.history  # type: ignore[attr-defined]
    assert len(hist) == 4  # exactly the chosen epochs ...
    assert all(h["val_loss"] is None for h in hist)  # ... on all training rows, no carve-out
    assert rec.estimator.fitted_on_ == frozenset(table["id"].to_numpy()[train_idx])
    # the lr schedule still spans the candidate's 6 epochs, as in the inner fits
    assert hist[-1]["lr"] > 0.003 * 0.2


def test_inner_curves_are_real_per_epoch_scores_and_see_no_outer_test_row() -> None:
    from mmfer.evaluation.audit import FitRecord
    from mmfer.pipeline import fit_fold, prepare_cv

    table, feats = _corpus()
    cfg = _cfg(epochs=5)
    setup, splits = prepare_cv(table, feats, cfg, model_name="mlp", modalities=["audio"])
    train_idx, test_idx = splits[0]
    records: list[FitRecord] = []
    settings, rec, _, _ = fit_fold(setup, feats, 0, train_idx, records)
    assert 1 <= settings["params"]["stop_epoch"] <= 5
    assert len(rec.estimator.history) == settings["params"]["stop_epoch"]  # type: ignore[attr-defined]
    test_ids = set(table["id"].to_numpy()[test_idx])
    inner = [r for r in records if r.component.startswith("inner")]
    assert len(inner) == 2 * 2 * 2  # 2 candidates x 2 inner folds x (fuser, estimator)
    assert all(not (r.ids & test_ids) for r in records)

    # perturbation: the outer test rows replaced by noise -> the very same choices
    rng = np.random.default_rng(1)
    noisy = dict(feats)
    for i in table["id"].to_numpy()[test_idx]:
        noisy[i] = SampleFeatures(audio=rng.normal(scale=50.0, size=(6, 4)).astype(np.float32))
    setup2, _ = prepare_cv(table, noisy, cfg, model_name="mlp", modalities=["audio"])
    settings2, _, _, _ = fit_fold(setup2, noisy, 0, train_idx, [])
    assert settings2 == settings


def test_warmup_cosine_rises_then_decays_monotonically() -> None:
    cfg = TrainConfig(epochs=20, scheduler="warmup_cosine", warmup_frac=0.2)
    f = np.array([lr_factor(cfg, e) for e in range(20)])
    warm = 4
    assert np.all(np.diff(f[:warm]) > 0) and f[warm - 1] == pytest.approx(1.0)
    assert np.all(np.diff(f[warm - 1 :]) <= 1e-12)  # non-increasing after the peak
    assert f[0] < 0.5 and FLOOR <= f[-1] < 0.05
    # the live optimiser follows it, one step per epoch
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    from mmfer.training.schedule import make_scheduler, step_scheduler

    sched = make_scheduler(cfg, opt)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        step_scheduler(cfg, sched, 0.0)
    assert np.allclose(seen, 0.1 * f)


class _MLP(torch.nn.Module):
    def __init__(self, f: int = 6, c: int = 3) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(f, 32), torch.nn.ReLU(), torch.nn.Linear(32, c))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(x.mean(1))


def _separable(n: int = 120, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 2, 6, generator=g) * 0.3
    x[:, :, 0] += 3.0 * y[:, None]
    return TensorData(x, torch.ones(n, 2, dtype=torch.bool), y)


def _fit(**train: object) -> tuple[torch.nn.Module, Trainer]:
    torch.manual_seed(0)
    model = _MLP()
    cfg = TrainConfig(epochs=30, batch_size=16, lr=1e-2, patience=0, progress=False, threads=1, **train)  # type: ignore[arg-type]
    trainer = Trainer(cfg)
    trainer.fit(model, _separable(), num_classes=3)
    return model, trainer


def test_label_smoothing_caps_the_confidence_on_separable_data() -> None:
    from mmfer.training import predict

    data = _separable(seed=1)
    plain, _ = _fit()
    smooth, _ = _fit(label_smoothing=0.3)
    p_plain = predict(plain, data.x, data.mask).max(1).mean()
    p_smooth = predict(smooth, data.x, data.mask).max(1).mean()
    assert p_plain > 0.95  # a separable task learnt with confidence
    # smoothed targets put 1 - 0.3 + 0.3 / 3 = 0.8 on the true class: confidence stays near it
    assert p_smooth < 0.9 and p_smooth < p_plain - 0.05
    assert (predict(smooth, data.x, data.mask).argmax(1) == data.y.numpy()).mean() > 0.95  # still right


def test_ema_leaves_the_averaged_weights_in_the_model() -> None:
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in _MLP().state_dict().items()}
    raw, _ = _fit()
    slow, trainer = _fit(ema=1000.0)  # time constant far beyond the fit: the average stays near the start

    def dist(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return float(sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5)

    moved_raw = dist(raw.state_dict(), init)
    moved_slow = dist(slow.state_dict(), init)
    assert moved_slow < 0.1 * moved_raw  # the model holds the average, not the last weights
    assert trainer.ema_state is not None
    assert dist(slow.state_dict(), trainer.ema_state) == 0.0
    # a short time constant: the average follows training (accuracy kept)
    quick, _ = _fit(ema=1.0)
    data = _separable(seed=2)
    from mmfer.training import predict

    assert (predict(quick, data.x, data.mask).argmax(1) == data.y.numpy()).mean() > 0.95


def test_stop_epoch_ends_training_early_with_the_schedule_of_all_epochs() -> None:
    _, full = _fit()
    _, cut = _fit(stop_epoch=7)
    assert len(cut.history) == 7 and len(full.history) == 30
    # the same trajectory up to the stop: same lrs and losses for the first 7 epochs
    assert [h["lr"] for h in cut.history] == [h["lr"] for h in full.history[:7]]
    assert [h["train_loss"] for h in cut.history] == pytest.approx(
        [h["train_loss"] for h in full.history[:7]]
    )


def test_input_noise_changes_training_but_not_prediction() -> None:
    from mmfer.training import predict

    _, ta = _fit()
    b, tb = _fit(input_noise=0.5)
    assert ta.history[-1]["train_loss"] != tb.history[-1]["train_loss"]
    data = _separable(seed=3)
    assert np.array_equal(predict(b, data.x, data.mask), predict(b, data.x, data.mask))
