"""MELD text loader: generated CSVs with the official column names, and the real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmfer.data import load_corpus
from mmfer.data.meld import load_meld, repair_text
from mmfer.errors import ConfigError, DataError

HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
)
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "meld-text"


def _row(sr: int, words: str, speaker: str, emotion: str, dia: int, utt: int) -> str:
    quoted = '"' + words.replace('"', '""') + '"'
    sentiment = {"joy": "positive", "neutral": "neutral"}.get(emotion, "negative")
    return f'{sr},{quoted},{speaker},{emotion},{sentiment},{dia},{utt},1,1,"00:00:01,000","00:00:02,000"'


def _write(
    root: Path, split: str, rows: list[tuple[str, str, str, int, int]], *, encoding: str = "utf-8"
) -> None:
    lines = [HEADER] + [_row(i + 1, *r) for i, r in enumerate(rows)]
    (root / f"{split}_sent_emo.csv").write_bytes(("\n".join(lines) + "\n").encode(encoding))


@pytest.fixture
def meld_root(tmp_path: Path) -> Path:
    # utterance ids deliberately out of order and with a gap: context must follow Utterance_ID
    _write(
        tmp_path,
        "train",
        [
            ("Hi, Ross.", "Mark", "neutral", 0, 0),
            ("I?ve got some bad news.", "Ross", "sadness", 0, 2),
            ("Yeah, huh.", "Ross", "neutral", 0, 1),
            ("Oh my God, that’s great!", "Rachel", "joy", 0, 3),
            ("NA", "Joey", "surprise", 1, 0),
        ],
    )
    _write(tmp_path, "dev", [("Get out!", "Monica", "anger", 0, 0), ("Ew.", "Phoebe", "disgust", 0, 1)])
    _write(tmp_path, "test", [("What?", "Chandler", "fear", 0, 0)])
    return tmp_path


def test_counts_ids_emotions_and_splits(meld_root: Path) -> None:
    df = load_corpus("meld", meld_root)
    assert len(df) == 8
    assert df.groupby("split").size().to_dict() == {"dev": 2, "test": 1, "train": 5}
    # the same (dialogue, utterance) in two splits stays two samples
    assert {"train_d0_u0", "dev_d0_u0", "test_d0_u0"} <= set(df["id"])
    by_id = df.set_index("id")
    assert by_id.loc["train_d0_u3", "emotion"] == "happy"
    assert by_id.loc["train_d1_u0", "emotion"] == "surprised"
    assert by_id.loc["dev_d0_u0", "emotion"] == "angry"
    assert by_id.loc["dev_d0_u1", "emotion"] == "disgust"
    assert by_id.loc["test_d0_u0", "emotion"] == "fearful"
    assert by_id.loc["train_d0_u2", "emotion"] == "sad"
    # "NA" is an utterance, not a missing value
    assert by_id.loc["train_d1_u0", "transcript"] == "NA"
    assert by_id.loc["train_d0_u2", "transcript"] == "I've got some bad news."  # lost apostrophe restored
    assert by_id.loc["train_d0_u3", "transcript"] == "Oh my God, that's great!"  # typographic -> ASCII
    assert by_id.loc["train_d0_u2", "speaker"] == "Ross"
    assert by_id.loc["train_d0_u2", "dialogue"] == 0 and by_id.loc["train_d0_u2", "utterance"] == 2
    assert by_id.loc["train_d0_u3", "sentiment"] == "positive"
    assert df[["video", "frames", "image", "audio"]].isna().all().all()
    assert df["corpus"].eq("meld").all()


def test_context_option_prepends_previous_turns_of_the_same_dialogue(meld_root: Path) -> None:
    by_id = load_corpus("meld", meld_root, context=2).set_index("id")
    assert by_id.loc["train_d0_u0", "transcript"] == "Hi, Ross."  # first turn: no context
    assert by_id.loc["train_d0_u1", "transcript"] == "Mark: Hi, Ross.\nYeah, huh."
    assert by_id.loc["train_d0_u3", "transcript"] == (
        "Ross: Yeah, huh.\nRoss: I've got some bad news.\nOh my God, that's great!"
    )
    assert by_id.loc["train_d1_u0", "transcript"] == "NA"  # another dialogue starts afresh
    assert by_id.loc["dev_d0_u1", "transcript"] == "Monica: Get out!\nEw."  # same split only
    assert by_id.loc["train_d0_u3", "text"] == "Oh my God, that's great!"  # bare utterance kept
    one = load_corpus("meld", meld_root, context=1).set_index("id")
    assert one.loc["train_d0_u3", "transcript"] == "Ross: I've got some bad news.\nOh my God, that's great!"


def test_split_subset_and_windows_1252_fallback(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "test",
        [("You must’ve had your hands full.", "Interviewer", "neutral", 3, 0)],
        encoding="cp1252",
    )
    df = load_meld(tmp_path, splits=["test"])
    assert df["transcript"].tolist() == ["You must've had your hands full."]
    assert df["id"].tolist() == ["test_d3_u0"]


def test_bad_input_is_named(meld_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_meld(tmp_path / "nowhere")
    (meld_root / "test_sent_emo.csv").unlink()
    with pytest.raises(DataError, match=r"test_sent_emo\.csv.*split file not found"):
        load_meld(meld_root)
    assert len(load_meld(meld_root, splits=["train", "dev"])) == 7
    # a missing column is named, with the file
    df = pd.read_csv(meld_root / "dev_sent_emo.csv").drop(columns=["Emotion"])
    df.to_csv(meld_root / "dev_sent_emo.csv", index=False)
    with pytest.raises(DataError, match=r"dev_sent_emo\.csv: MELD CSV lacks columns \['Emotion'\]"):
        load_meld(meld_root, splits=["dev"])
    with pytest.raises(ConfigError, match="context"):
        load_meld(meld_root, context=-1)
    with pytest.raises(ConfigError, match="splits"):
        load_meld(meld_root, splits=["validation"])


def test_bad_rows_are_named(tmp_path: Path) -> None:
    _write(tmp_path, "train", [("Hi.", "Ross", "boredom", 0, 0)])
    with pytest.raises(DataError, match=r"train_sent_emo\.csv \(line 2\).*unknown emotion label 'boredom'"):
        load_meld(tmp_path, splits=["train"])
    _write(tmp_path, "train", [("Hi.", "Ross", "joy", 0, 0), ("Hey.", "Joey", "joy", 0, 0)])
    with pytest.raises(DataError, match="duplicate sample id 'train_d0_u0'"):
        load_meld(tmp_path, splits=["train"])
    _write(tmp_path, "train", [("Hi.", "Ross", "joy", 0, "x")])  # type: ignore[list-item]
    with pytest.raises(DataError, match="line 2: Utterance_ID must be an integer"):
        load_meld(tmp_path, splits=["train"])
    # an empty utterance is skipped (logged); the rest loads
    _write(tmp_path, "train", [("  ", "Ross", "joy", 0, 0), ("Hey.", "Joey", "joy", 0, 1)])
    assert load_meld(tmp_path, splits=["train"])["id"].tolist() == ["train_d0_u1"]


def test_repair_text_leaves_real_questions_alone() -> None:
    assert repair_text("that?s sad. How?s it going?") == "that's sad. How's it going?"
    assert repair_text("Is that Christian Sanders?He's so") == "Is that Christian Sanders?He's so"
    assert repair_text("Really? So?") == "Really? So?"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/meld-text absent")
def test_real_meld_counts() -> None:
    df = load_corpus("meld", REAL)
    assert df.groupby("split").size().to_dict() == {"dev": 1109, "test": 2610, "train": 9989}
    assert set(df["emotion"]) == {"neutral", "happy", "surprised", "angry", "sad", "disgust", "fearful"}
    assert not df["transcript"].str.contains(r"[A-Za-z]\?(?:s|ve|re|ll)\b", regex=True).any()
