"""Text branch: cleaning (eq. 2), transcripts, TF-IDF (eqs. 3-5) without fold leakage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer

from mmfer.config import TextConfig
from mmfer.errors import DataError, FeatureError, ModalityMissing
from mmfer.features.words.cleaning import clean_text, read_transcript
from mmfer.features.words.tfidf import TextTfidf


def test_clean_text_removes_punctuation_and_stop_words() -> None:
    assert clean_text("Kids are talking by the door!") == "kids talking door"
    assert clean_text("Dogs, are sitting... by the door?!") == "dogs sitting door"
    # Unicode punctuation (guillemets, em dash, inverted question mark, CJK full stop).
    assert clean_text("«Hello» — ¿really? yes。", remove_stop_words=False) == "hello really yes"
    # Apostrophes inside words join rather than split.
    assert clean_text("I don't know", remove_stop_words=False) == "i dont know"
    assert clean_text("Sad, SAD news", lowercase=False) == "Sad SAD news"
    # Stop words are matched case-insensitively even without lowercasing.
    assert clean_text("The Door", lowercase=False) == "Door"
    assert clean_text("the and of , . !") == ""


def test_clean_text_is_idempotent() -> None:
    once = clean_text("Well-known: it's (really) GREAT, isn't it?")
    assert clean_text(once) == once
    assert "-" not in once and "(" not in once


def test_read_transcript(tmp_path: Path) -> None:
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeffHello world\n".encode())
    assert read_transcript(p) == "Hello world"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(FeatureError, match="transcript is not valid UTF-8") as ei:
        read_transcript(bad)
    assert ei.value.path == bad and str(bad) in str(ei.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\t ", encoding="utf-8")
    with pytest.raises(ModalityMissing, match="empty transcript"):
        read_transcript(empty)
    with pytest.raises(FeatureError, match="cannot read transcript"):
        read_transcript(tmp_path / "nope.txt")


DOCS = ["happy happy day", "sad day", "happy night night night"]


@pytest.mark.parametrize("l2", [False, True])
def test_paper_idf_matches_hand_computation(l2: bool) -> None:
    # N = 3; documents containing each term: day 2, happy 2, night 1, sad 1.
    # idf = N / n(x): day 1.5, happy 1.5, night 3, sad 3 (no log, no smoothing).
    # Columns in sorted order: day, happy, night, sad.
    want = np.array(
        [
            [1 * 1.5, 2 * 1.5, 0, 0],
            [1 * 1.5, 0, 0, 1 * 3.0],
            [0, 1 * 1.5, 3 * 3.0, 0],
        ]
    )
    if l2:
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    tf = TextTfidf(TextConfig(idf="paper", l2_normalise=l2))
    got = tf.fit_transform(DOCS)
    assert tf.vocabulary_ == {"day": 0, "happy": 1, "night": 2, "sad": 3}
    np.testing.assert_allclose(tf.idf_, [1.5, 1.5, 3.0, 3.0])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_smooth_idf_matches_sklearn() -> None:
    train = [
        "The kids are talking by the door",
        "Dogs are sitting by the door",
        "Happy dogs, happy kids!",
        "Angry words shouted loudly",
    ]
    test = ["Dogs talking loudly", "Unseen words entirely"]
    ref = TfidfVectorizer(stop_words="english").fit(train)
    ours = TextTfidf(TextConfig(idf="smooth")).fit(train)
    assert ours.vocabulary_ == {str(k): int(v) for k, v in ref.vocabulary_.items()}
    np.testing.assert_allclose(ours.idf_, ref.idf_, rtol=1e-12)
    np.testing.assert_allclose(ours.transform(train), ref.transform(train).toarray(), atol=1e-6)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test).toarray(), atol=1e-6)


@pytest.mark.parametrize("idf", ["paper", "smooth"])
def test_test_fold_vocabulary_does_not_leak(idf: str) -> None:
    train = ["happy day", "sad night", "happy night"]
    test = ["zebra happy", "zebra"]
    tf = TextTfidf(TextConfig(idf=idf)).fit(train)
    assert "zebra" not in tf.vocabulary_
    got = tf.transform(test)
    assert got.shape == (2, len(tf.vocabulary_))
    assert np.isfinite(got).all()
    assert not got[1].any()  # only unseen words: zero row, no NaN
    np.testing.assert_array_equal(got[0], tf.transform(["happy"])[0])
    # Refitting with the test fold would change the columns: the fitted object must not.
    leaky = TextTfidf(TextConfig(idf=idf)).fit(train + test)
    assert "zebra" in leaky.vocabulary_


@pytest.mark.parametrize("idf", ["paper", "smooth"])
def test_state_round_trip(idf: str) -> None:
    tf = TextTfidf(TextConfig(idf=idf, max_features=50, ngram_max=2)).fit(DOCS)
    state = json.loads(json.dumps(tf.get_state()))
    back = TextTfidf.from_state(state)
    docs = [*DOCS, "night day happy", "", "never seen"]
    np.testing.assert_array_equal(back.transform(docs), tf.transform(docs))
    assert back.vocabulary_ == tf.vocabulary_ and back.cfg == tf.cfg
    assert "happy day" in tf.vocabulary_  # bigrams with ngram_max=2


def test_empty_documents_and_max_features() -> None:
    tf = TextTfidf(TextConfig(idf="paper", max_features=2))
    x = tf.fit_transform(["a b c happy", "happy sad", "", "happy sad sad"])
    assert x.shape == (4, 2)  # most frequent: happy (3), sad (3)
    assert set(tf.vocabulary_) == {"happy", "sad"}
    assert not x[2].any() and np.isfinite(x).all()
    with pytest.raises(DataError, match="cannot fit"):
        TextTfidf(TextConfig()).fit(["the and", ""])


def test_transform_before_fit_is_a_clear_error() -> None:
    tf = TextTfidf(TextConfig())
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        tf.transform(["hello"])
    with pytest.raises(NotFittedError):
        tf.get_state()
    with pytest.raises(TypeError, match="list of documents"):
        TextTfidf(TextConfig()).fit("one string")  # type: ignore[arg-type]
