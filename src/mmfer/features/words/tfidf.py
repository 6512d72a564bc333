"""TF-IDF (eqs. 3-5, paper section 2.3.2) and the text block of the fusion (TF-IDF and/or embedding).

TF-IDF is *fitted*, so it lives in fusion and is fitted on the training fold
only; per-sample extraction stops at the cleaned string
(:func:`mmfer.features.words.cleaning.clean_text`).

Two idf variants are offered (``TextConfig.idf``):

* ``"paper"`` — eqs. 3-5 literally: ``w(t, d) = tf(t, d) * N / n(t)`` with raw
  term counts ``tf``, ``N`` training documents and ``n(t)`` the number of
  training documents containing ``t``; no logarithm, no smoothing.
* ``"smooth"`` — scikit-learn's ``TfidfVectorizer``: ``idf = ln((1 + N) / (1 + n(t))) + 1``.

Both optionally L2-normalise each row; an empty document gives a zero row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mmfer.config import TextConfig, from_dict
from mmfer.errors import DataError
from mmfer.features.words.cleaning import clean_text, uses_embedding, uses_tfidf
from mmfer.features.words.text_view import text_vector

# Tokens are whitespace-separated after cleaning; keep every one (digits, 1-letter words).
_TOKEN_PATTERN = r"(?u)\S+"


class TextTfidf:
    """TF-IDF over cleaned transcripts, fitted on training documents only.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.TextConfig` (``idf``, ``max_features``, ``ngram_max``,
        ``l2_normalise``, cleaning options).

    Notes
    -----
    Documents are passed through :func:`clean_text` first (idempotent on
    already-cleaned text). ``transform`` is one code path for both variants:
    raw counts over the fitted vocabulary times the fitted idf, then optional
    L2 normalisation; only ``fit`` differs.
    """

    def __init__(self, cfg: TextConfig) -> None:
        if cfg.idf not in ("paper", "smooth"):
            raise DataError(None, f"text.idf must be 'paper' or 'smooth', got {cfg.idf!r}")
        self.cfg = cfg
        self._vocab: list[str] | None = None
        self._idf: np.ndarray | None = None  # (V,) float64
        self._counter: Any = None  # CountVectorizer with a fixed vocabulary
        self.n_docs_: int = 0

    # ------------------------------------------------------------------ helpers
    def _clean(self, docs: list[str]) -> list[str]:
        if isinstance(docs, str):
            raise TypeError("TextTfidf expects a list of documents, not a single string")
        return [
            clean_text(d or "", lowercase=self.cfg.lowercase, remove_stop_words=self.cfg.remove_stop_words)
            for d in docs
        ]

    def _vectorizer_kwargs(self) -> dict[str, Any]:
        return {
            "lowercase": False,  # clean_text already case-folded (or was told not to)
            "token_pattern": _TOKEN_PATTERN,
            "ngram_range": (1, self.cfg.ngram_max),
            "max_features": self.cfg.max_features or None,
        }

    def _set_vocabulary(self, vocab: list[str], idf: np.ndarray) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self._vocab = list(vocab)
        self._idf = np.asarray(idf, dtype=np.float64)
        kwargs = self._vectorizer_kwargs()
        kwargs.pop("max_features")
        self._counter = CountVectorizer(vocabulary={t: i for i, t in enumerate(self._vocab)}, **kwargs)

    # ------------------------------------------------------------------ API
    def fit(self, docs: list[str]) -> TextTfidf:
        """Learn the vocabulary and idf from training documents.

        Parameters
        ----------
        docs
            ``N`` raw or cleaned transcripts (``""`` for a sample without text).

        Raises
        ------
        DataError
            No term is left in any document after cleaning.
        """
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        cleaned = self._clean(docs)
        try:
            if self.cfg.idf == "smooth":
                vec = TfidfVectorizer(smooth_idf=True, sublinear_tf=False, **self._vectorizer_kwargs())
                vec.fit(cleaned)
                idf = vec.idf_
                names = vec.get_feature_names_out()
            else:
                vec = CountVectorizer(**self._vectorizer_kwargs())
                counts = vec.fit_transform(cleaned)  # (N, V) sparse int
                df = np.asarray((counts > 0).sum(axis=0)).ravel()  # (V,) documents containing each term
                idf = len(cleaned) / df  # eq. 4: N / n(x); df >= 1 for every fitted term
                names = vec.get_feature_names_out()
        except ValueError as e:  # "empty vocabulary; perhaps the documents only contain stop words"
            raise DataError(None, f"TF-IDF: cannot fit on {len(cleaned)} training documents: {e}") from None
        self._set_vocabulary([str(t) for t in names], idf)
        self.n_docs_ = len(cleaned)
        return self

    def transform(self, docs: list[str]) -> np.ndarray:
        """TF-IDF weights of documents over the fitted vocabulary.

        Terms never seen in the training documents get no column (and so no weight).

        Returns
        -------
        numpy.ndarray
            ``(N, V)`` float32; an empty document is a zero row.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Called before :meth:`fit` / :meth:`from_state`.
        """
        if self._counter is None or self._idf is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "TextTfidf is not fitted yet: call fit(train_docs) (training fold only) "
                "or TextTfidf.from_state(state) before transform"
            )
        from sklearn.preprocessing import normalize

        counts = self._counter.transform(self._clean(docs))  # (N, V) sparse int: tf(t, d)
        weights = counts.multiply(self._idf[None, :]).tocsr()  # (N, V): tf * idf (eq. 5)
        if self.cfg.l2_normalise:
            weights = normalize(weights, norm="l2", copy=False)  # zero rows stay zero
        return np.asarray(weights.toarray(), dtype=np.float32)

    def fit_transform(self, docs: list[str]) -> np.ndarray:
        """``fit(docs).transform(docs)``; ``(N, V)`` float32."""
        return self.fit(docs).transform(docs)

    @property
    def vocabulary_(self) -> dict[str, int]:
        """Term -> column index (scikit-learn convention)."""
        if self._vocab is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("TextTfidf is not fitted yet: no vocabulary")
        return {t: i for i, t in enumerate(self._vocab)}

    @property
    def idf_(self) -> np.ndarray:
        """``(V,)`` idf of each column."""
        if self._idf is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("TextTfidf is not fitted yet: no idf")
        return self._idf.copy()

    @property
    def dim(self) -> int:
        """Number of columns ``V`` (0 before fitting)."""
        return 0 if self._vocab is None else len(self._vocab)

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable fitted state: ``config``, ``vocabulary`` (column order), ``idf``, ``n_docs``."""
        if self._vocab is None or self._idf is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("TextTfidf is not fitted yet: nothing to save")
        return {
            "config": dataclasses.asdict(self.cfg),
            "vocabulary": list(self._vocab),
            "idf": [float(v) for v in self._idf],
            "n_docs": int(self.n_docs_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextTfidf:
        """Rebuild a fitted :class:`TextTfidf` from :meth:`get_state` output."""
        try:
            cfg = from_dict(TextConfig, dict(state["config"]))
            vocab = [str(t) for t in state["vocabulary"]]
            idf = np.asarray(state["idf"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(None, f"invalid TextTfidf state: {e!r}") from None
        if idf.shape != (len(vocab),):
            raise DataError(None, f"invalid TextTfidf state: {len(vocab)} terms but {idf.size} idf values")
        obj = cls(cfg)
        obj._set_vocabulary(vocab, idf)
        obj.n_docs_ = int(state.get("n_docs", 0))
        return obj


# --------------------------------------------------------------------------- text block of the fusion


def fit_text_block(feats: list[Any], cfg: TextConfig) -> tuple[TextTfidf | None, int]:
    """Fit what the text block needs on training samples: TF-IDF (if used) and the block's width.

    Parameters
    ----------
    feats
        Training samples (``SampleFeatures``: ``text`` cleaned string, ``text_emb`` ``(D_t,)``).
    cfg
        ``representation`` picks ``tfidf`` ``(V,)``, ``embedding`` ``(D_t,)`` or ``both`` ``(V + D_t,)``.

    Returns
    -------
    tuple
        The fitted :class:`TextTfidf` (``None`` for ``embedding``) and the block width.

    Raises
    ------
    ConfigError
        No training sample has a transcript, or (embedding) none has an embedding
        (the features were extracted with another ``text.representation``).
    """
    from mmfer.errors import ConfigError

    width = 0
    tfidf = None
    if uses_tfidf(cfg):
        docs = [f.text for f in feats if f.text is not None]
        if not docs:
            raise ConfigError("modality 'text' requested but no training sample has a transcript")
        tfidf = TextTfidf(cfg).fit(docs)
        width += tfidf.dim
    if uses_embedding(cfg):
        embs = [text_vector(f, cfg) for f in feats if getattr(f, "text_emb", None) is not None][:1]
        if not embs:
            raise ConfigError(
                f"text.representation={cfg.representation} but no training sample has a sentence "
                "embedding: extract the features with this text.representation (the cache keeps both)"
            )
        width += int(np.asarray(embs[0]).shape[-1])
    return tfidf, width


def text_block(
    feats: list[Any], cfg: TextConfig, tfidf: TextTfidf | None, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Text block rows of samples, and which samples have text.

    TF-IDF rows and embeddings both have unit L2 norm; with ``both`` each half
    is scaled by ``1/sqrt(2)`` so the concatenated row keeps unit norm (the same
    weight in the fused vector as either alone).

    Returns
    -------
    tuple of numpy.ndarray
        ``rows (N, width)`` float32 (zero for a sample without text) and
        ``present (N,)`` bool: ``text`` for TF-IDF, ``text_emb`` for an
        embedding, either for ``both``.

    Raises
    ------
    mmfer.errors.MmferError
        An embedding's width does not match the fitted one (another sentence model).
    """
    from mmfer.errors import MmferError

    n = len(feats)
    rows = np.zeros((n, width), dtype=np.float32)  # (N, width)
    present = np.zeros(n, dtype=bool)  # (N,)
    col = 0
    scale = np.float32(1 / np.sqrt(2)) if uses_tfidf(cfg) and uses_embedding(cfg) else np.float32(1)
    if uses_tfidf(cfg):
        assert tfidf is not None
        has = np.array([f.text is not None for f in feats], dtype=bool)  # (N,)
        tf = tfidf.transform([f.text or "" for f in feats])  # (N, V)
        rows[has, : tfidf.dim] = tf[has] * scale
        present |= has
        col = tfidf.dim
    if uses_embedding(cfg):
        d = width - col
        for i, f in enumerate(feats):
            e = text_vector(f, cfg)  # text.layers view (+ dialogue context)
            if e is None:
                continue
            e = np.asarray(e, dtype=np.float32).reshape(-1)  # (D_t,)
            if e.shape[0] != d:
                raise MmferError(
                    f"text embedding of width {e.shape[0]} does not match the fitted width {d}"
                    " (extracted with another text.embedding_model?)"
                )
            rows[i, col:] = e * scale
            present[i] = True
    return rows, present
