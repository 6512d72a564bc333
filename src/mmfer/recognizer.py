"""A fitted recogniser: fuser + estimator + label set, and its checkpoint state.

Imported by inference at start-up, so it must stay light: no
:mod:`mmfer.evaluation`, scikit-learn metrics, scipy.stats or matplotlib at
module level (``tests/test_recognizer.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfer.config import FeatureConfig, ModelConfig, from_dict, to_dict
from mmfer.errors import ConfigError, DataError
from mmfer.estimators import Estimator
from mmfer.estimators.neural import NeuralEstimator
from mmfer.fusion import Fuser

__all__ = ["RECOGNIZER_FORMAT", "Recognizer"]

#: ``format`` tag of a recogniser checkpoint's metadata.
RECOGNIZER_FORMAT = "mmfer-recognizer/1"


@dataclass
class Recognizer:
    """A fitted fuser + estimator + label set: everything prediction needs.

    Saved as one safetensors file whose metadata carries the configs, labels,
    the estimator's name and parameters, and the fuser state (TF-IDF
    vocabulary, standardisers) as JSON; loading never unpickles anything.
    """

    fuser: Fuser
    estimator: Estimator
    labels: list[str]
    features_cfg: FeatureConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.fuser.modalities

    @property
    def model(self) -> torch.nn.Module:
        """The network of a neural estimator (ONNX export, benchmarks)."""
        module = getattr(self.estimator, "module", None)
        if module is None:
            raise ConfigError(f"{self.estimator.name} is not a neural network (no torch module to use)")
        return module

    @property
    def model_cfg(self) -> ModelConfig:
        """Model config of a neural estimator; for other estimators only ``name`` is meaningful."""
        cfg = getattr(self.estimator, "model_cfg", None)
        return cfg if cfg is not None else ModelConfig(name=self.estimator.name)

    def predict_proba(
        self,
        feats: list[Any],
        *,
        speakers: list[str] | None = None,
        stats: dict[str, dict[str, Any]] | None = None,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Class probabilities ``(N, C)`` for per-sample features.

        ``speakers`` (one id per sample) is needed when the fuser normalises per
        speaker: each speaker is normalised with statistics of its own given clips,
        unless ``stats`` (``{speaker: {modality: {"mean": (D,), "std": (D,)}}}``,
        e.g. from enrolment clips) gives them.
        """
        fused = self.fuser.transform(feats, speakers=speakers, stats=stats)
        return self.estimator.predict_proba(fused.x, fused.mask)

    def save(self, path: str | Path) -> Path:
        from mmfer.training.checkpoint import save_checkpoint

        tensors, meta = self.to_state()
        save_checkpoint(path, tensors, meta)
        return Path(path)

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of the checkpoint (also embedded in composed models)."""
        arrays, est_meta = self.estimator.state()
        neural = isinstance(self.estimator, NeuralEstimator)
        meta = {
            "format": RECOGNIZER_FORMAT,
            "labels": self.labels,
            "model": to_dict(self.model_cfg),
            "estimator": {
                "name": self.estimator.name,
                "neural": neural,
                "params": self.estimator.get_params(),
                "state": est_meta,
            },
            "features": to_dict(self.features_cfg),
            "fuser": self.fuser.get_state(),
            "in_features": self.fuser.n_features,
            "extra": self.extra,
        }
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return tensors, meta

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        from mmfer.training.checkpoint import load_checkpoint

        tensors, meta = load_checkpoint(path)
        return cls.from_state(tensors, meta, path)

    @classmethod
    def from_state(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: str | Path | None = None
    ) -> Recognizer:
        """Inverse of :meth:`to_state`; ``path`` is named in errors."""
        from mmfer.estimators import create_estimator
        from mmfer.models import create_model

        if meta.get("format") != RECOGNIZER_FORMAT:
            raise DataError(path, "not an mmfer model checkpoint (train one with `mmfer train`)")
        labels = list(meta["labels"])
        est_meta = meta.get("estimator") or {"neural": True, "params": {}}
        estimator: Estimator
        if est_meta.get("neural", True):
            model_cfg = from_dict(ModelConfig, meta["model"])
            model = create_model(
                model_cfg.name, in_features=int(meta["in_features"]), num_classes=len(labels), cfg=model_cfg
            )
            model.load_state_dict(tensors)
            params = {k: v for k, v in to_dict(model_cfg).items() if k != "name"}
            params |= {k: v for k, v in est_meta.get("params", {}).items() if k not in params}
            estimator = NeuralEstimator(model_cfg.name, **params).load_module(model, len(labels))
        else:
            estimator = create_estimator(est_meta["name"], **est_meta.get("params", {}))
            arrays = {k: v.numpy() for k, v in tensors.items()}
            estimator.load_state(arrays, est_meta.get("state", {}))
        return cls(
            fuser=Fuser.from_state(meta["fuser"]),
            estimator=estimator,
            labels=labels,
            features_cfg=from_dict(FeatureConfig, meta["features"]),
            extra=meta.get("extra", {}),
        )
