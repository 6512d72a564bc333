"""Feature cache keys are pinned: moving or refactoring extraction code must not change them.

A key is ``sha256(namespace, canonical JSON of the extractor config, input digest)``
(:class:`mmfer.features.cache.FeatureCache`); a change to either part of the key
material orphans every cache on users' disks. The values below were recorded
before ``mmfer.features`` was reorganised by modality (face / voice / words) and
must never change unless an extractor's output changes (then bump its version).

Values that depend on the installed wheels (weight digests, library versions,
file sizes) are replaced by ``"<env>"`` before hashing, so the pin checks the
structure and every setting of the key material on any machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmfer.config import FeatureConfig, TextConfig
from mmfer.errors import ConfigError
from mmfer.features.cache import FeatureCache
from mmfer.features.extractors import extractors_for

#: Key-material fields whose values come from the environment (installed files and versions).
_ENV_FIELDS = frozenset(
    {
        "weights_sha256",
        "model_sha256",
        "weights_bytes",
        "backend",
        "ctranslate2",
        "faster_whisper",
        "opensmile",
    }
)
_SENTENCE = "Kids are talking by the door!"

#: (profile variant, modality) -> key of a file holding b"mmfer cache-key pin\n".
PINNED: dict[tuple[str, str], str] = {
    ("default", "face"): "538ef159caf636262672238d7de3ecdbf7e6bf982fb56ded6cd56516af972631",
    ("default", "audio"): "51545bc27ccf2ae810812b8a2850511ba936115dfbd6542a585d99a8dd21c878",
    ("default", "text"): "592b206dcf9566a7121073fbd007e218cb85bc0bb3e917e4dbf91ec2c6c66370",
    ("paper", "face"): "af999a9c943db1716c7626c9bcf8a14a3013bcd0519b0abf9511790701721648",
    ("paper", "audio"): "fc559d5f61d43b1a42cb48d06094ec492fa17d219ab83ae9079b1e4ca0105a8d",
    ("paper", "text"): "e09f781334910ba61920f7fd88f9bd5a2bd2d7b23dccb8dc61ec8143c9667ffe",
}
#: (profile variant) -> key of the inline transcript ``_SENTENCE``.
PINNED_INLINE: dict[str, str] = {
    "default": "74fae1357c56d2061cf95480d2adc2d8b091f8a534c797d0fbbf638aacd5a6f9",
    "paper": "156e1718558b75e09fec289ff20a5b9170d2d95388437c2e562676bdf5853643",
    "paper_both": "74fae1357c56d2061cf95480d2adc2d8b091f8a534c797d0fbbf638aacd5a6f9",
}
_VARIANTS: dict[str, FeatureConfig] = {
    "default": FeatureConfig(),
    "paper": FeatureConfig(profile="paper"),
    "paper_both": FeatureConfig(profile="paper", text=TextConfig(representation="both")),
}


def _scrub(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with environment-dependent values replaced by ``"<env>"`` (nested mappings too)."""
    return {k: "<env>" if k in _ENV_FIELDS else _scrub(v) if isinstance(v, dict) else v for k, v in d.items()}


#: A unit kind of each modality (every kind of a modality has the same config, except text ``asr``).
_KIND = {"face": "video", "audio": "audio", "text": "transcript_text"}


def _config(variant: str, which: str) -> dict[str, Any]:
    try:
        return _scrub(extractors_for(_VARIANTS[variant], limit_threads=False).config_for(which, _KIND[which]))
    except ConfigError as e:  # an optional model wheel is not installed here
        pytest.skip(f"{variant}/{which}: {e}")


@pytest.mark.parametrize(("variant", "which"), sorted(PINNED))
def test_file_unit_keys_are_pinned(tmp_path: Path, variant: str, which: str) -> None:
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"mmfer cache-key pin\n")
    assert FeatureCache.key(which, _config(variant, which), clip) == PINNED[(variant, which)]


@pytest.mark.parametrize("variant", sorted(PINNED_INLINE))
def test_inline_text_keys_are_pinned(variant: str) -> None:
    assert FeatureCache.key_text("text", _config(variant, "text"), _SENTENCE) == PINNED_INLINE[variant]


def test_key_of_a_literal_config_is_pinned(tmp_path: Path) -> None:
    # The hashing itself (separators, canonical JSON, content digest), independent of any extractor.
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"mmfer cache-key pin\n")
    key = FeatureCache.key("audio", {"n_mfcc": 40, "extractor": "mfcc", "fmax": None}, clip)
    assert key == "feb552f2ee2ba4118480bc1af13b747d5254d3bd49f74ff6291f0a6e8a871ac1"
