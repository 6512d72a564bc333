"""Per-sample features, by modality, cached: face, voice and words wings plugged into one orchestration.

Layout (each module's docstring says what it owns):

- orchestration: :mod:`~mmfer.features.extract` (table or one sample -> features),
  :mod:`~mmfer.features.units` (units and per-sample results),
  :mod:`~mmfer.features.extractors` (the :class:`~mmfer.features.extractors.UnitExtractor`
  interface and the per-modality registry), :mod:`~mmfer.features.runner` (local pool,
  dask), :mod:`~mmfer.features.summary` (what was masked), :mod:`~mmfer.features.cache`;
- :mod:`mmfer.features.video`: decoding of videos, images and sound tracks (face and voice);
- :mod:`mmfer.features.face`: detection, crops, backbones (FER2013, EfficientNet), landmarks;
- :mod:`mmfer.features.voice`: audio loading, MFCC, Whisper (CTranslate2 and PyTorch port), eGeMAPS;
- :mod:`mmfer.features.words`: cleaning, TF-IDF, sentence embeddings, ASR.

Importing this package is light (no torch); the face wing and the model-backed
backends are imported on first use.
"""

from __future__ import annotations

from mmfer.features.cache import CacheEntry, FeatureCache, file_digest
from mmfer.features.extract import extract_features
from mmfer.features.summary import summarise_issues
from mmfer.features.units import SampleFeatures, Unit, plan_units
from mmfer.features.voice.loading import load_audio, loud_level_dbfs, rms_dbfs
from mmfer.features.voice.mfcc import MFCCExtractor
from mmfer.features.words.cleaning import clean_text, read_transcript
from mmfer.features.words.tfidf import TextTfidf

__all__ = [
    "CacheEntry",
    "FeatureCache",
    "MFCCExtractor",
    "SampleFeatures",
    "TextTfidf",
    "Unit",
    "clean_text",
    "extract_features",
    "file_digest",
    "load_audio",
    "loud_level_dbfs",
    "plan_units",
    "read_transcript",
    "rms_dbfs",
    "summarise_issues",
]
