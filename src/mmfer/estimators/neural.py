"""Neural models (:mod:`mmfer.models`) behind the estimator contract.

Every model registered in :data:`mmfer.registry.MODELS` gets an estimator of
the same name. Its parameters are the fields of :class:`~mmfer.config.ModelConfig`
and :class:`~mmfer.config.TrainConfig` in one flat namespace
(``hidden_size``, ``dropout``, ``lr``, ``epochs`` ...); training goes through the
one :class:`~mmfer.training.Trainer`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mmfer.config import ModelConfig, TrainConfig, from_dict, to_dict
from mmfer.errors import ConfigError
from mmfer.estimators.base import ESTIMATORS, Estimator

__all__ = ["NeuralEstimator", "split_params"]

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "name")
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_CLASH = set(_MODEL_FIELDS) & set(_TRAIN_FIELDS)
assert not _CLASH, f"ModelConfig and TrainConfig share field names {_CLASH}"


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route flat parameters to ``(model_fields, train_fields)``."""
    model = {k: v for k, v in params.items() if k in _MODEL_FIELDS}
    train = {k: v for k, v in params.items() if k in _TRAIN_FIELDS}
    return model, train


def _group_holdout(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean ``(N,)`` mask of rows in whole groups held out for early stopping."""
    unique = np.unique(groups)
    n_val = min(max(1, round(fraction * len(unique))), len(unique) - 1) if len(unique) >= 2 else 0
    held = np.random.default_rng(seed).permutation(unique)[:n_val]
    return np.isin(groups, held)


class NeuralEstimator(Estimator):
    """A registered :mod:`mmfer.models` network trained by the one training loop.

    Parameters
    ----------
    model
        Registered model name (``rmlstm``, ``lstm`` ...).
    **params
        Any :class:`ModelConfig` / :class:`TrainConfig` field.
    """

    #: The same declared space for every neural model (the same budget is drawn from it).
    search_space: ClassVar[dict[str, list[Any]]] = {
        "lr": [1e-3, 3e-3],
        "hidden_size": [64, 128],
        "dropout": [0.2, 0.5],
        "epochs": [10, 25],
        "weight_decay": [1e-4, 1e-2],
    }

    def __init__(self, model: str, **params: Any) -> None:
        self.name = model
        super().__init__(**params)
        self.module: torch.nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        #: Where the training loop writes its log and resumable checkpoints (None = nowhere).
        self.out_dir: str | Path | None = None
        #: Input width F of the fitted/loaded network (0 = unknown).
        self._in_features = 0

    def default_params(self) -> dict[str, Any]:
        m = to_dict(ModelConfig(name=self.name))
        m.pop("name")
        t = to_dict(TrainConfig())
        t.update(progress=False)
        return {**m, **t}

    def clone(self, **params: Any) -> Estimator:
        return NeuralEstimator(self.name, **{**self.params, **params})

    @property
    def model_cfg(self) -> ModelConfig:
        m, _ = split_params(self.params)
        return from_dict(ModelConfig, {"name": self.name, **m})

    @property
    def train_cfg(self) -> TrainConfig:
        _, t = split_params(self.params)
        return from_dict(TrainConfig, t)

    def build(self, in_features: int, num_classes: int) -> torch.nn.Module:
        """A fresh, seeded network for ``in_features`` inputs and ``num_classes`` outputs."""
        from mmfer.models import create_model

        torch.manual_seed(int(self.params["seed"]))
        return create_model(self.name, in_features=in_features, num_classes=num_classes, cfg=self.model_cfg)

    def _fit(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        y: np.ndarray,
        *,
        groups: np.ndarray | None,
    ) -> None:
        from mmfer.training import Hook, TensorData, Trainer

        tcfg = self.train_cfg
        is_val = np.zeros(len(y), dtype=bool)
        if tcfg.patience > 0 and tcfg.val_fraction > 0:
            g = groups if groups is not None else np.arange(len(y))
            is_val = _group_holdout(g, tcfg.val_fraction, tcfg.seed)

        def tensors(rows: np.ndarray) -> TensorData:
            return TensorData(
                torch.from_numpy(x[rows]), torch.from_numpy(mask[rows]), torch.from_numpy(y[rows])
            )

        hooks: list[Hook] = []
        if tcfg.modality_dropout > 0:
            from mmfer.training.modality_dropout import ModalityDropout

            if self.layout_ is None:
                raise ConfigError(
                    f"{self.name}: train.modality_dropout={tcfg.modality_dropout} needs the fused layout; "
                    "fit through mmfer.pipeline.fit_rows or call set_layout(fuser.layout()) first"
                )
            if self.layout_.width != x.shape[2]:
                raise ConfigError(
                    f"{self.name}: fused layout width {self.layout_.width} != input width {x.shape[2]}"
                )
            hooks.append(ModalityDropout(self.layout_, tcfg.modality_dropout, seed=tcfg.seed))
        self.module = self.build(x.shape[2], self.num_classes_)
        self._in_features = int(x.shape[2])
        result = Trainer(tcfg, hooks=hooks).fit(
            self.module,
            tensors(np.flatnonzero(~is_val)),
            tensors(np.flatnonzero(is_val)) if is_val.any() else None,
            num_classes=self.num_classes_,
            out_dir=self.out_dir,
        )
        self.module.eval()
        self.history = list(result.history)

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from mmfer.training import predict

        if self.module is None:
            raise ConfigError(f"{self.name}: predict_proba before fit")
        threads = int(self.params["threads"])
        prev = torch.get_num_threads()
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            return predict(self.module, torch.from_numpy(x), torch.from_numpy(mask))
        finally:
            torch.set_num_threads(prev)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.module is None:
            raise ConfigError(f"{self.name}: nothing to save before fit")
        arrays = {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        meta: dict[str, Any] = {"num_classes": self.num_classes_}
        if self._in_features:
            meta["in_features"] = self._in_features
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Rebuild the network from :meth:`state` output (needs ``in_features`` in ``meta``)."""
        if "in_features" not in meta:
            raise ConfigError(f"{self.name}: checkpoint state lacks in_features; cannot rebuild the network")
        module = self.build(int(meta["in_features"]), int(meta["num_classes"]))
        module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        self._in_features = int(meta["in_features"])
        return self.load_module(module, int(meta["num_classes"]))

    def load_module(self, module: torch.nn.Module, num_classes: int) -> NeuralEstimator:
        """Adopt an already-built (loaded) network, e.g. from a checkpoint."""
        self.module = module.eval()
        self.num_classes_ = int(num_classes)
        return self


def _neural_factory(model_name: str) -> Any:
    def make(**params: Any) -> NeuralEstimator:
        return NeuralEstimator(model_name, **params)

    make.__name__ = model_name
    make.__doc__ = f"Estimator for the neural model {model_name!r}."
    return make


def _register_all() -> None:
    import mmfer.models  # noqa: F401  (registers the networks)
    from mmfer.registry import MODELS

    for name in MODELS.names():
        if name not in ESTIMATORS:
            ESTIMATORS.register(name)(_neural_factory(name))


_register_all()
