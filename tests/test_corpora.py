"""Corpus loaders on tiny fixtures generated in the official layouts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import mmfer.data  # noqa: F401  (registers the loaders)
from mmfer.data.ckplus import load_ckplus
from mmfer.data.corpora import load_corpus, skipped_files
from mmfer.data.cremad import load_cremad
from mmfer.data.manifest import load_manifest
from mmfer.data.ravdess import load_ravdess
from mmfer.data.savee import load_savee
from mmfer.data.table import COLUMNS
from mmfer.data.tess import load_tess
from mmfer.emotions import CANONICAL
from mmfer.errors import ConfigError, DataError
from mmfer.registry import CORPORA


def touch(path: Path, data: bytes = b"RIFF....WAVE") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def broken_link(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.parent / "does-not-exist.bin")
    return path


def raises_data_error(fn: Callable[[], object], *fragments: str) -> DataError:
    """Call ``fn``; it must raise DataError whose message holds every fragment."""
    with pytest.raises(DataError) as info:
        fn()
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return info.value


def assert_not_taken(df, name: str, *fragments: str) -> None:
    """File ``name`` is absent from the table and listed once in ``skipped_files`` with the fragments."""
    hits = [item for item in skipped_files(df) if Path(item["path"]).name == name]
    assert len(hits) == 1, f"{name} not once in {skipped_files(df)}"
    for frag in fragments:
        assert frag in hits[0]["reason"], f"{frag!r} not in {hits[0]['reason']!r}"
    for c in ("video", "frames", "image", "audio"):
        assert not any(Path(p).name == name for p in df[c].dropna()), f"{name} was taken"


def row(df, sid: str) -> dict:
    rows = df[df["id"] == sid]
    assert len(rows) == 1, f"{sid} not exactly once in {df['id'].tolist()}"
    return rows.iloc[0].to_dict()


def check_table(df) -> None:
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert df["id"].is_unique
    assert set(df["emotion"]) <= set(CANONICAL)
    for c in ("video", "frames", "image", "audio"):
        for p in df[c].dropna():
            assert Path(p).is_absolute() and Path(p).exists(), p


def test_every_loader_registered() -> None:
    assert {"savee", "ravdess", "ckplus", "cremad", "tess", "manifest"} <= set(CORPORA.names())
    assert CORPORA.get("ravdess") is load_ravdess


# ----------------------------------------------------------------------------- SAVEE


def make_savee(root: Path) -> Path:
    for spk in ("DC", "JE"):
        for clip in ("a01", "sa02", "su03", "n01"):
            touch(root / "AudioData" / spk / f"{clip}.wav")
    touch(root / "AudioVisualClip" / "DC" / "a1.avi")
    touch(root / "AudioVisualClip" / "DC" / "h4.avi")  # video without audio
    touch(root / "VideoData" / "JE" / "sa2" / "frame_0001.jpg")
    (root / "SAVEE transcripts.txt").write_text(
        "# clip sentence\na01 She had your dark suit.\n\nDC_sa02: Speaker specific.\nsa02 Generic one.\n",
        encoding="utf-8",
    )
    touch(root / "README.txt", b"not a clip")
    return root


def test_savee_layout(tmp_path: Path) -> None:
    root = make_savee(tmp_path / "savee")
    df = load_savee(root)
    check_table(df)
    assert len(df) == 9
    assert set(df["speaker"]) == {"DC", "JE"}
    a = row(df, "DC_a01")
    assert a["emotion"] == "angry"
    assert a["audio"] == str(root / "AudioData" / "DC" / "a01.wav")
    assert a["video"] == str(root / "AudioVisualClip" / "DC" / "a1.avi")
    assert a["transcript"] == "She had your dark suit."
    h = row(df, "DC_h04")
    assert h["audio"] is None and h["video"].endswith("h4.avi") and h["emotion"] == "happy"
    assert row(df, "JE_sa02")["frames"] == str(root / "VideoData" / "JE" / "sa2")
    assert row(df, "JE_sa02")["transcript"] == "Generic one."
    assert row(df, "DC_sa02")["transcript"] == "Speaker specific."
    assert row(df, "JE_su03")["emotion"] == "surprised" and row(df, "JE_su03")["transcript"] is None
    assert row(df, "JE_n01")["emotion"] == "neutral"
    assert len(load_savee(root, require_audio=True)) == 8


def test_savee_csv_transcripts_and_flat_layout(tmp_path: Path) -> None:
    root = tmp_path / "savee"
    touch(root / "ALL" / "DC_a01.wav")
    touch(root / "ALL" / "KL_d07.wav")
    (root / "lines.csv").write_text("speaker,file,sentence\n,a01.wav,Hello there\nKL,d07,Go away\n", "utf-8")
    df = load_savee(root, transcripts="lines.csv")
    check_table(df)
    assert df["id"].tolist() == ["DC_a01", "KL_d07"]
    assert df["transcript"].tolist() == ["Hello there", "Go away"]
    assert df["emotion"].tolist() == ["angry", "disgust"]


def test_savee_bad_inputs(tmp_path: Path) -> None:
    raises_data_error(lambda: load_savee(tmp_path / "nope"), str(tmp_path / "nope"), "does not exist")

    bad = make_savee(tmp_path / "code")
    touch(bad / "AudioData" / "DC" / "x01.wav")
    assert_not_taken(load_savee(bad), "x01.wav", "unknown SAVEE emotion code 'x'")

    enc = make_savee(tmp_path / "enc")
    (enc / "SAVEE transcripts.txt").write_bytes("a01 caf\xe9\n".encode("latin-1"))
    raises_data_error(lambda: load_savee(enc), "SAVEE transcripts.txt", "not UTF-8")

    (tmp_path / "empty" / "AudioData").mkdir(parents=True)
    raises_data_error(lambda: load_savee(tmp_path / "empty"), str(tmp_path / "empty"), "empty corpus")

    dup = make_savee(tmp_path / "dup")
    touch(dup / "AudioData" / "DC" / "a1.wav")  # same clip as a01.wav
    assert_not_taken(load_savee(dup), "a1.wav", "duplicate", "a01.wav")

    link = make_savee(tmp_path / "link")
    broken_link(link / "AudioData" / "JE" / "h05.wav")
    assert_not_taken(load_savee(link), "h05.wav", "broken symbolic link")


# ----------------------------------------------------------------------------- RAVDESS


def make_ravdess(root: Path) -> Path:
    touch(root / "Actor_01" / "03-01-05-02-01-01-01.wav")  # audio-only, angry strong
    touch(root / "Video_Speech_Actor_01" / "Actor_01" / "02-01-05-02-01-01-01.mp4")  # its video
    touch(root / "Actor_02" / "01-01-03-01-02-02-02.mp4")  # full AV, happy
    touch(root / "Actor_02" / "03-02-04-01-01-01-02.flac")  # song, sad
    touch(root / "README.md", b"# RAVDESS")
    touch(root / "Actor_02" / "notes.wav")
    return root


def test_ravdess_merge(tmp_path: Path) -> None:
    root = make_ravdess(tmp_path / "rav")
    df = load_ravdess(root)
    check_table(df)
    assert df["id"].tolist() == ["01-03-01-02-02-02", "01-05-02-01-01-01", "02-04-01-01-01-02"]
    merged = row(df, "01-05-02-01-01-01")
    assert merged["audio"] == str(root / "Actor_01" / "03-01-05-02-01-01-01.wav")
    assert merged["video"] == str(root / "Video_Speech_Actor_01" / "Actor_01" / "02-01-05-02-01-01-01.mp4")
    assert merged["emotion"] == "angry" and merged["intensity"] == "strong"
    assert merged["speaker"] == "01" and merged["modality"] == "audio+video"
    av = row(df, "01-03-01-02-02-02")
    assert av["audio"] == av["video"] == str(root / "Actor_02" / "01-01-03-01-02-02-02.mp4")
    assert av["transcript"] == "Dogs are sitting by the door"
    assert (av["statement"], av["repetition"], av["gender"]) == (2, 2, "female")
    song = row(df, "02-04-01-01-01-02")
    assert song["vocal_channel"] == "song" and song["emotion"] == "sad" and song["video"] is None
    assert song["transcript"] == "Kids are talking by the door"


def test_ravdess_unmerged_and_channel_filter(tmp_path: Path) -> None:
    root = make_ravdess(tmp_path / "rav")
    df = load_ravdess(root, merge=False)
    check_table(df)
    assert len(df) == 4
    assert row(df, "02-01-05-02-01-01-01")["audio"] is None
    assert row(df, "03-01-05-02-01-01-01")["video"] is None
    assert set(load_ravdess(root, vocal_channel="speech")["vocal_channel"]) == {"speech"}
    assert len(load_ravdess(root, vocal_channel="song")) == 1
    with pytest.raises(ConfigError, match="vocal_channel"):
        load_ravdess(root, vocal_channel="opera")


def test_ravdess_bad_inputs(tmp_path: Path) -> None:
    raises_data_error(lambda: load_ravdess(tmp_path / "nope"), str(tmp_path / "nope"), "does not exist")

    bad = make_ravdess(tmp_path / "code")
    touch(bad / "Actor_03" / "03-01-09-01-01-01-03.wav")
    assert_not_taken(load_ravdess(bad), "03-01-09-01-01-01-03.wav", "emotion code '09'")

    mism = make_ravdess(tmp_path / "mism")
    touch(mism / "Actor_03" / "03-01-02-01-01-01-03.mp4")
    assert_not_taken(load_ravdess(mism), "03-01-02-01-01-01-03.mp4", "does not match")

    link = make_ravdess(tmp_path / "link")
    broken_link(link / "Actor_04" / "03-01-02-01-01-01-04.wav")
    assert_not_taken(load_ravdess(link), "03-01-02-01-01-01-04.wav", "broken symbolic link")

    touch(tmp_path / "empty" / "README.md")
    raises_data_error(lambda: load_ravdess(tmp_path / "empty"), str(tmp_path / "empty"), "empty corpus")

    dup = make_ravdess(tmp_path / "dup")
    touch(dup / "Actor_01" / "03-01-05-02-01-01-01.flac")  # same take as the .wav
    raises_data_error(lambda: load_ravdess(dup), "03-01-05-02-01-01-01", "same take")
    raises_data_error(lambda: load_ravdess(dup, merge=False), "03-01-05-02-01-01-01", "duplicate")


# ----------------------------------------------------------------------------- CK+


def make_ckplus_original(root: Path, labels_dir: str = "Emotion") -> Path:
    seqs = {("S005", "001"): "   3.0000000e+00\n", ("S010", "002"): None, ("S011", "001"): "5.0\n"}
    for (subject, seq), label in seqs.items():
        for k in range(1, 5):
            touch(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{k:08d}.png")
        if label is not None:
            (root / labels_dir / subject / seq).mkdir(parents=True)
            (root / labels_dir / subject / seq / f"{subject}_{seq}_00000004_emotion.txt").write_text(label)
    return root


def test_ckplus_original(tmp_path: Path) -> None:
    root = make_ckplus_original(tmp_path / "ck")
    df = load_ckplus(root)
    check_table(df)
    assert df["id"].tolist() == ["S005_001_00000004", "S011_001_00000004"]
    first = row(df, "S005_001_00000004")
    assert first["emotion"] == "disgust" and first["speaker"] == "S005"
    assert first["image"] == str(root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000004.png")
    # each row is its own frame: the face comes from the image, not the whole sequence folder
    assert "frames" not in df.columns or df["frames"].isna().all()
    from mmfer.features.units import plan_units

    faces = [u for u in plan_units(df, ["face"]) if u.sample_id == first["id"]]
    assert [(u.kind, str(u.source)) for u in faces] == [("image", first["image"])]
    assert row(df, "S011_001_00000004")["emotion"] == "happy"

    more = load_ckplus(root, last_n=2, include_neutral=True)
    check_table(more)
    s5 = more[more["sequence"] == "S005_001"].set_index("id")
    assert s5["emotion"].to_dict() == {
        "S005_001_00000001": "neutral",
        "S005_001_00000003": "disgust",
        "S005_001_00000004": "disgust",
    }
    assert len(more) == 6
    with pytest.raises(ConfigError, match="last_n"):
        load_ckplus(root, last_n=0)


def test_ckplus_nested_label_folder(tmp_path: Path) -> None:
    root = make_ckplus_original(tmp_path / "ck", labels_dir="Emotion_labels/Emotion")
    assert len(load_ckplus(root)) == 2


def test_ckplus_folders(tmp_path: Path) -> None:
    root = tmp_path / "CK+48"
    touch(root / "anger" / "S005_001_00000010.png")
    touch(root / "anger" / "S005_001_00000011.png")
    touch(root / "happy" / "S010_004_00000017.png")
    touch(root / "contempt" / "S138_008_00000008.png")
    (root / "sadness").mkdir()  # an empty class folder is skipped
    df = load_ckplus(root)
    check_table(df)
    assert len(df) == 4
    assert dict(zip(df["id"], df["emotion"], strict=True)) == {
        "S005_001_00000010": "angry",
        "S005_001_00000011": "angry",
        "S010_004_00000017": "happy",
        "S138_008_00000008": "contempt",
    }
    assert sorted(set(df["speaker"])) == ["S005", "S010", "S138"]
    assert row(df, "S010_004_00000017")["sequence"] == "S010_004"


def test_ckplus_bad_inputs(tmp_path: Path) -> None:
    raises_data_error(lambda: load_ckplus(tmp_path / "nope"), str(tmp_path / "nope"), "does not exist")

    code = make_ckplus_original(tmp_path / "code")
    label = code / "Emotion" / "S011" / "001" / "S011_001_00000004_emotion.txt"
    label.write_text("9.0000000e+00")
    raises_data_error(lambda: load_ckplus(code), str(label), "unknown CK+ emotion code")

    unread = make_ckplus_original(tmp_path / "unread")
    label = unread / "Emotion" / "S005" / "001" / "S005_001_00000004_emotion.txt"
    label.write_bytes(b"\xff\xfe\x00garbage")
    raises_data_error(lambda: load_ckplus(unread), str(label), "not UTF-8")
    label.write_text("disgust")
    raises_data_error(lambda: load_ckplus(unread), str(label), "expected one number")

    (tmp_path / "empty" / "anger").mkdir(parents=True)
    raises_data_error(lambda: load_ckplus(tmp_path / "empty"), str(tmp_path / "empty"), "empty corpus")

    dup = tmp_path / "dup"
    touch(dup / "anger" / "S005_001_00000010.png")
    touch(dup / "happy" / "S005_001_00000010.png")
    raises_data_error(lambda: load_ckplus(dup), str(dup / "happy" / "S005_001_00000010.png"), "duplicate")

    unknown = tmp_path / "unknown"
    touch(unknown / "bored" / "S005_001_00000010.png")
    raises_data_error(lambda: load_ckplus(unknown), str(unknown / "bored"), "unknown emotion label 'bored'")
    touch(unknown / "anger" / "S005_001_00000011.png")
    assert_not_taken(load_ckplus(unknown), "S005_001_00000010.png", "unknown CK+ class folder", "'bored'")

    nosubj = tmp_path / "nosubj"
    touch(nosubj / "anger" / "face_01.png")
    raises_data_error(lambda: load_ckplus(nosubj), "face_01.png", "subject")
    touch(nosubj / "anger" / "S005_001_00000011.png")
    assert_not_taken(load_ckplus(nosubj), "face_01.png", "subject")


# ----------------------------------------------------------------------------- CREMA-D


def make_cremad(root: Path) -> Path:
    for stem in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TSI_SAD_LO"):
        touch(root / "AudioWAV" / f"{stem}.wav")
    touch(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    touch(root / "VideoFlash" / "1003_WSI_NEU_XX.flv")  # video without audio
    touch(root / "AudioWAV" / "LICENSE.txt")
    return root


def test_cremad(tmp_path: Path) -> None:
    root = make_cremad(tmp_path / "crema")
    df = load_cremad(root)
    check_table(df)
    assert len(df) == 4
    ang = row(df, "1001_DFA_ANG_XX")
    assert ang["audio"] == str(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    assert ang["video"] == str(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    assert (ang["emotion"], ang["speaker"], ang["transcript"]) == ("angry", "1001", "Don't forget a jacket")
    hap = row(df, "1001_IEO_HAP_HI")
    assert (hap["intensity"], hap["statement"], hap["video"]) == ("high", "IEO", None)
    assert hap["transcript"] == "It's eleven o'clock"
    neu = row(df, "1003_WSI_NEU_XX")
    assert neu["audio"] is None and neu["emotion"] == "neutral"
    assert neu["transcript"] == "We'll stop in a couple of minutes"
    assert len(load_cremad(root, require_audio=True)) == 3


def test_cremad_bad_inputs(tmp_path: Path) -> None:
    raises_data_error(lambda: load_cremad(tmp_path / "nope"), str(tmp_path / "nope"), "does not exist")

    code = make_cremad(tmp_path / "code")
    touch(code / "AudioWAV" / "1004_DFA_XYZ_XX.wav")
    assert_not_taken(load_cremad(code), "1004_DFA_XYZ_XX.wav", "unknown CREMA-D emotion code 'XYZ'")
    touch(tmp_path / "sent" / "AudioWAV" / "1004_ABC_ANG_XX.wav")
    raises_data_error(lambda: load_cremad(tmp_path / "sent"), "1004_ABC_ANG_XX.wav", "sentence code 'ABC'")

    link = make_cremad(tmp_path / "link")
    broken_link(link / "AudioWAV" / "1005_ITS_FEA_MD.wav")
    assert_not_taken(load_cremad(link), "1005_ITS_FEA_MD.wav", "broken symbolic link")

    (tmp_path / "empty" / "AudioWAV").mkdir(parents=True)
    raises_data_error(lambda: load_cremad(tmp_path / "empty"), str(tmp_path / "empty"), "empty corpus")

    dup = make_cremad(tmp_path / "dup")
    touch(dup / "AudioWAV" / "extra" / "1002_TSI_SAD_LO.wav")
    df = load_cremad(dup)
    hits = [
        i for i in skipped_files(df) if i["path"] == str(dup / "AudioWAV" / "extra" / "1002_TSI_SAD_LO.wav")
    ]
    assert len(hits) == 1 and "duplicate clip" in hits[0]["reason"]
    assert str(dup / "AudioWAV" / "1002_TSI_SAD_LO.wav") in hits[0]["reason"]
    assert row(df, "1002_TSI_SAD_LO")["audio"] == str(dup / "AudioWAV" / "1002_TSI_SAD_LO.wav")


# ----------------------------------------------------------------------------- TESS


def make_tess(root: Path) -> Path:
    touch(root / "OAF_angry" / "OAF_back_angry.wav")
    touch(root / "OAF_Fear" / "OAF_dog_fear.wav")
    touch(root / "YAF_pleasant_surprised" / "YAF_bath_ps.wav")
    touch(root / "YAF_neutral" / "YAF_bath_neutral.wav")
    touch(root / "YAF_neutral" / "desktop.ini")
    return root


def test_tess(tmp_path: Path) -> None:
    root = make_tess(tmp_path / "tess")
    df = load_tess(root)
    check_table(df)
    assert len(df) == 4
    assert row(df, "YAF_bath_ps")["emotion"] == "surprised"
    assert row(df, "OAF_dog_fear")["emotion"] == "fearful"
    back = row(df, "OAF_back_angry")
    assert (back["speaker"], back["transcript"], back["word"]) == ("OAF", "Say the word back", "back")
    assert back["audio"] == str(root / "OAF_angry" / "OAF_back_angry.wav")
    assert set(df["speaker"]) == {"OAF", "YAF"}


def test_tess_bad_inputs(tmp_path: Path) -> None:
    raises_data_error(lambda: load_tess(tmp_path / "nope"), str(tmp_path / "nope"), "does not exist")

    code = make_tess(tmp_path / "code")
    touch(code / "OAF_bored" / "OAF_back_bored.wav")
    assert_not_taken(load_tess(code), "OAF_back_bored.wav", "unknown TESS emotion", "'bored'")

    spk = make_tess(tmp_path / "spk")
    touch(spk / "XYZ_angry" / "XYZ_back_angry.wav")
    assert_not_taken(load_tess(spk), "XYZ_back_angry.wav", "unknown TESS speaker")

    clash = make_tess(tmp_path / "clash")
    touch(clash / "OAF_angry" / "OAF_bean_sad.wav")
    touch(clash / "OAF_angry" / "YAF_bean_angry.wav")
    df = load_tess(clash)
    assert_not_taken(df, "OAF_bean_sad.wav", "contradicts its folder", "emotion 'sad'")
    assert_not_taken(df, "YAF_bean_angry.wav", "contradicts its folder", "speaker 'YAF'")

    link = make_tess(tmp_path / "link")
    broken_link(link / "OAF_sad" / "OAF_back_sad.wav")
    assert_not_taken(load_tess(link), "OAF_back_sad.wav", "broken symbolic link")

    touch(tmp_path / "empty" / "OAF_angry" / "readme.txt")
    raises_data_error(lambda: load_tess(tmp_path / "empty"), str(tmp_path / "empty"), "empty corpus")

    dup = make_tess(tmp_path / "dup")
    touch(dup / "copy" / "OAF_back_angry.wav")
    df = load_tess(dup)
    assert row(df, "OAF_back_angry")["audio"] == str(dup / "OAF_angry" / "OAF_back_angry.wav")
    hits = [i for i in skipped_files(df) if i["path"] == str(dup / "copy" / "OAF_back_angry.wav")]
    assert len(hits) == 1 and "duplicate clip" in hits[0]["reason"]


# ----------------------------------------------------------------------------- manifest


def make_media(root: Path) -> None:
    touch(root / "media" / "a.wav")
    touch(root / "media" / "b.mp4")
    touch(root / "media" / "c.png")
    touch(root / "media" / "frames_d" / "0001.jpg")


def test_manifest_csv(tmp_path: Path) -> None:
    make_media(tmp_path)
    path = tmp_path / "list.csv"
    path.write_text(
        "id,speaker,emotion,audio,video,image,frames,transcript,session\n"
        "s1,spk1,anger,media/a.wav,media/b.mp4,,,hello there,1\n"
        "s2,spk2,ps,,,media/c.png,,,2\n"
        "s3,spk1,Neutral,,,,media/frames_d,,1\n"
        "s4,spk3,sad,,,,,only words,3\n",
        encoding="utf-8",
    )
    df = load_manifest(path)
    check_table(df)
    assert df["emotion"].tolist() == ["angry", "surprised", "neutral", "sad"]
    assert row(df, "s1")["audio"] == str(tmp_path / "media" / "a.wav")
    assert row(df, "s1")["video"] == str(tmp_path / "media" / "b.mp4")
    assert row(df, "s1")["transcript"] == "hello there"
    assert row(df, "s2")["image"] == str(tmp_path / "media" / "c.png") and row(df, "s2")["audio"] is None
    assert row(df, "s3")["frames"] == str(tmp_path / "media" / "frames_d")
    assert row(df, "s4")["transcript"] == "only words"
    assert df["session"].tolist() == ["1", "2", "1", "3"]
    assert set(df["corpus"]) == {"manifest"}


def test_manifest_jsonl_and_folder(tmp_path: Path) -> None:
    make_media(tmp_path)
    lines = [
        {"id": "x", "speaker": "p1", "emotion": "happy", "audio": "media/a.wav", "video": None},
        {"id": "y", "speaker": "p2", "emotion": "disgusted", "audio": str(tmp_path / "media" / "a.wav")},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    df = load_manifest(tmp_path, corpus_name="mine")
    check_table(df)
    assert df["id"].tolist() == ["x", "y"]
    assert df["emotion"].tolist() == ["happy", "disgust"]
    assert df["video"].tolist() == [None, None]
    assert set(df["corpus"]) == {"mine"}


def test_manifest_bad_inputs(tmp_path: Path) -> None:
    make_media(tmp_path)
    header = "id,speaker,emotion,audio\n"

    def write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return p

    raises_data_error(lambda: load_manifest(tmp_path / "missing.csv"), "missing.csv", "does not exist")
    p = write("latin.csv", (header + "s1,spk,anger,media/a.wav,caf\xe9\n").encode("latin-1"))
    raises_data_error(lambda: load_manifest(p), str(p), "not UTF-8")
    p = write("ragged.csv", header + "s1,spk,anger,media/a.wav\ns2,spk,anger,a,b,c,d\n")
    raises_data_error(lambda: load_manifest(p), str(p), "not a valid CSV")
    p = write("bad.jsonl", '{"id": "s1", "speaker": "a", "emotion": "sad", "audio": "media/a.wav"}\n{oops\n')
    raises_data_error(lambda: load_manifest(p), str(p), "line 2", "not valid JSON")
    p = write("label.csv", header + "s1,spk,anger,media/a.wav\ns2,spk,bored,media/a.wav\n")
    raises_data_error(lambda: load_manifest(p), str(p), "line 3", "unknown emotion label 'bored'")
    p = write("empty.csv", header)
    raises_data_error(lambda: load_manifest(p), str(p), "empty corpus")
    p = write("dup.csv", header + "s1,spk,anger,media/a.wav\ns1,spk2,sad,media/a.wav\n")
    raises_data_error(lambda: load_manifest(p), str(p), "line 3", "duplicate sample id 's1'", "line 2")
    p = write("gone.csv", header + "s1,spk,anger,media/zzz.wav\n")
    raises_data_error(lambda: load_manifest(p), str(p), "line 2", str(tmp_path / "media" / "zzz.wav"))
    p = write("cols.csv", "id,emotion,audio\ns1,anger,media/a.wav\n")
    raises_data_error(lambda: load_manifest(p), str(p), "'speaker'")
    p = write("nomedia.csv", "id,speaker,emotion,audio\ns1,spk,anger,\n")
    raises_data_error(lambda: load_manifest(p), str(p), "line 2", "no media")


# ----------------------------------------------------------------------------- load_corpus


def test_load_corpus_filters_emotions(tmp_path: Path) -> None:
    root = make_tess(tmp_path / "tess")
    df = load_corpus("tess", root, emotions=["anger", "ps"])
    assert sorted(df["emotion"]) == ["angry", "surprised"]
    assert df.index.tolist() == [0, 1]
    with pytest.raises(ConfigError, match=r"valid names: .*ravdess"):
        load_corpus("iemocap", root)
    raises_data_error(lambda: load_corpus("tess", root, emotions=["contempt"]), "no tess sample")
