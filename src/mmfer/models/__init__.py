"""Recognition models: ``rmlstm`` (the paper's), ``mlstm``, ``lstm``, ``rnn``, ``mlp``, ``transformer``,
and ``fer2013_ft`` (the FER2013 face CNN fine-tuned on raw crops).

Build one with :func:`create_model`; importing this package registers them all
in :data:`mmfer.registry.MODELS`.
"""

from __future__ import annotations

from mmfer.models.base import (
    EmotionModel,
    compact_valid,
    create_model,
    list_models,
    pool_sequence,
    register_model,
)
from mmfer.models.fer2013_ft import FER2013FineTune
from mmfer.models.mlp import MLPModel
from mmfer.models.mogrifier import GateProjection, MogrifierLSTM, MogrifierLSTMCell
from mmfer.models.recurrent import MLSTM, RMLSTM, LSTMModel, MogrifierLSTMModel, RNNModel
from mmfer.models.transformer import TransformerModel

__all__ = [
    "MLSTM",
    "RMLSTM",
    "EmotionModel",
    "FER2013FineTune",
    "GateProjection",
    "LSTMModel",
    "MLPModel",
    "MogrifierLSTM",
    "MogrifierLSTMCell",
    "MogrifierLSTMModel",
    "RNNModel",
    "TransformerModel",
    "compact_valid",
    "create_model",
    "list_models",
    "pool_sequence",
    "register_model",
]
