"""The model shipped inside the package: ``mmfer predict clip.mp4`` with no ``--model``.

A composed model (:mod:`mmfer.inference.compose`) of two linear heads:

* **voice**: logistic regression over the Whisper tiny.en encoder features
  (``features.profile=default``, ``fusion.modalities=[audio]``), trained on all of
  RAVDESS speech (24 actors, 1440 clips; 8 classes);
* **face**: logistic regression over the FER2013 mini-Xception features, trained on
  CK+48 (``features.face.detector=none`` for the crops; on new videos the Haar
  detector finds the face first); 7 classes.

The file (``default_model/default.safetensors``, tens of kB) records for each part
its training data, protocol-honest accuracy and licence; ``mmfer predict --about``
prints them. Regenerate it with ``python scripts/build_default_model.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mmfer.errors import DataError

__all__ = ["DEFAULT_MODEL_FILE", "default_model_path"]

#: File name of the shipped model inside the ``mmfer.inference`` package.
DEFAULT_MODEL_FILE = "default_model/default.safetensors"


def default_model_path() -> Path:
    """Path of the shipped default model.

    Raises
    ------
    DataError
        The package was installed without it (build it with ``scripts/build_default_model.py``).
    """
    path = Path(str(resources.files("mmfer.inference").joinpath(DEFAULT_MODEL_FILE)))
    if not path.is_file():
        raise DataError(
            path,
            "the shipped default model is missing from this installation; build it with "
            "`python scripts/build_default_model.py` or pass --model",
        )
    return path
