"""mmfer: multimodal (face, voice, words) emotion recognition."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(checkpoint: str | None = None):
    """Load a trained or composed model for prediction (``None`` = the model shipped with mmfer).

    See :func:`mmfer.inference.loader.load`.
    """
    from mmfer.inference.loader import load as _load

    return _load(checkpoint)
