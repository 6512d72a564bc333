"""The words wing: a transcript (given, or heard by ASR) -> cleaned text and embeddings.

Modules: :mod:`~mmfer.features.words.cleaning` (reading, eq. 2 cleaning, which text block),
:mod:`~mmfer.features.words.tfidf` (TF-IDF and the fusion's text block, fitted per fold),
:mod:`~mmfer.features.words.sentence` (sentence embeddings), :mod:`~mmfer.features.words.asr`
(offline speech recognition) and :mod:`~mmfer.features.words.units` (the plug into
:mod:`mmfer.features.extract`).

Importing this package imports nothing.
"""
