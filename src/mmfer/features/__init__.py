"""Per-sample features: face (EfficientNet), audio (MFCC), text (cleaning + TF-IDF), cached.

Importing this package is light (no torch); the face branch
(:mod:`mmfer.features.face`, :mod:`mmfer.features.video`) is imported on first use.
"""

from __future__ import annotations

from mmfer.features.audio import MFCCExtractor, load_audio, loud_level_dbfs, rms_dbfs
from mmfer.features.cache import CacheEntry, FeatureCache, file_digest
from mmfer.features.extract import SampleFeatures, Unit, extract_features, plan_units, summarise_issues
from mmfer.features.text import TextTfidf, clean_text, read_transcript

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
