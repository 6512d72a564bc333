"""``mmfer.load``: open any mmfer checkpoint, trained or composed, for prediction.

The one module that knows both kinds of checkpoint: it reads the file with
:func:`mmfer.inference.predictor.read_checkpoint` and hands it to
:func:`~mmfer.inference.predictor.predictor_from_state` or
:func:`~mmfer.inference.compose.load_composed`, so neither of those two modules
needs the other's loader.
"""

from __future__ import annotations

from pathlib import Path

from mmfer.inference.compose import FORMAT as COMPOSED_FORMAT
from mmfer.inference.compose import ComposedPredictor, load_composed
from mmfer.inference.predictor import Predictor, read_checkpoint
from mmfer.inference.zeroshot import part_from_state

__all__ = ["load"]


def load(
    checkpoint: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> Predictor | ComposedPredictor:
    """Load a model checkpoint for prediction.

    Parameters
    ----------
    checkpoint
        A ``.safetensors`` file written by ``mmfer train`` (a :class:`Predictor`) or by
        ``mmfer compose`` (a :class:`~mmfer.inference.compose.ComposedPredictor`, same
        interface); ``None`` = the default model shipped with the package
        (:mod:`mmfer.inference.default`). Read with safetensors + JSON metadata: no pickle.
    cache_dir
        Optional persistent feature cache (default: features are extracted in memory).

    Returns
    -------
    Predictor or ComposedPredictor
        The loaded model.

    Raises
    ------
    DataError
        Missing file, or not an mmfer model checkpoint.
    """
    path, tensors, meta = read_checkpoint(checkpoint)
    if meta.get("format") == COMPOSED_FORMAT:
        model = load_composed(path, tensors, meta)
        for part in model.parts:
            part.predictor.cache_dir = None if cache_dir is None else Path(cache_dir)
        return model
    # a trained recogniser, or a zero-shot face part (mmfer.inference.zeroshot)
    return part_from_state(None, path, tensors, meta, cache_dir=cache_dir)
