"""Export the recognition model (fused ``x``, ``mask`` -> logits) to ONNX.

The exported graph covers the model only: feature extraction (video decoding,
face CNN, MFCC, text cleaning) and fusion (TF-IDF, standardisation, time
alignment) stay in Python (:class:`mmfer.inference.predictor.Predictor`), because they are not
tensor programs. The graph takes

* ``x``    ``(batch, T, F)`` float32 fused features (``T`` = ``fusion.steps``, fixed),
* ``mask`` ``(batch, T)`` bool, True on valid steps,

and returns ``logits`` ``(batch, C)``; the batch axis is dynamic. Labels,
modalities and the fusion width are stored in the ONNX metadata
(``mmfer.labels``, ``mmfer.modalities``, ``mmfer.steps``, ``mmfer.in_features``).

Why a wrapper: :meth:`EmotionModel.forward_features` moves valid steps to the
front with a *stable* argsort and trims columns to the longest sample, which the
TorchScript-based ONNX exporter cannot express (no stable Sort; the trim length
is data dependent). :class:`ExportableModel` does the same reordering with a
plain argsort on unique keys and keeps all ``T`` columns (padding zeroed and
masked), which every model ignores by contract, so the outputs are the same.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmfer.errors import ConfigError, MmferError

log = logging.getLogger(__name__)

__all__ = ["ExportResult", "ExportableModel", "compare_onnx", "example_inputs", "export_onnx"]

#: ONNX opset used by default (supported by onnxruntime >= 1.14).
DEFAULT_OPSET = 17


class ExportableModel(nn.Module):
    """Export-friendly forward of an :class:`~mmfer.models.base.EmotionModel`.

    Parameters
    ----------
    model
        A model with ``project`` (layer mix, input projection), ``encode(x, prefix_mask)``
        and ``forward_head``
        (every registered mmfer model). It is put in eval mode.

    Notes
    -----
    Unlike the model's own forward this does not validate its input: a sample
    with no valid step yields the logits of an all-zero pooled vector instead of
    raising.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        needs = (
            ("export_forward",) if hasattr(model, "export_forward") else ("project", "encode", "forward_head")
        )
        for attr in needs:
            if not hasattr(model, attr):
                raise ConfigError(
                    f"cannot export {type(model).__name__}: it has no {attr}() (not an mmfer model)"
                )
        self.model = model.eval()

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, F)`` float, ``mask (B, T)`` bool -> logits ``(B, C)``."""
        if hasattr(self.model, "export_forward"):  # a model with its own static graph (fer2013_ft)
            return self.model.export_forward(x.masked_fill(~mask.unsqueeze(-1), 0.0), mask)
        steps = x.shape[1]
        pos = torch.arange(steps, device=x.device).unsqueeze(0)  # (1, T)
        # Valid steps keep their index, padding is pushed past T: keys are unique, so a plain
        # (unstable) argsort gives the same order as the model's stable one.
        key = pos + (~mask).to(torch.long) * steps  # (B, T)
        order = torch.argsort(key, dim=1)  # (B, T)
        x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, T, F)
        prefix = pos < mask.sum(dim=1, keepdim=True)  # (B, T) prefix-form mask
        x = x.masked_fill(~prefix.unsqueeze(-1), 0.0)  # NaN/inf in padding must not leak
        h = self.model.encode(self.model.project(x), prefix)  # (B, H)
        return self.model.forward_head(h)  # (B, C)


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes
    ----------
    path
        The written file (``.onnx``, or ``.pt`` for the TorchScript fallback).
    method
        ``"onnx-legacy"`` (TorchScript-based exporter), ``"onnx-dynamo"`` or ``"torchscript"``.
    max_abs_diff
        Largest |ONNX Runtime - PyTorch| logit difference on the check inputs (``None`` if not checked).
    """

    path: Path
    method: str
    max_abs_diff: float | None = None


def example_inputs(
    batch: int,
    steps: int,
    in_features: int,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """Random ``x (batch, steps, F)`` and a mask with padding in every row but the first.

    Rows get ``steps, steps-1, ...`` (at least 1) valid steps, with the padding put
    at varying places, so a trace goes through the reordering path. ``value_range`` clips
    ``x`` for a model that reads bounded input (``fer2013_ft``: pixels in [-1, 1]).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, in_features, generator=g)  # (B, T, F)
    if value_range is not None:
        x = x.clamp(*value_range)
    mask = torch.ones(batch, steps, dtype=torch.bool)  # (B, T)
    for b in range(1, batch):
        n_pad = min(b, steps - 1)
        idx = torch.randperm(steps, generator=g)[:n_pad]
        mask[b, idx] = False
    return x, mask


def _resolve(model: Any) -> tuple[nn.Module, int, int, dict[str, str]]:
    """``(model, steps, in_features, metadata)`` from a Recognizer, checkpoint path or bare model."""
    from mmfer.recognizer import Recognizer

    if isinstance(model, (str, Path)):
        from mmfer.inference.loader import load

        loaded = load(model)
        if not hasattr(loaded, "recognizer"):
            raise ConfigError(
                f"{model}: a composed model (decision-level fusion in Python) has no single graph; "
                "export each part's checkpoint instead"
            )
        model = loaded.recognizer
    if isinstance(model, Recognizer):
        meta = {
            "mmfer.labels": json.dumps(list(model.labels)),
            "mmfer.modalities": json.dumps(list(model.modalities)),
            "mmfer.model": model.model_cfg.name,
            "mmfer.steps": str(model.fuser.cfg.steps),
            "mmfer.in_features": str(model.fuser.n_features),
        }
        return model.model, int(model.fuser.cfg.steps), int(model.fuser.n_features), meta
    if isinstance(model, nn.Module):
        in_features = getattr(model, "in_features", None)
        if not isinstance(in_features, int):
            raise ConfigError(f"cannot tell the input width of {type(model).__name__}: pass a Recognizer")
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
        return model, 8, in_features, {"mmfer.model": str(name), "mmfer.in_features": str(in_features)}
    raise ConfigError(f"cannot export a {type(model).__name__}: pass a checkpoint path, Recognizer or model")


def _onnx_export(module: nn.Module, args: tuple[Tensor, Tensor], out: Path, opset: int, dynamo: bool) -> None:
    axes = {"x": {0: "batch"}, "mask": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        # Tracer warnings about Python ints taken from shapes are expected: T is fixed by design.
        warnings.simplefilter("ignore")
        kwargs: dict[str, Any] = {
            "input_names": ["x", "mask"],
            "output_names": ["logits"],
            "opset_version": opset,
            "dynamo": dynamo,
        }
        if dynamo:
            batch = torch.export.Dim("batch")
            kwargs["dynamic_shapes"] = {"x": {0: batch}, "mask": {0: batch}}
        else:
            kwargs["dynamic_axes"] = axes
            kwargs["training"] = torch.onnx.TrainingMode.EVAL
        torch.onnx.export(module, args, str(out), **kwargs)


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "mmfer"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def compare_onnx(path: str | Path, model: nn.Module, x: Tensor, mask: Tensor) -> float:
    """Max |ONNX Runtime logits - PyTorch logits| for one batch.

    Parameters
    ----------
    path
        Exported ``.onnx`` file.
    model
        The PyTorch model (its own ``forward``, not the export wrapper, is the reference).
    x, mask
        ``(B, T, F)`` float32 and ``(B, T)`` bool inputs.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"x": x.numpy().astype(np.float32), "mask": mask.numpy().astype(bool)})[0]
    model.eval()
    with torch.inference_mode():
        ref = model(x, mask).numpy()  # (B, C)
    return float(np.abs(got - ref).max())


def export_onnx(
    model: Any,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    steps: int | None = None,
    check: bool = True,
    allow_torchscript: bool = True,
) -> ExportResult:
    """Export a trained model to ONNX (dynamic batch axis).

    Parameters
    ----------
    model
        A checkpoint path, a :class:`~mmfer.pipeline.Recognizer`, or a bare model.
    out
        Destination ``.onnx`` file (parent folders are created).
    opset
        ONNX opset version.
    steps
        Time steps ``T`` of the graph; default the fusion's ``steps`` (8 for a bare model).
    check
        Run the exported graph with ONNX Runtime on padded and unpadded batches of
        sizes 1 and 3 and record the largest logit difference to PyTorch.
    allow_torchscript
        If both ONNX exporters fail, write a TorchScript trace to ``out`` with a
        ``.pt`` suffix instead of raising.

    Returns
    -------
    ExportResult

    Raises
    ------
    MmferError
        Every exporter failed (and ``allow_torchscript`` is False).
    """
    net, default_steps, in_features, meta = _resolve(model)
    steps = steps or default_steps
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportableModel(net).eval()
    vr = getattr(net, "input_range", None)  # bounded inputs (raw pixels), else None
    args = example_inputs(2, steps, in_features, value_range=vr)
    errors: list[str] = []
    method = None
    for name, dynamo in (("onnx-legacy", False), ("onnx-dynamo", True)):
        try:
            _onnx_export(wrapper, args, out, opset, dynamo)
            method = name
            break
        except Exception as e:  # exporters raise many unrelated types
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            log.warning("ONNX export with %s failed: %s", name, errors[-1])
    if method is None:
        if not allow_torchscript:
            raise MmferError(f"{out}: ONNX export failed ({'; '.join(errors)})")
        pt = out.with_suffix(".pt")
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated upstream: it is the last resort here
            traced = torch.jit.trace(wrapper, args, check_trace=False)
        traced.save(str(pt))
        log.warning("wrote a TorchScript trace to %s instead (%s)", pt, "; ".join(errors))
        return ExportResult(path=pt, method="torchscript")
    _add_metadata(out, {**meta, "mmfer.steps": str(steps), "mmfer.export": method})
    diff = None
    if check:
        diffs = [
            compare_onnx(out, net, *example_inputs(b, steps, in_features, seed=s, value_range=vr))
            for s, b in enumerate((1, 3))
        ]
        full_x, _ = example_inputs(3, steps, in_features, seed=7, value_range=vr)
        diffs.append(compare_onnx(out, net, full_x, torch.ones(3, steps, dtype=torch.bool)))
        diff = max(diffs)
    return ExportResult(path=out, method=method, max_abs_diff=diff)
