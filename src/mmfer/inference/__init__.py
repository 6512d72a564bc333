"""The inference wing: everything that uses a trained model on new inputs.

The house has two ways through it: *training* (``data`` -> ``features`` ->
``fusion`` -> ``estimators`` -> ``pipeline``/``evaluation``) and *inference*,
this package, which reuses the same in-memory extraction
(:func:`mmfer.features.extract.extract_sample`) and the fitted pieces saved in a
checkpoint:

``types``      :class:`Prediction`, input kinds and resolution (shared by predictor and compose)
``predictor``  :class:`Predictor`: files -> predictions, speaker enrolment
``zeroshot``   the zero-shot face part: pretrained expression heads as a predictor, nothing trained
``fusion_rules`` decision-level fusion arithmetic and its calibration (weights, temperatures)
``compose``    decision-level composition of unimodal checkpoints trained on different corpora
``loader``     :func:`load` (``mmfer.load``): a trained or composed checkpoint
``output``     predictions as JSON, CSV or a table
``default``    the model shipped inside the package (``mmfer predict`` without ``--model``)
``debug``      face-crop contact sheets (``mmfer predict --debug-dir``)
``stream``     sliding-window predictions over a video
``timeline``   emotion timeline of a video (HTML + PNG) from the stream's windows
``serve``      FastAPI service + web page
``export``     ONNX export
``cli``        the ``predict``, ``compose``, ``serve``, ``export``, ``stream`` subcommands

Import order (no circle): ``types`` <- ``predictor`` <- ``zeroshot`` <- ``compose`` <- ``loader``
(``fusion_rules`` <- ``compose``).
"""

from __future__ import annotations

from mmfer.inference.loader import load
from mmfer.inference.predictor import Predictor
from mmfer.inference.types import Prediction

__all__ = ["Prediction", "Predictor", "load"]
