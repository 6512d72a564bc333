"""The one training loop of mmfer (every model, every protocol, with hooks).

:class:`Trainer` trains any ``nn.Module`` whose ``forward(x, mask)`` maps
``x (B, T, F)`` float32 and ``mask (B, T)`` bool (True = valid step) to logits
``(B, C)``. It owns: AdamW, class-weighted cross entropy, gradient clipping,
cosine/plateau LR schedules (:mod:`mmfer.training.schedule`), seeding and
deterministic shuffling (:mod:`mmfer.training.data`), early stopping with
best-weight restore, ``log.csv`` and safetensors checkpoints with exact resume
(:mod:`mmfer.training.hooks`, :mod:`mmfer.training.state`), and torchrun data
parallelism (the context in :mod:`mmfer.training.distributed`; the ``torchrun``
command line in :mod:`mmfer.training.ddp`, which imports this module, never the
reverse). Everything else (metrics plots, extra logging, interruption) plugs in
as a :class:`Hook`.

Output folder layout (rank 0 only)::

    out_dir/log.csv            one row per epoch, rewritten atomically
    out_dir/last.safetensors   full training state (resume point)
    out_dir/best.safetensors   best-on-validation weights (when validating)
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mmfer.config import TrainConfig
from mmfer.errors import ConfigError, DataError, MmferError
from mmfer.progress import Heartbeat
from mmfer.training import state as _state
from mmfer.training.data import TensorData, class_weights, seed_everything
from mmfer.training.distributed import DistContext, init_distributed
from mmfer.training.hooks import BEST, LAST, LOG, LOG_COLUMNS, CheckpointHook, CSVLogger, Hook, TrainResult
from mmfer.training.predict import predict
from mmfer.training.schedule import make_scheduler, step_scheduler

# Re-exported: these lived here before the split and are still imported from here.
__all__ = [
    "LOG_COLUMNS",
    "CSVLogger",
    "CheckpointHook",
    "Hook",
    "TensorData",
    "TrainResult",
    "Trainer",
    "class_weights",
    "predict",
    "seed_everything",
]

log = logging.getLogger("mmfer.training")


def _check_config(cfg: TrainConfig) -> None:
    problems = {
        "train.epochs": cfg.epochs >= 1,
        "train.batch_size": cfg.batch_size >= 1,
        "train.lr": cfg.lr > 0,
        "train.weight_decay": cfg.weight_decay >= 0,
        "train.grad_clip": cfg.grad_clip >= 0,
        "train.patience": cfg.patience >= 0,
        "train.checkpoint_every": cfg.checkpoint_every >= 1,
        "train.threads": cfg.threads >= 0,
        "train.modality_dropout": 0.0 <= getattr(cfg, "modality_dropout", 0.0) < 1.0,
        "train.stop_epoch": cfg.stop_epoch >= 0,
        "train.warmup_frac": 0.0 <= cfg.warmup_frac < 1.0,
        "train.label_smoothing": 0.0 <= cfg.label_smoothing < 1.0,
        "train.ema": cfg.ema >= 0,
        "train.input_noise": cfg.input_noise >= 0,
    }
    for key, ok in problems.items():
        if not ok:
            value = getattr(cfg, key.split(".", 1)[1])
            raise ConfigError(f"{key}: invalid value {value!r}")
    schedulers = ("cosine", "warmup_cosine", "plateau", "none")
    if cfg.scheduler not in schedulers:
        raise ConfigError(f"train.scheduler: {cfg.scheduler!r} is not one of {list(schedulers)}")


def _column_std(data: TensorData) -> torch.Tensor:
    """``(F,)`` std of each input column over the valid steps of ``data`` (scale of ``train.input_noise``)."""
    rows = data.x[data.mask]  # (valid steps, F)
    return rows.std(dim=0, unbiased=False) if len(rows) > 1 else torch.ones(data.x.shape[2])


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Trainer:
    """The single training loop; models and experiments differ only by config and hooks.

    Parameters
    ----------
    cfg
        Training hyper-parameters (``val_fraction`` is the caller's business:
        ``fit`` receives the split already made).
    hooks
        Extra :class:`Hook` objects, run after the built-in logger/checkpointer.
    device
        Torch device for the model and batches.

    Attributes
    ----------
    epoch
        Epochs completed so far (1-based count; 0 before the first).
    history
        Per-epoch metric dicts.
    model, optimizer, scheduler
        Live objects during and after ``fit`` (``model`` is the unwrapped module).
    last_grad_norm
        Total gradient norm of the last batch *before* clipping (None if clipping is off).
    improved
        Whether the epoch just finished set a new best validation loss.
    """

    LAST = LAST
    BEST = BEST
    LOG = LOG

    def __init__(
        self, cfg: TrainConfig, *, hooks: Sequence[Hook] = (), device: str | torch.device = "cpu"
    ) -> None:
        _check_config(cfg)
        self.cfg = cfg
        self.hooks: list[Hook] = list(hooks)
        self.device = torch.device(device)
        self._reset()

    def _reset(self) -> None:
        self.dist: DistContext = DistContext()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.num_classes = 0
        self.class_weight = torch.ones(0)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.best_val_loss: float | None = None
        self.bad_epochs = 0
        self.improved = False
        self.stop_reason: str | None = None
        self.last_grad_norm: float | None = None
        self.train_seconds = 0.0
        self.resumed_from = 0
        self._active_hooks: list[Hook] = []
        #: Weight average (``train.ema``): its tensors, the per-step decay and the raw weights
        #: while the average is swapped in (:meth:`averaged_weights`).
        self.ema_state: dict[str, torch.Tensor] | None = None
        self.ema_decay = 0.0
        self._raw_state: dict[str, torch.Tensor] | None = None
        self.noise_scale = torch.ones(1)

    # ------------------------------------------------------------------ properties

    @property
    def rank(self) -> int:
        """This process's data-parallel rank (0 when single-process)."""
        return self.dist.rank

    @property
    def world_size(self) -> int:
        """Number of data-parallel processes."""
        return self.dist.world_size

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.dist.is_main

    @property
    def finished(self) -> bool:
        """All epochs done or early stopping triggered (a resume has nothing left to do)."""
        return self.epoch >= self.horizon or self.stop_reason == "early_stopping"

    @property
    def horizon(self) -> int:
        """Epochs this fit trains: ``cfg.stop_epoch`` if set (at most ``cfg.epochs``), else ``cfg.epochs``."""
        return min(self.cfg.stop_epoch, self.cfg.epochs) if self.cfg.stop_epoch > 0 else self.cfg.epochs

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Inside: the model holds the weight average (``train.ema``; no-op when off)."""
        if self.ema_state is None or self.model is None or self._raw_state is not None:
            yield
            return
        self._raw_state = _clone_state(self.model)
        self.model.load_state_dict(self.ema_state)
        try:
            yield
        finally:
            self.model.load_state_dict(self._raw_state)
            self._raw_state = None

    def _update_average(self) -> None:
        """One EMA step over the floating-point tensors (others copied)."""
        assert self.model is not None and self.ema_state is not None
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                avg = self.ema_state[k]
                if avg.is_floating_point():
                    avg.mul_(self.ema_decay).add_(v.detach(), alpha=1.0 - self.ema_decay)
                else:
                    avg.copy_(v)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop after the current epoch (callable from hooks)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        model: nn.Module,
        train: TensorData,
        val: TensorData | None = None,
        *,
        num_classes: int,
        out_dir: str | Path | None = None,
        resume: bool = True,
    ) -> TrainResult:
        """Train ``model`` in place and leave the best weights in it.

        Parameters
        ----------
        model
            ``forward(x (B, T, F), mask (B, T)) -> logits (B, C)``; seed before
            creating it for reproducible initial weights.
        train, val
            Training data and optional validation data (early stopping, best-weight
            selection and the plateau schedule use the validation loss).
        num_classes
            ``C``; labels must lie in ``[0, C)``.
        out_dir
            Folder for ``log.csv`` and checkpoints (rank 0 writes); None = nothing written.
        resume
            Continue from ``out_dir/last.safetensors`` if it exists; a finished
            run is returned as is (best weights loaded).

        Returns
        -------
        TrainResult

        Raises
        ------
        DataError
            Bad labels/shapes, or an unreadable or incompatible checkpoint.
        ConfigError
            Resuming with trajectory-changing hyper-parameters.
        MmferError
            The training loss became NaN/inf.
        """
        self._check_data(train, val, num_classes)
        self._reset()
        self.dist = init_distributed()
        self.num_classes = num_classes
        out = None if out_dir is None else Path(out_dir)
        prev_threads = torch.get_num_threads()
        if self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        try:
            self._setup_optimisation(model, train)
            hooks = self._hooks_for(out)
            self._resume_or_seed(out, resume)
            self._active_hooks = hooks
            net = self.dist.wrap(model)
            for h in hooks:
                h.on_fit_start(self, model)
            self._run_epochs(net, train, val, hooks)
            return self._finish(model, hooks)
        finally:
            torch.set_num_threads(prev_threads)

    def _setup_optimisation(self, model: nn.Module, train: TensorData) -> None:
        """Model on the device, AdamW, the lr schedule and the loss's class weights."""
        cfg = self.cfg
        self.model = model.to(self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.noise_scale = _column_std(train) if cfg.input_noise > 0 else torch.ones(1)
        if cfg.ema > 0:
            # time constant of cfg.ema epochs whatever the number of batches per epoch
            steps = max(1, math.ceil(len(train) / (cfg.batch_size * max(1, self.world_size))))
            self.ema_decay = math.exp(-1.0 / (cfg.ema * steps))
            self.ema_state = _clone_state(model)
        self.class_weight = (
            class_weights(train.y, self.num_classes) if cfg.class_weighted else torch.ones(self.num_classes)
        ).to(self.device)

    def _hooks_for(self, out: Path | None) -> list[Hook]:
        """The built-in logger and checkpointer (when writing to ``out``), then the user's hooks."""
        if out is None:
            return list(self.hooks)
        return [CSVLogger(out / self.LOG), CheckpointHook(out, self.cfg.checkpoint_every), *self.hooks]

    def _resume_or_seed(self, out: Path | None, resume: bool) -> None:
        """Restore ``out/last.safetensors`` when resuming, else seed this rank's RNGs."""
        if out is not None and resume and (out / self.LAST).is_file():
            self._load_state(out / self.LAST)
            self.resumed_from = self.epoch
            if self.is_main:
                log.info("resumed from %s after epoch %d", out / self.LAST, self.epoch)
        else:
            # Offset by rank so dropout masks differ between replicas.
            seed_everything(self.cfg.seed + self.rank)
        if self.dist.enabled and self.is_main:
            log.info("data-parallel training: world_size=%d", self.world_size)

    def _finish(self, model: nn.Module, hooks: list[Hook]) -> TrainResult:
        """Load the best weights into ``model`` (eval mode), build the result, run ``on_fit_end``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        elif self.ema_state is not None:
            model.load_state_dict(self.ema_state)
        model.eval()
        result = TrainResult(
            history=[dict(r) for r in self.history],
            best_epoch=self.best_epoch,
            best_val_loss=self.best_val_loss,
            train_seconds=self.train_seconds,
            epochs_run=self.epoch,
            stopped_early=self.stop_reason is not None,
            stop_reason=self.stop_reason,
            resumed_from=self.resumed_from,
            world_size=self.world_size,
        )
        for h in hooks:
            h.on_fit_end(self, result)
        return result

    def _run_epochs(
        self, net: nn.Module, train: TensorData, val: TensorData | None, hooks: list[Hook]
    ) -> None:
        cfg = self.cfg
        assert self.optimizer is not None
        show = cfg.progress and self.is_main and sys.stderr.isatty()
        # Off a terminal tqdm is silent: a log line at most every 30 s (elapsed, ETA) instead.
        beat = Heartbeat(
            self.horizon,
            "train epoch",
            every_s=30.0,
            enabled=None if cfg.progress and self.is_main else False,
            initial=self.epoch,
        )
        with tqdm(
            total=self.horizon, initial=self.epoch, disable=not show, unit="epoch", desc="train", leave=False
        ) as bar:
            while not self.finished and self.stop_reason is None:
                for h in hooks:
                    h.on_epoch_start(self)
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                lr = float(self.optimizer.param_groups[0]["lr"])
                train_loss, train_acc = self._train_epoch(net, train, epoch)
                with self.averaged_weights():
                    val_loss, val_acc = self._evaluate(val) if val is not None else (None, None)
                    self._track_best(epoch, val_loss)
                step_scheduler(self.cfg, self.scheduler, train_loss if val_loss is None else val_loss)
                seconds = time.perf_counter() - t0
                self.epoch = epoch
                self.train_seconds += seconds
                metrics = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "val_loss": val_loss,
                    "val_acc": val_acc,
                    "lr": lr,
                    "seconds": seconds,
                }
                self.history.append(metrics)
                for h in hooks:
                    h.on_epoch_end(self, dict(metrics))
                # A hook on one rank may have asked to stop; all ranks must agree.
                if self.dist.any(self.stop_reason is not None):
                    self.request_stop()
                bar.update(1)
                shown = {"loss": f"{train_loss:.4f}", "acc": f"{train_acc:.3f}"}
                if val_loss is not None:
                    shown |= {"val_loss": f"{val_loss:.4f}", "val_acc": f"{val_acc:.3f}"}
                bar.set_postfix(shown)
                beat.tick(**shown)
                log.debug("epoch %d %s", epoch, metrics)
        if self.stop_reason == "early_stopping" and self.is_main:
            log.info(
                "early stopping after epoch %d (best epoch %d, val loss %.4f)",
                self.epoch,
                self.best_epoch,
                self.best_val_loss,
            )

    def _train_epoch(self, net: nn.Module, data: TensorData, epoch: int) -> tuple[float, float]:
        """One pass over (this rank's shard of) ``data``; returns global (loss, accuracy)."""
        assert self.model is not None and self.optimizer is not None
        cfg = self.cfg
        net.train()
        # float64 accumulators: [weighted loss sum, weight sum, correct, count]
        sums = torch.zeros(4, dtype=torch.float64)
        loader = data.loader(
            cfg.batch_size,
            shuffle=True,
            seed=cfg.seed,
            epoch=epoch - 1,
            rank=self.rank,
            world_size=self.world_size,
        )
        for step, (x, mask, y) in enumerate(loader):
            x, mask, y = x.to(self.device), mask.to(self.device), y.to(self.device)  # (B,T,F), (B,T), (B,)
            for h in self._active_hooks:
                x, mask = h.transform_batch(self, x, mask)  # training-time augmentation only
            if cfg.input_noise > 0:  # relative to each column's spread, valid steps only
                x = x + cfg.input_noise * self.noise_scale * torch.randn_like(x) * mask[..., None]
            logits = net(x, mask)  # (B, C)
            per = F.cross_entropy(
                logits, y, weight=self.class_weight, reduction="none", label_smoothing=cfg.label_smoothing
            )  # (B,) = w_y * nll (smoothed)
            wsum = self.class_weight[y].sum()
            # Equals cross_entropy(reduction="mean") with weights; kept split to aggregate exactly.
            loss = per.sum() / wsum
            if not torch.isfinite(loss):
                raise MmferError(
                    f"training loss became {loss.item()} at epoch {epoch}, batch {step + 1}; "
                    "lower train.lr or check the input features for NaN/inf"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.last_grad_norm = float(norm)
            self.optimizer.step()
            if self.ema_state is not None:
                self._update_average()
            with torch.no_grad():
                sums += torch.stack(
                    [
                        per.sum().double().cpu(),
                        wsum.double().cpu(),
                        (logits.argmax(1) == y).sum().double().cpu(),
                        torch.tensor(float(len(y)), dtype=torch.float64),
                    ]
                )
            loss_value = float(loss.detach())
            for h in self._active_hooks:
                h.on_batch_end(self, loss_value)
        sums = self.dist.all_reduce_sum(sums)
        return float(sums[0] / sums[1]), float(sums[2] / sums[3])

    @torch.inference_mode()
    def _evaluate(self, data: TensorData) -> tuple[float, float]:
        """Class-weighted loss and accuracy on ``data``, exact over all ranks."""
        assert self.model is not None
        model = self.model
        model.eval()
        sums = torch.zeros(4, dtype=torch.float64)
        # Unpadded strided shard: each row counted exactly once across ranks.
        shard = data.subset(torch.arange(self.rank, len(data), self.world_size))
        for x, mask, y in shard.loader(max(self.cfg.batch_size, 256)):
            x, mask, y = x.to(self.device), mask.to(self.device), y.to(self.device)
            logits = model(x, mask)  # (B, C)
            per = F.cross_entropy(logits, y, weight=self.class_weight, reduction="none")  # (B,)
            sums += torch.stack(
                [
                    per.sum().double().cpu(),
                    self.class_weight[y].sum().double().cpu(),
                    (logits.argmax(1) == y).sum().double().cpu(),
                    torch.tensor(float(len(y)), dtype=torch.float64),
                ]
            )
        sums = self.dist.all_reduce_sum(sums)
        return float(sums[0] / sums[1]), float(sums[2] / sums[3])

    def _track_best(self, epoch: int, val_loss: float | None) -> None:
        assert self.model is not None
        self.improved = False
        if val_loss is None:
            self.best_epoch = epoch
            return
        if math.isfinite(val_loss) and (self.best_val_loss is None or val_loss < self.best_val_loss):
            self.best_val_loss = val_loss
            self.best_epoch = epoch
            self.best_state = _clone_state(self.model)
            self.bad_epochs = 0
            self.improved = True
        else:
            self.bad_epochs += 1
        if self.cfg.patience > 0 and self.bad_epochs >= self.cfg.patience:
            self.request_stop("early_stopping")

    def _check_data(self, train: TensorData, val: TensorData | None, num_classes: int) -> None:
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
        if len(train) == 0:
            raise DataError(None, "training set is empty")
        for name, d in (("train", train), ("val", val)):
            if d is None:
                continue
            if len(d) and int(d.y.max()) >= num_classes:
                raise DataError(None, f"{name} label {int(d.y.max())} is outside [0, {num_classes})")
        if val is not None:
            if len(val) == 0:
                raise DataError(None, "validation set is empty (pass val=None to train without one)")
            if val.x.shape[2] != train.x.shape[2]:
                raise DataError(
                    None, f"val has {val.x.shape[2]} features per step but train has {train.x.shape[2]}"
                )

    # ------------------------------------------------------------------ checkpoint state

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of the full training state (a collective under DDP).

        See :func:`mmfer.training.state.train_state`.
        """
        return _state.train_state(self)

    def save_state(self, path: str | Path) -> None:
        """Write :meth:`state` to ``path`` (rank 0 writes; every rank must call it)."""
        _state.save_train_state(self, path)

    def save_best(self, path: str | Path) -> None:
        """Write the best weights (``model.*``) with their epoch and validation loss."""
        _state.save_best_weights(self, path)

    def _load_state(self, path: Path) -> None:
        _state.load_train_state(self, path)
