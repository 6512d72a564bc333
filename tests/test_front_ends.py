"""Front-end switching for the report's front-end ablation table."""

from __future__ import annotations

from mmfer.config import FeatureConfig, load_config
from mmfer.experiment import features_for, front_end_label


def test_paper_profile_switches_exactly_the_front_ends() -> None:
    base = load_config(
        None, ["features.profile=default", "features.workers=2", "features.text.max_features=77"]
    )
    paper = features_for(base.features, "paper")
    assert paper.profile == "paper"
    assert paper.audio.extractor == "mfcc"
    assert paper.face.backbone in ("efficientnet_lite0", "efficientnet_b0")
    assert paper.text.idf == "paper" and paper.text.representation == "tfidf"
    # everything the profile does not decide is kept
    assert paper.workers == 2 and paper.text.max_features == 77
    assert base.features.audio.extractor == "whisper"  # the input is not modified
    assert "mfcc" in front_end_label(paper) and "whisper" in front_end_label(base.features)


def test_override_front_end() -> None:
    f = features_for(FeatureConfig(), "audio.extractor=mfcc; audio.n_mfcc=13")
    assert f.audio.extractor == "mfcc" and f.audio.n_mfcc == 13
