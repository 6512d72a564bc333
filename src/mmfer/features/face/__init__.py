"""The face wing: frames -> per-frame face features.

Modules: :mod:`~mmfer.features.face.detection` (face boxes and fallbacks),
:mod:`~mmfer.features.face.crops` (crop + normalisation), :mod:`~mmfer.features.face.backbones`
(backbone dispatch) with :mod:`~mmfer.features.face.efficientnet` (network),
:mod:`~mmfer.features.face.efficientnet_weights` (weight layouts),
:mod:`~mmfer.features.face.fer2013` (FER2013 mini-Xception),
:mod:`~mmfer.features.face.fer2013_finetune`, :mod:`~mmfer.features.face.weights`
(the weight-file check both backbones share), :mod:`~mmfer.features.face.landmarks`
(dlib 68 points), :mod:`~mmfer.features.face.extractor` (the pipeline) and
:mod:`~mmfer.features.face.units` (the plug into :mod:`mmfer.features.extract`).

Importing this package imports nothing (torch and OpenCV come with the modules).
"""
