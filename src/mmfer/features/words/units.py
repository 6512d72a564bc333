"""The words wing's plug into the orchestration: text units (inline, ``.txt`` file, ASR) -> arrays.

:class:`WordsUnitExtractor` meets :class:`mmfer.features.extractors.UnitExtractor`.
A text unit's arrays are the cleaned transcript (eq. 2; TF-IDF is fitted later, in
fusion) and, when ``TextConfig.representation`` asks for it, the sentence
embedding of the raw transcript; an ASR unit also keeps the raw transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmfer.config import TextConfig
from mmfer.errors import ModalityMissing
from mmfer.features.units import Unit
from mmfer.features.words.cleaning import CLEAN_VERSION, clean_text, read_transcript, uses_embedding

log = logging.getLogger(__name__)

__all__ = ["WordsUnitExtractor"]


class WordsUnitExtractor:
    """Text units -> ``text`` (0-d string), ``text_emb (D_t,)`` and ``asr_text`` arrays.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.TextConfig`.
    threads
        CPU threads of the ASR model (a worker's share), ``None`` = the process plan.
    """

    def __init__(self, cfg: TextConfig, *, threads: int | None = None) -> None:
        self.cfg = cfg
        self.threads = threads
        self._sentence: Any = None
        self._asr: Any = None
        # raw transcript -> (D_t,) embedding, filled in batches by prefetch()
        self._embedded: dict[str, np.ndarray] = {}

    def sentence(self) -> Any:
        """The :class:`~mmfer.features.words.sentence.SentenceEncoder` (built on first use)."""
        if self._sentence is None:
            from mmfer.features.words.sentence import SentenceEncoder

            t = self.cfg
            self._sentence = SentenceEncoder(
                t.embedding_model, max_tokens=t.embedding_max_tokens, layers=t.embedding_layers
            )
        return self._sentence

    def asr(self) -> Any:
        """The :class:`~mmfer.features.words.asr.AsrTranscriber` (built on first use)."""
        if self._asr is None:
            from mmfer.features.words.asr import AsrTranscriber

            self._asr = AsrTranscriber(self.cfg, threads=self.threads)
        return self._asr

    def config_for(self, kind: str) -> dict[str, Any]:
        """Cache-key config of text units; ``asr`` units add the transcriber's."""
        t = self.cfg
        out: dict[str, Any] = {
            "modality": "text",
            "extractor": "clean_text",
            "version": CLEAN_VERSION,
            "lowercase": t.lowercase,
            "remove_stop_words": t.remove_stop_words,
        }
        if uses_embedding(t):
            out["embedding"] = self.sentence().config_dict()
        if kind == "asr":
            out["asr"] = self.asr().config_dict()
        return out

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Embed the inline transcripts of ``units`` in batches (much faster than one by one).

        :meth:`compute` then takes each embedding from the memo. Failures are left
        for :meth:`compute` to report per unit.
        """
        if not uses_embedding(self.cfg):
            return
        raw = list(dict.fromkeys(u.source for u in units if u.kind == "transcript_text" and u.source.strip()))
        raw = [r for r in raw if r not in self._embedded]
        if not raw:
            return
        try:
            vectors = self.sentence().encode(raw)  # (N, D_t)
        except Exception as e:
            log.debug("batched sentence embedding failed (%s); embedding one by one", e)
            return
        self._embedded.update(zip(raw, vectors, strict=True))

    def _text_arrays(self, raw: str, unit: Unit) -> dict[str, np.ndarray]:
        """Cleaned transcript (+ embedding of the raw one) of one text unit."""
        t = self.cfg
        cleaned = clean_text(raw, lowercase=t.lowercase, remove_stop_words=t.remove_stop_words)
        arrays = {"text": np.asarray(cleaned)}  # 0-d unicode array: stored without pickle
        if uses_embedding(t):
            # the raw words: punctuation and stop words ("no", "not") matter to a sentence model
            emb = self._embedded.pop(raw, None)
            arrays["text_emb"] = emb if emb is not None else self.sentence().encode([raw])[0]  # (D_t,)
        elif not cleaned:
            raise ModalityMissing(
                unit.path, "transcript has no words left after removing punctuation and stop words"
            )
        return arrays

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """Arrays of a ``transcript_text``, ``transcript_file`` or ``asr`` unit."""
        if unit.kind == "asr":
            raw = self.asr().transcribe(unit.source)  # ModalityMissing when no words are heard
            return {**self._text_arrays(raw, unit), "asr_text": np.asarray(raw)}
        raw = read_transcript(unit.source) if unit.kind == "transcript_file" else unit.source
        return self._text_arrays(raw, unit)
