"""Safetensors checkpoints with JSON metadata, written atomically.

No pickle anywhere: tensors go into the safetensors body, everything else
(hyper-parameters, history, scheduler state, RNG state of numpy/Python) is
JSON-encoded into the safetensors string metadata under the single key
``"mmfer"``, so nested dicts and lists survive a round trip.

Besides the raw :func:`save_checkpoint` / :func:`load_checkpoint` pair, this
module flattens ``state_dict``-like nests (model and optimizer state) into the
flat ``name -> tensor`` mapping safetensors needs, and back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mmfer.errors import DataError
from mmfer.io import atomic_write

__all__ = [
    "METADATA_KEY",
    "load_checkpoint",
    "optimizer_state_from_flat",
    "optimizer_state_to_flat",
    "read_metadata",
    "save_checkpoint",
    "strip_prefix",
    "with_prefix",
]

#: The one safetensors metadata key holding mmfer's JSON document.
METADATA_KEY = "mmfer"


def _json_default(obj: Any) -> Any:
    """Encode the few non-JSON types that show up in training state."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"checkpoint metadata value {obj!r} of type {type(obj).__name__} is not JSON-encodable")


def save_checkpoint(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write ``tensors`` and ``metadata`` to a safetensors file atomically.

    Parameters
    ----------
    path
        Destination file (conventionally ``*.safetensors``); parent folders are created.
    tensors
        Flat ``name -> tensor`` mapping; tensors are copied to CPU and made
        contiguous (safetensors refuses views and shared storage).
    metadata
        JSON-encodable mapping (nested dicts/lists allowed; numpy scalars/arrays
        and ``Path`` are converted). Stored under the metadata key ``"mmfer"``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        A value in ``tensors`` is not a tensor or ``metadata`` is not JSON-encodable.
    """
    flat: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"checkpoint tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        # clone() so tied/shared parameters and views become independent buffers.
        flat[name] = t.detach().to("cpu").contiguous().clone()
    text = json.dumps(metadata, default=_json_default, allow_nan=True)
    return atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata={METADATA_KEY: text}))


def _decode_metadata(path: Path, raw: Mapping[str, str] | None) -> dict[str, Any]:
    if not raw or METADATA_KEY not in raw:
        raise DataError(path, f"safetensors file has no {METADATA_KEY!r} metadata; not an mmfer checkpoint")
    try:
        meta = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise DataError(path, f"checkpoint metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataError(path, "checkpoint metadata must be a JSON object")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the JSON metadata of a checkpoint (no tensor data is loaded).

    Raises
    ------
    DataError
        Missing file, not a safetensors file, or no mmfer metadata.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "checkpoint file not found")
    try:
        with safe_open(str(p), framework="pt") as fh:
            raw = fh.metadata()
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(p, f"not a readable safetensors checkpoint (corrupt or truncated?): {e}") from None
    return _decode_metadata(p, raw)


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path
        The ``.safetensors`` file.
    device
        Where to put the tensors.

    Returns
    -------
    tensors, metadata
        The flat tensor mapping and the decoded JSON metadata.

    Raises
    ------
    DataError
        The file is missing, truncated, corrupt, not safetensors, or lacks mmfer metadata.
    """
    p = Path(path)
    meta = read_metadata(p)
    try:
        tensors = load_file(str(p), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise DataError(p, f"checkpoint tensors cannot be read (corrupt or truncated?): {e}") from None
    return tensors, meta


# --------------------------------------------------------------------------- flattening


def with_prefix(prefix: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"w": t}`` -> ``{"<prefix>.w": t}``."""
    return {f"{prefix}.{k}": v for k, v in state.items()}


def strip_prefix(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Select the entries under ``"<prefix>."`` and drop the prefix."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def _jsonable_group(group: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in group.items():
        if isinstance(v, torch.Tensor):
            # lr/betas may be tensors for capturable optimizers; a float is exact enough for metadata.
            v = v.tolist()
        elif isinstance(v, tuple):
            v = [x.item() if isinstance(x, torch.Tensor) else x for x in v]
        out[k] = v
    return out


def optimizer_state_to_flat(
    state_dict: Mapping[str, Any], prefix: str = "optim"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON metadata.

    Per-parameter tensors (AdamW ``exp_avg``, ``exp_avg_sq``, ``step``) become
    ``"<prefix>.state.<param index>.<name>"``; non-tensor per-parameter values
    and the ``param_groups`` hyper-parameters go to the metadata.

    Returns
    -------
    tensors, metadata
        ``metadata`` has keys ``param_groups`` and ``scalars``.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state_dict["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [_jsonable_group(g) for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_from_flat(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], prefix: str = "optim"
) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_flat`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in strip_prefix(prefix + ".state", tensors).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in metadata.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    groups = []
    for g in metadata["param_groups"]:
        g = dict(g)
        # Adam-family code unpacks betas positionally; JSON turned the tuple into a list.
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}
