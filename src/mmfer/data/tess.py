"""TESS (Toronto Emotional Speech Set) loader.

Two actresses (``OAF`` older, ``YAF`` younger) say "Say the word ___" with
200 target words in seven emotions: angry, disgust, fear, happy, neutral,
ps (pleasant surprise) and sad. Audio only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import AUDIO_SUFFIXES, Records, check_readable, corpus_root, walk_files
from mmfer.data.table import make_table
from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError
from mmfer.registry import CORPORA

log = logging.getLogger(__name__)

SPEAKERS: tuple[str, ...] = ("OAF", "YAF")
# <speaker>_<word>_<emotion>; the emotion may itself hold "_" (pleasant_surprise).
_NAME = re.compile(r"^(?P<speaker>[A-Za-z]{3})_(?P<word>[A-Za-z']+)_(?P<emotion>[A-Za-z_]+)$")


@CORPORA.register("tess")
def load_tess(root: str | Path) -> pd.DataFrame:
    """Load TESS into a sample table.

    Audio files named ``<speaker>_<word>_<emotion>`` (e.g.
    ``OAF_angry/OAF_back_angry.wav``, ``YAF_pleasant_surprised/YAF_bath_ps.wav``)
    are found anywhere under ``root``; the emotion comes from the file name.
    Audio files with other names are ignored with a warning.

    Parameters
    ----------
    root
        TESS folder.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_clips, 10)``; speaker ``OAF``/``YAF``,
        transcript ``"Say the word <word>"``, extra ``word``. Ids are the
        file stems (``OAF_back_angry``).

    Raises
    ------
    DataError
        Missing root, unknown speaker or emotion, duplicate file stem,
        unreadable file, or no clip found.
    """
    base = corpus_root(root, "TESS")
    records = Records()
    for path in walk_files(base, AUDIO_SUFFIXES):
        m = _NAME.match(path.stem)
        if m is None:
            log.warning("ignoring %s: not a TESS name like OAF_back_angry.wav", path)
            continue
        speaker = m["speaker"].upper()
        if speaker not in SPEAKERS:
            raise DataError(path, f"unknown TESS speaker {m['speaker']!r} (valid: {', '.join(SPEAKERS)})")
        word = m["word"].lower()
        records.add(
            {
                "id": f"{speaker}_{word}_{m['emotion'].lower()}",
                "speaker": speaker,
                "emotion": canonical_emotion(m["emotion"], source=path),
                "audio": check_readable(path),
                "transcript": f"Say the word {word}",
                "word": word,
            },
            path,
        )
    return make_table(records.values(), corpus="tess", root=base)
