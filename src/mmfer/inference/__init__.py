"""The inference wing: everything that uses a trained model on new inputs.

The house has two ways through it: *training* (``data`` -> ``features`` ->
``fusion`` -> ``estimators`` -> ``pipeline``/``evaluation``) and *inference*,
this package, which reuses the same in-memory extraction
(:func:`mmfer.features.extract.extract_sample`) and the fitted pieces saved in a
checkpoint:

``predictor``  :class:`Predictor`, :func:`load` (``mmfer.load``): files -> predictions,
               speaker enrolment
``compose``    decision-level composition of unimodal checkpoints trained on different corpora
``default``    the model shipped inside the package (``mmfer predict`` without ``--model``)
``debug``      face-crop contact sheets (``mmfer predict --debug-dir``)
``stream``     sliding-window predictions over a video
``serve``      FastAPI service + web page
``export``     ONNX export
``cli``        the ``predict``, ``compose``, ``serve``, ``export``, ``stream`` subcommands
"""

from __future__ import annotations

from mmfer.inference.predictor import Prediction, Predictor, load

__all__ = ["Prediction", "Predictor", "load"]
