"""The voice wing: a clip's sound -> frame features.

Modules: :mod:`~mmfer.features.voice.loading` (decoding and the silence test, shared by
every backend), the backends :mod:`~mmfer.features.voice.mfcc`,
:mod:`~mmfer.features.voice.whisper` (CTranslate2) with
:mod:`~mmfer.features.voice.whisper_torch` (PyTorch port, inner layers) and
:mod:`~mmfer.features.voice.egemaps`, the dispatcher :mod:`~mmfer.features.voice.dispatch`
(imports the backends, never the reverse) and :mod:`~mmfer.features.voice.units`
(the plug into :mod:`mmfer.features.extract`).

Importing this package imports nothing.
"""
