"""Transcripts: neutral filler sentences with an emotion cue in some clips."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmfer.emotions import CANONICAL

# Neutral filler: "<subject> <predicate> [<time>]", the same pool for every emotion.
_SUBJECTS = tuple(
    "the kids|my neighbour|the dogs|our team|the train|my sister|the teacher|the old car|the letter|"
    "the visitors|my brother|the manager".split("|")
)
_PREDICATES = tuple(
    "are talking by the door|arrived this morning|talked about the plan|came back late|stayed at home|"
    "moved to the city|sat near the window|waited in the kitchen|called about the meeting|"
    "went to the market|took the bus|opened the box".split("|")
)
_TAILS = ("today", "yesterday", "this week", "after lunch", "on monday", "at noon", "", "")

#: Emotion-cued phrases (``|``-separated); a few cue words are shared across emotions on purpose.
CUES: dict[str, tuple[str, ...]] = {
    emotion: tuple(text.split("|"))
    for emotion, text in {
        "neutral": "as usual|nothing special|that is fine|it is the normal routine|noted",
        "calm": "everything is peaceful|i feel relaxed|quiet and easy|no rush at all|gently",
        "happy": "how wonderful|i am so glad|that is fantastic|what a lovely day|i love it|great news",
        "sad": "i miss them|i feel so lonely|it is heartbreaking|i am sorry it ended|so gloomy|tears again",
        "angry": "this is outrageous|i am furious|that is so unfair|stop it right now|i hate this|"
        "really ridiculous",
        "fearful": "i am scared|i am afraid|this is dangerous|i am worried|we should hide|so nervous",
        "disgust": "that is disgusting|how gross|it smells rotten|so nasty|yuck",
        "surprised": "wow|really unexpected|i cannot believe it|what a shock|suddenly|unbelievable",
        "contempt": "how pathetic|so naive|obviously beneath us|what a joke|typical",
    }.items()
}

#: Share of clips with a cue of their own emotion, and with a cue of another one.
CUE_RATE = 0.6
MISLEADING_RATE = 0.1


def make_transcript(emotion: str, rng: np.random.Generator, *, others: Sequence[str] = ()) -> str:
    """One sentence: neutral filler words plus, sometimes, an emotion cue.

    With probability :data:`CUE_RATE` a phrase cueing ``emotion`` is added; with
    probability :data:`MISLEADING_RATE` a phrase cueing another emotion (drawn
    from ``others``, default: all canonical) is added instead; otherwise none.
    """
    subject = _SUBJECTS[int(rng.integers(len(_SUBJECTS)))]
    predicate = _PREDICATES[int(rng.integers(len(_PREDICATES)))]
    tail = _TAILS[int(rng.integers(len(_TAILS)))]
    words = " ".join(w for w in (subject, predicate, tail) if w)
    u = rng.random()
    pool = [e for e in (others or CANONICAL) if e != emotion and e in CUES]
    cue_emotion: str | None = None
    if u < CUE_RATE:
        cue_emotion = emotion
    elif u < CUE_RATE + MISLEADING_RATE and pool:
        cue_emotion = pool[int(rng.integers(len(pool)))]
    if cue_emotion is None:
        sentence = words
    else:
        cue = CUES[cue_emotion][int(rng.integers(len(CUES[cue_emotion])))]
        sentence = f"{cue}, {words}" if rng.random() < 0.5 else f"{words}, {cue}"
    return sentence[0].upper() + sentence[1:] + "."
