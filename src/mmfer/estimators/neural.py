"""Neural models (:mod:`mmfer.models`) behind the estimator contract.

Every model registered in :data:`mmfer.registry.MODELS` gets an estimator of
the same name. Its parameters are the fields of :class:`~mmfer.config.ModelConfig`
and :class:`~mmfer.config.TrainConfig` in one flat namespace
(``hidden_size``, ``dropout``, ``lr``, ``epochs`` ...); training goes through the
one :class:`~mmfer.training.Trainer`.

Search spaces are declared per model family (:func:`network_space`): every network
shares :data:`NETWORK_SPACE` (which includes ``input_proj``), and a family adds the
settings only it has -- ``mogrify_rounds`` for the mogrifier LSTMs (``rmlstm``,
``mlstm`` and the RMLSTM ablations), ``num_heads`` for the ``transformer``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mmfer.config import ModelConfig, TrainConfig, from_dict, to_dict
from mmfer.errors import ConfigError
from mmfer.estimators.base import ESTIMATORS, Estimator, named_factory
from mmfer.models.recurrent import MogrifierLSTMModel
from mmfer.models.transformer import TransformerModel
from mmfer.registry import MODELS

__all__ = [
    "FAMILY_SPACES",
    "LEGACY_NETWORK_SPACE",
    "NETWORK_SPACE",
    "NeuralEstimator",
    "network_space",
    "split_params",
]

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "name")
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_CLASH = set(_MODEL_FIELDS) & set(_TRAIN_FIELDS)
assert not _CLASH, f"ModelConfig and TrainConfig share field names {_CLASH}"


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route flat parameters to ``(model_fields, train_fields)``."""
    model = {k: v for k, v in params.items() if k in _MODEL_FIELDS}
    train = {k: v for k, v in params.items() if k in _TRAIN_FIELDS}
    return model, train


#: Settings every network is searched over (the training recipe; 2304 combinations).
#: ``epochs`` is the length of the lr schedule: how many of them the outer fit trains
#: (``stop_epoch``) is chosen from the per-epoch inner scores (``eval.select_epochs``).
NETWORK_SPACE: dict[str, list[Any]] = {
    "lr": [1e-3, 3e-3],
    "hidden_size": [64, 128],
    "dropout": [0.2, 0.5],
    "epochs": [30],
    # AdamW's decoupled decay, up to strong regularisation for a few hundred clips
    "weight_decay": [1e-3, 1e-2, 1e-1],
    # a learned projection of the fused vector first, sized to the data
    "input_proj": [32, 64, 128],
    "scheduler": ["cosine", "warmup_cosine"],
    "label_smoothing": [0.0, 0.1],
    # weight average, time constant in epochs (0 = off)
    "ema": [0.0, 2.0],
    # Gaussian noise while training, relative to each input column's spread
    "input_noise": [0.0, 0.5],
    # more (smaller) steps per epoch
    "batch_size": [16, 32],
}

#: The search space before the small-data recipe (2 values each: 64 combinations), kept
#: to compare the two on the same folds (``eval.search.neural``, ``eval.select_epochs=false``).
LEGACY_NETWORK_SPACE: dict[str, list[Any]] = {
    "lr": [1e-3, 3e-3],
    "hidden_size": [64, 128],
    "dropout": [0.2, 0.5],
    "epochs": [10, 25],
    "weight_decay": [1e-4, 1e-2],
    "input_proj": [0, 64],
}

#: Settings of one model family on top of :data:`NETWORK_SPACE`, keyed by the
#: :mod:`mmfer.models` class the family derives from (checked in this order, first match).
FAMILY_SPACES: tuple[tuple[type, dict[str, list[Any]]], ...] = (
    (MogrifierLSTMModel, {"mogrify_rounds": [3, 5]}),
    (TransformerModel, {"num_heads": [2, 4]}),  # both divide every hidden_size above
)


def network_space(model: str) -> dict[str, list[Any]]:
    """The declared search space of the registered network ``model``.

    :data:`NETWORK_SPACE` plus the settings of the model's family (:data:`FAMILY_SPACES`),
    so e.g. ``rmlstm`` also searches ``mogrify_rounds`` and ``transformer`` ``num_heads``;
    a model class with its own ``search_space`` (``fer2013_ft``) gets exactly that one.

    Raises
    ------
    ConfigError
        ``model`` is not a registered network.
    """
    cls = MODELS.get(model)
    own = getattr(cls, "search_space", None)  # a model unlike the others declares its whole space
    if own is not None:
        return {k: list(v) for k, v in own.items()}
    space = {k: list(v) for k, v in NETWORK_SPACE.items()}
    for family, extra in FAMILY_SPACES:
        if issubclass(cls, family):
            space |= {k: list(v) for k, v in extra.items()}
            break
    return space


class NeuralEstimator(Estimator):
    """A registered :mod:`mmfer.models` network trained by the one training loop.

    Parameters
    ----------
    model
        Registered model name (``rmlstm``, ``lstm`` ...).
    **params
        Any :class:`ModelConfig` / :class:`TrainConfig` field.
    """

    #: Replaced per instance by the space of the model's family (:func:`network_space`).
    search_space: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, model: str, **params: Any) -> None:
        self.name = model
        super().__init__(**params)
        self.search_space = network_space(model)  # type: ignore[misc]
        # pixels in, e.g. fer2013_ft: the Fuser leaves these modalities unstandardised
        self.raw_modalities = tuple(getattr(MODELS.get(model), "raw_modalities", ()))
        self.module: torch.nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        #: Where the training loop writes its log and resumable checkpoints (None = nowhere).
        self.out_dir: str | Path | None = None
        #: Input width F of the fitted/loaded network (0 = unknown).
        self._in_features = 0
        #: Extra training-loop hooks of the next fit (not copied by :meth:`clone`).
        self.extra_hooks: list[Any] = []

    def default_params(self) -> dict[str, Any]:
        """Every :class:`ModelConfig` and :class:`TrainConfig` field at its default (progress off)."""
        m = to_dict(ModelConfig(name=self.name))
        m.pop("name")
        t = to_dict(TrainConfig())
        t.update(progress=False)
        return {**m, **t}

    def clone(self, **params: Any) -> Estimator:
        """An unfitted estimator of the same network with ``params`` replaced."""
        return NeuralEstimator(self.name, **{**self.params, **params})

    @property
    def model_cfg(self) -> ModelConfig:
        """The network's settings as a :class:`ModelConfig`."""
        m, _ = split_params(self.params)
        return from_dict(ModelConfig, {"name": self.name, **m})

    @property
    def train_cfg(self) -> TrainConfig:
        """The training loop's settings as a :class:`TrainConfig`."""
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
        # train.pretrain_epochs: the train-only corpus rows are a first stage of their own
        pre = getattr(self, "pretrain_rows_", np.zeros(len(y), dtype=bool))
        if tcfg.pretrain_epochs > 0 and not (pre.any() and not pre.all()):
            raise ConfigError(
                f"{self.name}: pretrain_epochs={tcfg.pretrain_epochs} needs rows of a train-only corpus "
                "(data.extra_train) and rows of the target corpus in the same fit"
            )
        staged = tcfg.pretrain_epochs > 0
        fit_rows = np.flatnonzero(~pre) if staged else np.arange(len(y))
        val_rows = np.arange(0)
        if tcfg.patience > 0 and tcfg.val_fraction > 0:
            from mmfer.data.splits import group_holdout

            # no groups: every row its own group
            g = groups[fit_rows] if groups is not None else fit_rows
            keep, val = group_holdout(g, tcfg.val_fraction, tcfg.seed)
            fit_rows, val_rows = fit_rows[keep], fit_rows[val]
            # copies of the held-out speakers' clips are neither trained on nor scored
            aug = getattr(self, "augmented_rows_", np.zeros(len(y), dtype=bool))
            val_rows = val_rows[~aug[val_rows]]

        def tensors(rows: np.ndarray) -> TensorData:
            return TensorData(
                torch.from_numpy(x[rows]), torch.from_numpy(mask[rows]), torch.from_numpy(y[rows])
            )

        hooks: list[Hook] = list(self.extra_hooks)
        if tcfg.modality_dropout > 0:
            from mmfer.training.modality_dropout import ModalityDropout

            layout = self.require_layout(x.shape[2], f"train.modality_dropout={tcfg.modality_dropout}")
            hooks.append(ModalityDropout(layout, tcfg.modality_dropout, seed=tcfg.seed))
        if self.params["layer_mix"]:
            # where the stacked layers are depends on this fit's fuser (its layer view, pooling)
            self.params["layer_mix_span"] = self._layer_span(int(x.shape[2]))
        self.module = self.build(x.shape[2], self.num_classes_)
        self._in_features = int(x.shape[2])
        if staged:  # stage 1: the big corpus, no hooks (the epoch scorer follows stage 2)
            first = dataclasses.replace(tcfg, epochs=tcfg.pretrain_epochs, stop_epoch=0, patience=0)
            Trainer(first).fit(self.module, tensors(np.flatnonzero(pre)), None, num_classes=self.num_classes_)
        result = Trainer(tcfg, hooks=hooks).fit(
            self.module,
            tensors(fit_rows),
            tensors(val_rows) if len(val_rows) else None,
            num_classes=self.num_classes_,
            out_dir=self.out_dir,
        )
        self.module.eval()
        self.history = list(result.history)

    def _layer_span(self, width: int) -> list[int]:
        """``model.layer_mix``'s span in an input of ``width`` columns: the fused layout's audio
        block when a layout is set, else the whole input (:func:`mmfer.models.layer_mix.layer_span`).

        Raises
        ------
        ConfigError
            A layout without an audio block, or a block that does not hold the layers asked for.
        """
        from mmfer.models.layer_mix import layer_span

        mix = int(self.params["layer_mix"])
        if self.layout_ is None:
            return layer_span(mix, width)
        layout = self.require_layout(width, f"model.layer_mix={mix}")
        if "audio" not in layout.modalities:
            raise ConfigError(f"model.layer_mix={mix} mixes the layers of the audio block; there is no audio")
        block = layout.blocks[layout.modalities.index("audio")]
        return layer_span(mix, width, block, stats=layout.audio_stats, layers=layout.audio_layers)

    def layer_weights(self) -> np.ndarray | None:
        """``(L,)`` learned softmax layer weights of the fitted network (None without a layer mix)."""
        weights = getattr(self.module, "layer_weights", lambda: None)()
        return None if weights is None else weights.cpu().numpy()

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
        """The network's weights and ``{num_classes, in_features}``."""
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


def _register_all() -> None:
    """Register an estimator for every network in :data:`mmfer.registry.MODELS`."""
    import mmfer.models  # noqa: F401  (registers the networks)

    for name in MODELS.names():
        if name not in ESTIMATORS:
            doc = f"Estimator for the neural model {name!r}."
            ESTIMATORS.register(name)(named_factory(NeuralEstimator, name, name, doc))


_register_all()
