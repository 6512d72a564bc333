"""The one training loop of mmfer (every model, every protocol, with hooks).

:class:`Trainer` trains any ``nn.Module`` whose ``forward(x, mask)`` maps
``x (B, T, F)`` float32 and ``mask (B, T)`` bool (True = valid step) to logits
``(B, C)``. It owns: AdamW, class-weighted cross entropy, gradient clipping,
cosine/plateau LR schedules, seeding and deterministic shuffling, early
stopping with best-weight restore, ``log.csv``, safetensors checkpoints with
exact resume, and torchrun data parallelism (the context in :mod:`mmfer.training.distributed`; the
``torchrun`` command line in :mod:`mmfer.training.ddp`, which imports this module, never the reverse).
Everything else (metrics plots, extra logging, interruption) plugs in as a
:class:`Hook`.

Output folder layout (rank 0 only)::

    out_dir/log.csv            one row per epoch, rewritten atomically
    out_dir/last.safetensors   full training state (resume point)
    out_dir/best.safetensors   best-on-validation weights (when validating)
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from mmfer.config import TrainConfig, to_dict
from mmfer.errors import ConfigError, DataError, MmferError
from mmfer.io import atomic_write, atomic_write_text
from mmfer.progress import Heartbeat
from mmfer.training.checkpoint import (
    load_checkpoint,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    save_checkpoint,
    strip_prefix,
    with_prefix,
)
from mmfer.training.distributed import DistContext, init_distributed

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

#: Columns of ``log.csv``, in order.
LOG_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")

#: Checkpoint kind tag; bump the version when the layout changes.
STATE_KIND = "mmfer.train_state"
STATE_VERSION = 1

#: TrainConfig fields that shape the optimisation trajectory: resuming with a
#: different value would silently mix two runs, so it is refused.
_TRAJECTORY_KEYS: tuple[str, ...] = (
    "batch_size",
    "lr",
    "weight_decay",
    "grad_clip",
    "scheduler",
    "class_weighted",
    "seed",
    "modality_dropout",
)


# --------------------------------------------------------------------------- data


@dataclass(eq=False)  # element-wise tensor equality has no single truth value
class TensorData(Dataset):
    """Fused model inputs and labels, held as tensors.

    Parameters
    ----------
    x
        ``(N, T, F)`` float32 features (numpy arrays are converted).
    mask
        ``(N, T)`` bool, True = valid time step.
    y
        ``(N,)`` int64 class indices.

    Indexing with a list/array/tensor of row indices returns the batch tuple
    ``(x (B, T, F), mask (B, T), y (B,))``, which is what :meth:`loader` relies on.
    """

    x: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        self.x = torch.as_tensor(self.x, dtype=torch.float32)
        self.mask = torch.as_tensor(self.mask).to(torch.bool)
        self.y = torch.as_tensor(self.y)
        if self.y.is_floating_point() or self.y.dtype == torch.bool:
            raise DataError(None, f"TensorData: y must hold integer class indices, got dtype {self.y.dtype}")
        self.y = self.y.to(torch.long)
        if self.x.ndim != 3:
            raise DataError(None, f"TensorData: x must be (N, T, F), got shape {tuple(self.x.shape)}")
        if tuple(self.mask.shape) != tuple(self.x.shape[:2]):
            raise DataError(
                None, f"TensorData: mask shape {tuple(self.mask.shape)} != x (N, T) {tuple(self.x.shape[:2])}"
            )
        if tuple(self.y.shape) != (self.x.shape[0],):
            raise DataError(None, f"TensorData: y shape {tuple(self.y.shape)} != ({self.x.shape[0]},)")
        if len(self.y) and int(self.y.min()) < 0:
            raise DataError(None, f"TensorData: negative class index {int(self.y.min())} in y")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, idx: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(idx, (list, np.ndarray)):
            idx = torch.as_tensor(idx, dtype=torch.long)
        return self.x[idx], self.mask[idx], self.y[idx]

    def subset(self, idx: Any) -> TensorData:
        """Rows ``idx`` (indices or boolean mask) as a new :class:`TensorData`."""
        x, mask, y = self[idx]
        return TensorData(x, mask, y)

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> DataLoader:
        """Batches of ``(x (B, T, F), mask (B, T), y (B,))``.

        Shuffled order depends only on ``(seed, epoch)``: a ``DistributedSampler``
        permutes with a ``torch.Generator`` seeded with ``seed + epoch`` (also with
        one process), so a resumed run replays exactly the order of an
        uninterrupted one. With ``world_size > 1`` each rank gets its shard
        (padded by repetition to equal length so every rank runs the same number
        of steps, which DDP's collectives need).
        """
        sampler: Sampler[int] | Sequence[int]
        if shuffle or world_size > 1:
            ds = DistributedSampler(
                self, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
            )
            ds.set_epoch(epoch)
            sampler = ds
        else:
            sampler = range(len(self))
        batches = BatchSampler(sampler, batch_size, drop_last=False)  # type: ignore[arg-type]
        # batch_size=None: the dataset is indexed with a whole list of rows at once,
        # avoiding per-sample __getitem__ + stacking.
        return DataLoader(self, sampler=batches, batch_size=None)

    @classmethod
    def from_npz(cls, path: str | Path) -> TensorData:
        """Load ``x``, ``mask``, ``y`` from an ``.npz`` (no pickle).

        Raises
        ------
        DataError
            Missing/unreadable file, missing key or inconsistent shapes, naming ``path``.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(p, "npz file not found")
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ("x", "mask", "y") if k not in z.files]
                if missing:
                    raise DataError(p, f"npz lacks array(s) {', '.join(missing)} (needs x, mask, y)")
                x, mask, y = z["x"], z["mask"], z["y"]
        except DataError:
            raise
        except (OSError, ValueError, EOFError) as e:
            raise DataError(p, f"cannot read npz: {e}") from None
        try:
            return cls(x, mask, y)
        except DataError as e:
            raise DataError(p, e.problem) from None

    def save_npz(self, path: str | Path) -> Path:
        """Write ``x``, ``mask``, ``y`` to an ``.npz`` atomically."""

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=self.x.numpy(), mask=self.mask.numpy(), y=self.y.numpy())

        return atomic_write(path, write)


def class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights of the training labels, normalised.

    ``w_c = (1 / n_c) * K / sum_{k present} (1 / n_k)`` for the ``K`` classes
    present, so present classes average to 1; a class absent from ``y`` gets 1
    (it never contributes to the training loss, and an average weight keeps its
    validation samples counted like any other class).

    Parameters
    ----------
    y
        ``(N,)`` int64 training labels.
    num_classes
        ``C``.

    Returns
    -------
    torch.Tensor
        ``(C,)`` float32.
    """
    counts = torch.bincount(y.to(torch.long).cpu(), minlength=num_classes).to(torch.float64)  # (C,)
    present = counts > 0
    inv = torch.where(present, 1.0 / counts.clamp(min=1.0), torch.zeros_like(counts))
    w = inv * present.sum() / inv.sum()
    w[~present] = 1.0
    return w.to(torch.float32)


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, numpy's global RNG and torch."""
    random.seed(seed)
    # The legacy global RNG is what third-party code (e.g. scikit-learn defaults) draws from.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- hooks


class Hook:
    """Callbacks around the training loop; override any subset.

    Hooks run on every rank in data-parallel training (check
    ``trainer.is_main`` before writing files). A hook may call
    :meth:`Trainer.request_stop`; the loop stops after the current epoch.
    """

    def on_fit_start(self, trainer: Trainer, model: nn.Module) -> None:
        """Before the first epoch (after any resume); ``model`` is the unwrapped module."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before epoch ``trainer.epoch + 1``."""

    def transform_batch(
        self, trainer: Trainer, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batches only (never validation or prediction): return the ``x (B, T, F)``,
        ``mask (B, T)`` the model is fed, e.g. augmented (modality dropout). Must not modify
        its inputs in place (they may be views of the training set)."""
        return x, mask

    def on_batch_end(self, trainer: Trainer, loss: float) -> None:
        """After ``optimizer.step()``; parameter ``.grad`` still holds this batch's clipped gradients."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After validation, scheduling and early-stopping bookkeeping of an epoch."""

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After the best weights were restored."""


class CSVLogger(Hook):
    """Rewrite ``path`` atomically from ``trainer.history`` after every epoch (rank 0).

    Rewriting the whole (small) file rather than appending keeps it consistent
    with the history restored on resume, even when epochs after the last
    checkpoint are replayed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not trainer.is_main:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in trainer.history:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in LOG_COLUMNS})
        atomic_write_text(self.path, buf.getvalue())


class CheckpointHook(Hook):
    """Save the training state to ``out_dir/last.safetensors`` every ``every`` epochs.

    The last epoch (or an early stop) is always saved; when validating, the
    best weights go to ``out_dir/best.safetensors`` whenever validation improves.
    """

    def __init__(self, out_dir: str | Path, every: int = 1) -> None:
        self.out_dir = Path(out_dir)
        self.every = max(1, every)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        # The decision must be identical on every rank: save_state is a collective.
        if trainer.epoch % self.every == 0 or trainer.finished:
            trainer.save_state(self.out_dir / Trainer.LAST)
        if trainer.improved and trainer.is_main:
            trainer.save_best(self.out_dir / Trainer.BEST)


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history
        One dict per epoch with the :data:`LOG_COLUMNS` keys (``val_*`` None without validation).
    best_epoch
        1-based epoch of the lowest validation loss (the last epoch without validation).
    best_val_loss
        That loss, or None without validation.
    train_seconds
        Wall time spent in epochs, summed over resumed sessions.
    epochs_run
        Epochs completed, including those before a resume.
    stopped_early
        True when training ended before ``cfg.epochs`` (early stopping or a hook's request).
    stop_reason
        ``"early_stopping"``, ``"requested"`` or None.
    resumed_from
        Epoch the run resumed after (0 = fresh start).
    world_size
        Data-parallel processes.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float | None
    train_seconds: float
    epochs_run: int
    stopped_early: bool
    stop_reason: str | None = None
    resumed_from: int = 0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view."""
        return asdict(self)


# --------------------------------------------------------------------------- trainer


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
    }
    for key, ok in problems.items():
        if not ok:
            value = getattr(cfg, key.split(".", 1)[1])
            raise ConfigError(f"{key}: invalid value {value!r}")
    if cfg.scheduler not in ("cosine", "plateau", "none"):
        raise ConfigError(f"train.scheduler: {cfg.scheduler!r} is not one of ['cosine', 'plateau', 'none']")


def _numpy_rng_to_json() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]  # noqa: NPY002
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _numpy_rng_from_json(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _python_rng_to_json() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_from_json(state: list[Any]) -> None:
    version, internal, gauss = state
    random.setstate((version, tuple(internal), gauss))


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

    LAST = "last.safetensors"
    BEST = "best.safetensors"
    LOG = "log.csv"

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
        return self.epoch >= self.cfg.epochs or self.stop_reason == "early_stopping"

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
        cfg = self.cfg
        self._check_data(train, val, num_classes)
        self._reset()
        self.dist = init_distributed()
        self.num_classes = num_classes
        out = None if out_dir is None else Path(out_dir)

        prev_threads = torch.get_num_threads()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        try:
            self.model = model.to(self.device)
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            self.scheduler = self._make_scheduler(self.optimizer)
            self.class_weight = (
                class_weights(train.y, num_classes) if cfg.class_weighted else torch.ones(num_classes)
            ).to(self.device)

            hooks = list(self.hooks)
            if out is not None:
                hooks = [CSVLogger(out / self.LOG), CheckpointHook(out, cfg.checkpoint_every), *hooks]
            if out is not None and resume and (out / self.LAST).is_file():
                self._load_state(out / self.LAST)
                self.resumed_from = self.epoch
                if self.is_main:
                    log.info("resumed from %s after epoch %d", out / self.LAST, self.epoch)
            else:
                # Offset by rank so dropout masks differ between replicas.
                seed_everything(cfg.seed + self.rank)
            if self.dist.enabled and self.is_main:
                log.info("data-parallel training: world_size=%d", self.world_size)

            self._active_hooks = hooks
            net = self.dist.wrap(model)
            for h in hooks:
                h.on_fit_start(self, model)
            self._run_epochs(net, train, val, hooks)

            if self.best_state is not None:
                model.load_state_dict(self.best_state)
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
        finally:
            torch.set_num_threads(prev_threads)

    def _run_epochs(
        self, net: nn.Module, train: TensorData, val: TensorData | None, hooks: list[Hook]
    ) -> None:
        cfg = self.cfg
        assert self.optimizer is not None
        show = cfg.progress and self.is_main and sys.stderr.isatty()
        # Off a terminal tqdm is silent: a log line at most every 30 s (elapsed, ETA) instead.
        beat = Heartbeat(
            cfg.epochs,
            "train epoch",
            every_s=30.0,
            enabled=None if cfg.progress and self.is_main else False,
            initial=self.epoch,
        )
        with tqdm(
            total=cfg.epochs, initial=self.epoch, disable=not show, unit="epoch", desc="train", leave=False
        ) as bar:
            while not self.finished and self.stop_reason is None:
                for h in hooks:
                    h.on_epoch_start(self)
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                lr = float(self.optimizer.param_groups[0]["lr"])
                train_loss, train_acc = self._train_epoch(net, train, epoch)
                val_loss, val_acc = self._evaluate(val) if val is not None else (None, None)
                self._step_scheduler(train_loss if val_loss is None else val_loss)
                self._track_best(epoch, val_loss)
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
            logits = net(x, mask)  # (B, C)
            per = F.cross_entropy(logits, y, weight=self.class_weight, reduction="none")  # (B,) = w_y * nll
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

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        cfg = self.cfg
        if cfg.scheduler == "cosine":
            # Floor at 1% of the base lr so the last epochs still learn something.
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=cfg.epochs, eta_min=cfg.lr * 1e-2
            )
        if cfg.scheduler == "plateau":
            patience = max(1, cfg.patience // 2) if cfg.patience > 0 else 2
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=0.5, patience=patience
            )
        return None

    def _step_scheduler(self, monitored_loss: float) -> None:
        if self.cfg.scheduler == "cosine":
            self.scheduler.step()
        elif self.cfg.scheduler == "plateau":
            self.scheduler.step(monitored_loss)

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

        Tensors: ``model.*`` (current weights), ``best.*`` (best weights, if any),
        ``optim.state.<i>.<name>`` (AdamW moments and step), ``rng.torch.<rank>``.
        Metadata: epoch, config, history, early-stopping counters, optimizer
        ``param_groups``, scheduler state, numpy/Python RNG states per rank.
        """
        assert self.model is not None and self.optimizer is not None
        rng = self.dist.gather(
            {"torch": torch.get_rng_state(), "numpy": _numpy_rng_to_json(), "python": _python_rng_to_json()}
        )
        tensors = with_prefix("model", self.model.state_dict())
        if self.best_state is not None:
            tensors |= with_prefix("best", self.best_state)
        opt_tensors, opt_meta = optimizer_state_to_flat(self.optimizer.state_dict(), prefix="optim")
        tensors |= opt_tensors
        for r, states in enumerate(rng):
            tensors[f"rng.torch.{r}"] = states["torch"]
        meta = {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "finished": self.finished,
            "num_classes": self.num_classes,
            "world_size": self.world_size,
            "train": to_dict(self.cfg),
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "bad_epochs": self.bad_epochs,
            "stop_reason": self.stop_reason,
            "train_seconds": self.train_seconds,
            "optimizer": opt_meta,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": [{"numpy": s["numpy"], "python": s["python"]} for s in rng],
        }
        return tensors, meta

    def save_state(self, path: str | Path) -> None:
        """Write :meth:`state` to ``path`` (rank 0 writes; every rank must call it)."""
        tensors, meta = self.state()
        if self.is_main:
            save_checkpoint(path, tensors, meta)

    def save_best(self, path: str | Path) -> None:
        """Write the best weights (``model.*``) with their epoch and validation loss."""
        if self.best_state is None:
            return
        save_checkpoint(
            path,
            with_prefix("model", self.best_state),
            {
                "kind": "mmfer.best_weights",
                "epoch": self.best_epoch,
                "val_loss": self.best_val_loss,
                "num_classes": self.num_classes,
            },
        )

    def _load_state(self, path: Path) -> None:
        assert self.model is not None and self.optimizer is not None
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != STATE_KIND:
            raise DataError(path, f"not a training-state checkpoint (kind={meta.get('kind')!r})")
        if meta.get("version") != STATE_VERSION:
            raise DataError(path, f"checkpoint version {meta.get('version')} != supported {STATE_VERSION}")
        saved_cfg = meta["train"]
        now = to_dict(self.cfg)
        keys = list(_TRAJECTORY_KEYS) + (["epochs"] if self.cfg.scheduler == "cosine" else [])
        # a key missing from an older checkpoint had its default value then
        defaults = to_dict(TrainConfig())
        for k in keys:
            if saved_cfg.get(k, defaults[k]) != now[k]:
                raise ConfigError(
                    f"{path}: cannot resume: train.{k} was {saved_cfg.get(k)!r} in the checkpoint but is "
                    f"{now[k]!r} now; use a fresh output folder or resume=False"
                )
        if meta["num_classes"] != self.num_classes:
            raise ConfigError(
                f"{path}: cannot resume: checkpoint has {meta['num_classes']} classes, "
                f"fit got {self.num_classes}"
            )
        try:
            self.model.load_state_dict(strip_prefix("model", tensors))
            self.optimizer.load_state_dict(optimizer_state_from_flat(tensors, meta["optimizer"], "optim"))
        except (RuntimeError, ValueError, KeyError) as e:
            raise DataError(path, f"checkpoint does not fit this model/optimizer: {e}") from None
        if self.scheduler is not None and meta["scheduler"] is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
        best = strip_prefix("best", tensors)
        self.best_state = {k: v.to(self.device) for k, v in best.items()} or None
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])
        self.best_epoch = int(meta["best_epoch"])
        self.best_val_loss = meta["best_val_loss"]
        self.bad_epochs = int(meta["bad_epochs"])
        # Only early stopping is final; a hook's stop request is not carried over.
        self.stop_reason = "early_stopping" if meta["stop_reason"] == "early_stopping" else None
        self.train_seconds = float(meta["train_seconds"])
        key = f"rng.torch.{self.rank}"
        if key in tensors and self.rank < len(meta["rng"]):
            torch.set_rng_state(tensors[key].to(torch.uint8))
            _numpy_rng_from_json(meta["rng"][self.rank]["numpy"])
            _python_rng_from_json(meta["rng"][self.rank]["python"])
        else:
            # Different world size than when saved: no saved stream for this rank.
            seed_everything(self.cfg.seed + self.rank + 7919 * self.epoch)


# --------------------------------------------------------------------------- inference


def predict(
    model: nn.Module,
    data_x: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities of ``model`` in eval mode, without autograd.

    Parameters
    ----------
    model
        ``forward(x (B, T, F), mask (B, T)) -> logits (B, C)``.
    data_x
        ``(N, T, F)`` features.
    mask
        ``(N, T)`` bool, True = valid step.
    batch_size
        Rows per forward pass.
    device
        Defaults to the device of the model's first parameter (CPU if none).

    Returns
    -------
    np.ndarray
        ``(N, C)`` float32 softmax probabilities.
    """
    if batch_size < 1:
        raise ConfigError(f"predict: batch_size must be >= 1, got {batch_size}")
    x = torch.as_tensor(data_x, dtype=torch.float32)  # (N, T, F)
    m = torch.as_tensor(mask).to(torch.bool)  # (N, T)
    if x.ndim != 3 or tuple(m.shape) != tuple(x.shape[:2]):
        raise DataError(
            None, f"predict: x {tuple(x.shape)} must be (N, T, F) with mask (N, T), got {tuple(m.shape)}"
        )
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, x.shape[0], batch_size):
                xb = x[start : start + batch_size].to(device)  # (B, T, F)
                mb = m[start : start + batch_size].to(device)  # (B, T)
                out.append(torch.softmax(model(xb, mb).float(), dim=-1).cpu())  # (B, C)
    finally:
        model.train(was_training)
    if not out:
        raise DataError(None, "predict: no rows to predict")
    return torch.cat(out).numpy()
