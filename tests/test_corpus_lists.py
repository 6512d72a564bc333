"""Official file lists of each corpus (names only, generated from the release's rules) are read in full.

Each test builds the file names of a corpus release programmatically (tiny
placeholder bytes instead of audio: loaders never decode media) and checks
that the loader takes every one, plus the known naming quirks and common
variants. Also the cases users hit with real copies: Git LFS pointers,
symbolic links, and the messages they see.
"""

from __future__ import annotations

import itertools
import logging
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mmfer.data  # noqa: F401  (registers the loaders)
from mmfer.config import AudioConfig, FeatureConfig
from mmfer.data.ckplus import load_ckplus
from mmfer.data.corpora import skipped_files
from mmfer.data.cremad import EMOTIONS as CREMAD_EMOTIONS
from mmfer.data.cremad import SENTENCES as CREMAD_SENTENCES
from mmfer.data.cremad import load_cremad
from mmfer.data.ravdess import load_ravdess
from mmfer.data.savee import load_savee
from mmfer.data.tess import load_tess
from mmfer.errors import DataError
from mmfer.features.extract import extract_features
from mmfer.features.summary import masked_samples, unusable_samples

PLACEHOLDER = b"RIFF\x00\x00\x00\x00WAVEfmt "  # not decodable audio; loaders only check the bytes exist
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 41044\n"
)


#: MFCC audio: these tests check masking/reporting mechanics on a fast, exact extractor
#: (the default profile's Whisper extractor has its own tests).
MFCC = FeatureConfig(audio=AudioConfig(extractor="mfcc"))


def touch(path: Path, data: bytes = PLACEHOLDER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- RAVDESS


def ravdess_names(channel: str) -> list[str]:
    """RAVDESS audio-only names (modality 03) of one vocal channel, per the release's rules.

    Speech (01): 24 actors x (neutral: 1 intensity + 7 emotions x 2 intensities) x 2 statements
    x 2 repetitions = 24 x 60 = 1440. Song (02): emotions 01-06 only and no actor 18 (the
    release has no song files for actor 18): 23 x 44 = 1012.
    """
    emotions = range(1, 9) if channel == "01" else range(1, 7)
    actors = [a for a in range(1, 25) if channel == "01" or a != 18]
    names = []
    for actor, emo, stmt, rep in itertools.product(actors, emotions, (1, 2), (1, 2)):
        for inten in (1,) if emo == 1 else (1, 2):
            names.append(f"03-{channel}-{emo:02d}-{inten:02d}-{stmt:02d}-{rep:02d}-{actor:02d}")
    return names


def test_ravdess_official_lists(tmp_path: Path) -> None:
    speech, song = ravdess_names("01"), ravdess_names("02")
    assert (len(speech), len(song)) == (1440, 1012)
    root = tmp_path / "ravdess"
    for name in speech:
        touch(root / f"Audio_Speech_Actors_01-24/Actor_{name[-2:]}/{name}.wav")
    for name in song:
        touch(root / f"Audio_Song_Actors_01-24/Actor_{name[-2:]}/{name}.wav")
    df = load_ravdess(root)
    assert len(df) == 1440 + 1012 and skipped_files(df) == []
    assert len(load_ravdess(root, vocal_channel="speech")) == 1440
    assert df["speaker"].nunique() == 24 and df.groupby("speaker").size().max() == 60 + 44

    # Video_Speech_Actor_05: 60 full AV (01) + 60 video-only (02) files merge with the audio takes.
    for name in (n for n in speech if n.endswith("-05")):
        for mod in ("01", "02"):
            touch(root / f"Video_Speech_Actor_05/Actor_05/{mod}{name[2:]}.mp4")
    merged = load_ravdess(root, vocal_channel="speech")
    assert len(merged) == 1440
    actor5 = merged[merged["speaker"] == "05"]
    assert len(actor5) == 60 and set(actor5["modality"]) == {"audio+audio-video+video"}


# ----------------------------------------------------------------------------- SAVEE


def savee_names() -> list[tuple[str, str]]:
    """(speaker, clip) of SAVEE: 4 speakers x (30 neutral + 6 emotions x 15) = 480."""
    clips = [f"n{i:02d}" for i in range(1, 31)]
    clips += [f"{c}{i:02d}" for c in ("a", "d", "f", "h", "sa", "su") for i in range(1, 16)]
    return [(spk, clip) for spk in ("DC", "JE", "JK", "KL") for clip in clips]


def test_savee_official_and_flat_lists(tmp_path: Path) -> None:
    names = savee_names()
    assert len(names) == 480
    official = tmp_path / "official"
    for spk, clip in names:
        touch(official / "AudioData" / spk / f"{clip}.wav")
    touch(official / "AudioData" / "DC" / "Info.txt", b"not audio")
    df = load_savee(official)
    assert len(df) == 480 and skipped_files(df) == []
    assert df.groupby("emotion").size().to_dict() == {
        "angry": 60,
        "disgust": 60,
        "fearful": 60,
        "happy": 60,
        "neutral": 120,
        "sad": 60,
        "surprised": 60,
    }

    # Flat copies (Kaggle "ALL/DC_a01.wav"), with case and stray-space variants on a few files.
    flat = tmp_path / "flat"
    for i, (spk, clip) in enumerate(names):
        name = f"{spk}_{clip}"
        if i % 97 == 0:
            name = name.upper()  # DC_SA01
        elif i % 89 == 0:
            name = f"{spk}_ {clip} "  # "DC_ a01 .wav"
        touch(flat / "ALL" / f"{name}.wav")
    df_flat = load_savee(flat)
    assert len(df_flat) == 480 and skipped_files(df_flat) == []
    assert sorted(df_flat["id"]) == sorted(df["id"])


# ----------------------------------------------------------------------------- TESS

#: The 14 folders of the release, with its capitalisation (OAF_Fear vs YAF_fear, ...).
TESS_FOLDERS: dict[str, str] = {
    "OAF_angry": "angry",
    "OAF_disgust": "disgust",
    "OAF_Fear": "fear",
    "OAF_happy": "happy",
    "OAF_neutral": "neutral",
    "OAF_Pleasant_surprise": "ps",
    "OAF_Sad": "sad",
    "YAF_angry": "angry",
    "YAF_disgust": "disgust",
    "YAF_fear": "fear",
    "YAF_happy": "happy",
    "YAF_neutral": "neutral",
    "YAF_pleasant_surprised": "ps",
    "YAF_sad": "sad",
}


def tess_words() -> list[str]:
    """200 distinct placeholder words ("bite" among them: the misnamed file's word)."""
    letters = string.ascii_lowercase
    words = ["bite"] + [f"{a}{b}{c}" for a, b, c in itertools.product(letters[:6], letters[:6], letters[:6])]
    return words[:200]


def tess_files() -> list[str]:
    """Relative paths of the 2800 TESS files, with OAF_neutral/OA_bite_neutral.wav as released."""
    paths = []
    for folder, token in TESS_FOLDERS.items():
        spk = folder[:3]
        for word in tess_words():
            name = f"{spk}_{word}_{token}.wav"
            if folder == "OAF_neutral" and word == "bite":
                name = "OA_bite_neutral.wav"
            paths.append(f"{folder}/{name}")
    return paths


def test_tess_official_list(tmp_path: Path) -> None:
    files = tess_files()
    assert len(files) == 2800
    root = tmp_path / "TESS Toronto emotional speech set data"
    for rel in files:
        touch(root / rel)
    df = load_tess(root)
    assert len(df) == 2800 and skipped_files(df) == []
    assert df.groupby("speaker").size().to_dict() == {"OAF": 1400, "YAF": 1400}
    assert set(df.groupby("emotion").size()) == {400}
    bite = df[df["id"] == "OAF_bite_neutral"].iloc[0]
    assert (bite["speaker"], bite["emotion"], bite["word"]) == ("OAF", "neutral", "bite")
    assert bite["audio"].endswith("OAF_neutral/OA_bite_neutral.wav")

    # A flat copy (no speaker/emotion folders): the names alone, OA read as OAF.
    flat = tmp_path / "flat"
    for rel in files:
        touch(flat / Path(rel).name)
    df_flat = load_tess(flat)
    assert len(df_flat) == 2800 and sorted(df_flat["id"]) == sorted(df["id"])


def test_tess_case_and_space_variants(tmp_path: Path) -> None:
    root = tmp_path / "tess"
    touch(root / "YAF_Pleasant_Surprised" / "YAF_bath_PS.wav")
    touch(root / "oaf_angry" / "oaf_Back_Angry.WAV")
    touch(root / "YAF_fear" / "YAF_ dog_fear .wav")
    touch(root / "OAF_Pleasant_surprise" / "OAF_bean_pleasant_surprise.wav")
    df = load_tess(root)
    assert sorted(df["id"]) == ["OAF_back_angry", "OAF_bean_pleasant_surprise", "YAF_bath_ps", "YAF_dog_fear"]
    assert set(df["emotion"]) == {"surprised", "angry", "fearful"} and skipped_files(df) == []


# ----------------------------------------------------------------------------- CREMA-D

#: Clips listed in CREMA-D's summaryTable.csv but absent from its repository (as reported by
#: other users' loaders, e.g. TensorFlow Datasets' crema_d); 1040_ITH_SAD_XX is there as ..._X.wav.
CREMAD_ABSENT: tuple[str, ...] = ("1006_TIE_NEU_XX", "1013_WSI_DIS_XX", "1017_IWW_FEA_XX")


def cremad_names() -> list[str]:
    """CREMA-D clip names from the release's rules, official spelling of the one odd file.

    91 actors (1001-1091); sentence IEO at LO/MD/HI for the five emotions and XX for neutral,
    the 11 other sentences at XX: 82 per actor, 7462 in all, minus the 3 known absences = 7459.
    The release holds 7442: 17 more combinations are absent from it, and which ones we do not
    know, so they cannot be left out here; the loader does not assume a full grid anyway.
    """
    names = []
    for actor in range(1001, 1092):
        for sentence, emotion in itertools.product(CREMAD_SENTENCES, CREMAD_EMOTIONS):
            levels = ("LO", "MD", "HI") if sentence == "IEO" and emotion != "NEU" else ("XX",)
            names += [f"{actor}_{sentence}_{emotion}_{level}" for level in levels]
    names = [n for n in names if n not in CREMAD_ABSENT]
    return [("1040_ITH_SAD_X" if n == "1040_ITH_SAD_XX" else n) for n in names]


def test_cremad_official_list(tmp_path: Path) -> None:
    names = cremad_names()
    assert len(names) == 91 * 82 - 3 == 7459
    root = tmp_path / "CREMA-D"
    for name in names:
        touch(root / "AudioWAV" / f"{name}.wav")
    df = load_cremad(root)
    assert len(df) == len(names) and skipped_files(df) == []
    odd = df[df["id"] == "1040_ITH_SAD_XX"].iloc[0]
    assert odd["audio"].endswith("1040_ITH_SAD_X.wav") and odd["intensity"] == "unspecified"
    assert df["speaker"].nunique() == 91


def test_cremad_variants_and_unknown_names_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "crema"
    touch(root / "AudioWAV" / "1001_dfa_ang_xx.wav")
    touch(root / "AudioWAV" / "1002_ IEO_HAP_HI .wav")
    touch(root / "AudioWAV" / "1003_DFA_ANG.wav")  # level missing
    touch(root / "AudioWAV" / "1004_DFA_ANG_XX (1).wav")  # a browser's download copy
    with caplog.at_level(logging.WARNING):
        df = load_cremad(root)
    assert sorted(df["id"]) == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    reasons = {Path(i["path"]).name: i["reason"] for i in skipped_files(df)}
    assert set(reasons) == {"1003_DFA_ANG.wav", "1004_DFA_ANG_XX (1).wav"}
    assert all(r.startswith("not a CREMA-D name") for r in reasons.values())
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith("CREMA-D: 2 files taken, 2 not taken (2 not a CREMA-D name, e.g. ")
    assert line.endswith("run with -v to list every file")


def test_every_not_taken_file_is_logged_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "crema"
    touch(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    bad = [touch(root / "AudioWAV" / f"junk{i}.wav") for i in range(3)]
    with caplog.at_level(logging.DEBUG, logger="mmfer.data"):
        load_cremad(root)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for path in bad:
        assert any(str(path) in line and "not a CREMA-D name" in line for line in debug), path


# ----------------------------------------------------------------------------- CK+


def test_ckplus48_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "CK+48"
    counts = {"anger": 3, "contempt": 2, "disgust": 2, "fear": 1, "happy": 3, "sadness": 1, "surprise": 2}
    for k, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            touch(root / cls / f"S{100 + k:03d}_00{i + 1}_000000{i + 10:02d}.png")
    touch(root / ".DS_Store", b"mac")
    df = load_ckplus(root)
    assert len(df) == sum(counts.values()) and skipped_files(df) == []


# ----------------------------------------------------------------------------- what users hit


def test_lfs_pointers_are_named_with_the_fix_at_prepare(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clone without git-lfs: every media file is a ~130-byte pointer."""
    clone = tmp_path / "CREMA-D"
    for name in ("1001_DFA_ANG_XX", "1001_DFA_DIS_XX", "1002_IEO_HAP_HI"):
        touch(clone / "AudioWAV" / f"{name}.wav", LFS_POINTER)
    with pytest.raises(DataError) as info:
        load_cremad(clone)
    msg = str(info.value)
    assert "empty corpus: no CREMA-D sample taken" in msg and "3 Git LFS pointer" in msg
    assert "git lfs pull" in msg and "1001_DFA_ANG_XX.wav" in msg

    # A partial pull: the real files are taken, the pointers reported with the fix.
    touch(clone / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    with caplog.at_level(logging.WARNING):
        df = load_cremad(clone)
    assert list(df["id"]) == ["1001_DFA_ANG_XX"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 files taken, 2 not taken (2 Git LFS pointer, e.g." in line and "git lfs pull" in line


def test_lfs_pointer_reaching_extraction_gets_the_same_reason(tmp_path: Path) -> None:
    from mmfer.data.table import make_table

    pointer = touch(tmp_path / "clip.wav", LFS_POINTER)
    table = make_table(
        [{"id": "c0", "speaker": "a", "emotion": "happy", "audio": str(pointer)}], corpus="t", root=tmp_path
    )
    feats = extract_features(table, MFCC, tmp_path / "cache", modalities=("audio",), progress=False)
    assert feats["c0"].audio is None
    assert "clip.wav: is a Git LFS pointer" in feats["c0"].issues["audio"]
    assert "git lfs pull" in feats["c0"].issues["audio"]


def test_symlinked_speaker_folders_are_followed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for spk in ("DC", "JE"):
        for clip in ("a01", "n01"):
            touch(store / spk / f"{clip}.wav")
    corpus = tmp_path / "savee" / "AudioData"
    corpus.mkdir(parents=True)
    for spk in ("DC", "JE"):
        (corpus / spk).symlink_to(store / spk, target_is_directory=True)
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)  # a cycle must not hang
    df = load_savee(tmp_path / "savee")
    assert sorted(df["id"]) == ["DC_a01", "DC_n01", "JE_a01", "JE_n01"]


def test_dangling_speaker_links_are_hinted(tmp_path: Path) -> None:
    corpus = tmp_path / "savee" / "AudioData"
    corpus.mkdir(parents=True)
    (corpus / "DC").symlink_to(tmp_path / "unmounted" / "DC", target_is_directory=True)
    with pytest.raises(DataError) as info:
        load_savee(tmp_path / "savee")
    msg = str(info.value)
    assert "empty corpus" in msg and "symbolic link" in msg and str(corpus / "DC") in msg


def test_silent_clip_is_listed_as_unusable(tmp_path: Path) -> None:
    """An all-silent clip of an audio-only corpus: masked with its reason, listed by id."""
    sr = 16000
    t = np.arange(sr // 4) / sr
    root = tmp_path / "tess"
    for word, amp in (("back", 0.3), ("bite", 0.0), ("dog", 0.3)):
        path = root / "OAF_angry" / f"OAF_{word}_angry.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    table = load_tess(root)
    feats = extract_features(table, MFCC, tmp_path / "cache", modalities=("audio",), progress=False)
    masked = masked_samples(feats)
    assert masked[["id", "modality", "unusable"]].values.tolist() == [["OAF_bite_angry", "audio", True]]
    assert "OAF_bite_angry.wav: silent audio" in masked.loc[0, "reason"]
    assert unusable_samples(feats) == ["OAF_bite_angry"]
