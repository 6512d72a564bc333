"""A small PyTorch port of the Whisper encoder, loading the CTranslate2 weights, to expose layers.

CTranslate2 returns only the encoder's last layer. Paralinguistic cues (pitch,
energy, voice quality) are partly normalised away towards the top of an ASR
encoder, so intermediate layers can be better emotion features. This port runs
the same computation as CTranslate2 in float32 with PyTorch (conv stem ->
sinusoidal positions -> pre-LN transformer blocks -> final LayerNorm) from the
same ``model.bin``, and returns the hidden states of any block.

The weights are read straight from CTranslate2's binary format (version 6: a
list of named, typed arrays; no pickle): only the ``encoder/*`` variables.
``tests/test_whisper.py`` checks that the last layer matches CTranslate2's
float32 output.
"""

from __future__ import annotations

import re
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.errors import FeatureError

#: CTranslate2 DataType enum order (include/ctranslate2/types.h).
_CT2_DTYPES: tuple[Any, ...] = (
    np.float32,
    np.int8,
    np.int16,
    np.int32,
    np.float16,
    None,
)  # bfloat16 unsupported
_SUPPORTED_BINARY_VERSIONS = (5, 6)

_ENCODERS: dict[tuple[str, int], Any] = {}
_ENCODERS_LOCK = threading.Lock()


def read_ct2_variables(path: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``.

    Returns
    -------
    dict[str, numpy.ndarray]
        Name -> array (float16 weights are returned as float16; scalars as 0-d arrays).

    Raises
    ------
    FeatureError
        Not a CTranslate2 model file, an unsupported version or dtype, or a truncated file.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fh:

            def unpack(fmt: str) -> tuple[Any, ...]:
                size = struct.calcsize(fmt)
                raw = fh.read(size)
                if len(raw) != size:
                    raise FeatureError(path, "truncated CTranslate2 model file")
                return struct.unpack("<" + fmt, raw)

            def string() -> str:
                (n,) = unpack("H")
                raw = fh.read(n)
                if len(raw) != n:
                    raise FeatureError(path, "truncated CTranslate2 model file")
                return raw[:-1].decode("utf-8")

            (version,) = unpack("I")
            if version not in _SUPPORTED_BINARY_VERSIONS:
                raise FeatureError(path, f"unsupported CTranslate2 binary version {version}")
            string()  # spec name
            unpack("I")  # revision
            (n_vars,) = unpack("I")
            for _ in range(n_vars):
                name = string()
                (rank,) = unpack("B")
                shape = unpack(f"{rank}I") if rank else ()
                (dtype_id,) = unpack("B")
                (n_bytes,) = unpack("I")
                if not name.startswith(prefix):
                    fh.seek(n_bytes, 1)
                    continue
                dtype = _CT2_DTYPES[dtype_id] if dtype_id < len(_CT2_DTYPES) else None
                if dtype is None:
                    raise FeatureError(path, f"{name}: unsupported CTranslate2 dtype id {dtype_id}")
                raw = fh.read(n_bytes)
                if len(raw) != n_bytes:
                    raise FeatureError(path, "truncated CTranslate2 model file")
                out[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except OSError as e:
        raise FeatureError(path, f"cannot read the Whisper model: {e.strerror or e}") from None
    except (struct.error, UnicodeDecodeError, ValueError) as e:
        raise FeatureError(path, f"not a CTranslate2 model file: {e}") from None
    return out


def build_encoder(variables: dict[str, np.ndarray]) -> Any:
    """A float32 ``torch.nn.Module`` Whisper encoder from :func:`read_ct2_variables` output."""
    import torch
    from torch import nn

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(variables[f"encoder/{name}"], dtype=np.float32))

    class Block(nn.Module):
        def __init__(self, i: int, heads: int) -> None:
            super().__init__()
            p = f"layer_{i}/"
            d = t(p + "self_attention/linear_1/weight").shape[0]
            self.heads = heads
            self.ln_attn = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ln_ffn = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, t(p + "ffn/linear_0/weight").shape[0])
            self.fc2 = nn.Linear(self.fc1.out_features, d)
            with torch.no_grad():
                for mod, key in (
                    (self.ln_attn, "self_attention/layer_norm"),
                    (self.ln_ffn, "ffn/layer_norm"),
                ):
                    mod.weight.copy_(t(p + key + "/gamma"))
                    mod.bias.copy_(t(p + key + "/beta"))
                for mod, key in (
                    (self.qkv, "self_attention/linear_0"),
                    (self.out, "self_attention/linear_1"),
                    (self.fc1, "ffn/linear_0"),
                    (self.fc2, "ffn/linear_1"),
                ):
                    mod.weight.copy_(t(p + key + "/weight"))
                    mod.bias.copy_(t(p + key + "/bias"))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
            b, n, d = x.shape
            q, k, v = self.qkv(self.ln_attn(x)).split(d, dim=-1)  # each (B, T, D)
            q, k, v = (z.view(b, n, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # (B, H, T, D/H)
            x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln_ffn(x))))  # (B, T, D)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w1, w2 = t("conv1/weight"), t("conv2/weight")  # (D, n_mels, 3), (D, D, 3)
            d, n_mels = w1.shape[0], w1.shape[1]
            heads = int(np.asarray(variables["encoder/num_heads"]))
            # "encoder/layer_<i>/..." (not "encoder/layer_norm/...", the final LayerNorm)
            n_layers = len({k.split("/")[1] for k in variables if re.match(r"encoder/layer_\d+/", k)})
            self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
            self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
            with torch.no_grad():
                self.conv1.weight.copy_(w1)
                self.conv1.bias.copy_(t("conv1/bias"))
                self.conv2.weight.copy_(w2)
                self.conv2.bias.copy_(t("conv2/bias"))
            self.register_buffer("pos", t("position_encodings/encodings"))  # (1500, D)
            self.blocks = nn.ModuleList(Block(i, heads) for i in range(n_layers))
            self.ln_post = nn.LayerNorm(d)
            with torch.no_grad():
                self.ln_post.weight.copy_(t("layer_norm/gamma"))
                self.ln_post.bias.copy_(t("layer_norm/beta"))

        def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:  # (B, n_mels, M)
            """Hidden states: ``[block 0 out, ..., block L-1 out, final (LayerNorm of the last)]``."""
            x = torch.nn.functional.gelu(self.conv1(mel))  # (B, D, M)
            x = torch.nn.functional.gelu(self.conv2(x)).transpose(1, 2)  # (B, M/2, D)
            x = x + self.pos[: x.shape[1]]
            states = []
            for blk in self.blocks:
                x = blk(x)
                states.append(x)
            states.append(self.ln_post(x))
            return states

    return Encoder().eval()


def load_encoder(model_dir: str | Path, threads: int = 0) -> Any:
    """The ported encoder of ``model_dir/model.bin``, built once per process.

    ``threads > 0`` sets torch's (process-wide) intra-op threads; 0 leaves them alone.

    Raises
    ------
    FeatureError
        Missing or unreadable model file.
    """
    import os

    key = (str(model_dir), os.getpid())
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            path = Path(model_dir) / "model.bin"
            if not path.is_file():
                raise FeatureError(
                    Path(model_dir), f"cannot load the Whisper model {model_dir}: model.bin missing"
                )
            try:
                enc = build_encoder(read_ct2_variables(path))
            except KeyError as e:
                raise FeatureError(path, f"not a Whisper encoder: variable {e} missing") from None
            _ENCODERS[key] = enc
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return enc


def encode_layers(encoder: Any, mel: np.ndarray) -> list[np.ndarray]:
    """Run the ported encoder on ``(1, n_mels, M)`` log-mel; hidden states as ``(M/2, D)`` arrays."""
    import torch

    with torch.inference_mode():
        states = encoder(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)))
    return [s[0].numpy() for s in states]
