"""Provenance of finished runs: which code and which features produced each number.

A report is assembled from cross-validation runs kept in ``<output_dir>/runs_done/``.
Each finished run records

* the **code version** (:func:`code_version`): the package version plus a digest of the
  *contents* of the source files that compute features, fusion, estimators, models,
  training, splits and fold metrics (:data:`CODE_PATTERNS`, globbed, so a file moving between
  subfolders needs no change here), and
* the **feature digest** (:func:`feature_digest`): an order-independent digest of the
  feature-cache keys of the samples it used (extractor config + input content).

Both are part of the run's key, so a run of other code or other features is never read
back by accident. ``eval.reuse`` decides what a report may take from ``runs_done/``:
``same`` (default: only runs of this code version; others, and old files that record no
version, are computed again), ``any`` (also runs of other code versions, with a warning
naming them) or ``none`` (compute everything again). :class:`RunLedger` collects what a
report computed and reused; :func:`write_provenance` writes it beside the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmfer.io import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

    from mmfer.config import FeatureConfig

log = logging.getLogger(__name__)

#: Source files (relative to the package folder) whose contents make the code version.
CODE_PATTERNS: tuple[str, ...] = (
    "features/**/*.py",
    "fusion/**/*.py",
    "estimators/**/*.py",
    "models/**/*.py",
    "training/**/*.py",
    "data/splits.py",
    "data/balance.py",
    "closedset.py",
    "frame_lists.py",  # how a multi-image sample's frames are read from its table cell
    # nested selection and the training rows of every fit: fuser settings searched, epochs
    # chosen from inner curves, augmented copies
    "tuning.py",
    "epoch_selection.py",
    "augmented_rows.py",
    "pipeline.py",
    "recognizer.py",
    # the fold metrics are part of every finished run
    "evaluation/metrics.py",
)
#: The package folder hashed by default (tests point it at a copy).
PACKAGE_ROOT: Path = Path(__file__).resolve().parent
#: Code version of a finished run written before runs recorded one.
UNKNOWN_VERSION = "unknown version"

ReusePolicy = Literal["same", "any", "none"]


# --------------------------------------------------------------------------- code version


def code_files(root: str | Path | None = None, patterns: tuple[str, ...] = CODE_PATTERNS) -> list[Path]:
    """The source files that make the code version, sorted by relative path.

    Parameters
    ----------
    root
        Package folder (default :data:`PACKAGE_ROOT`).
    patterns
        Glob patterns relative to ``root`` (``**`` recurses); ``__pycache__`` is skipped.

    Returns
    -------
    list[pathlib.Path]
        Absolute paths, each once, sorted by their POSIX path relative to ``root``.
    """
    base = Path(root) if root is not None else PACKAGE_ROOT
    found = {
        p
        for pattern in patterns
        for p in base.glob(pattern)
        if p.is_file() and "__pycache__" not in p.relative_to(base).parts
    }
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


def source_digest(root: str | Path | None = None, patterns: tuple[str, ...] = CODE_PATTERNS) -> str:
    """SHA-256 (hex) of the relative paths and bytes of :func:`code_files`.

    Each file contributes ``path NUL length NUL bytes``, so moving, renaming, adding
    or editing a file changes the digest; timestamps and ``.pyc`` files do not.
    """
    base = Path(root) if root is not None else PACKAGE_ROOT
    h = hashlib.sha256(b"mmfer-code\0")
    for p in code_files(base, patterns):
        data = p.read_bytes()
        h.update(p.relative_to(base).as_posix().encode("utf-8") + b"\0")
        h.update(str(len(data)).encode("ascii") + b"\0")
        h.update(data)
    return h.hexdigest()


def code_version(root: str | Path | None = None) -> str:
    """``<package version>+<first 12 hex digits of source_digest>``, e.g. ``0.1.0+3f2a9c01d4e5``."""
    from mmfer import __version__

    return f"{__version__}+{source_digest(root)[:12]}"


def code_tag(version: str) -> str:
    """The code version made safe for a file name (``0.1.0+3f2a9c01d4e5`` is kept as it is)."""
    return re.sub(r"[^0-9A-Za-z.+-]", "-", version)


# --------------------------------------------------------------------------- feature digest


def feature_digest(
    table: pd.DataFrame,
    features: FeatureConfig,
    cache_dir: str | Path,
    modalities: list[str] | tuple[str, ...],
) -> str:
    """Order-independent SHA-256 of the feature-cache keys of a table's samples.

    Each (sample, modality) unit contributes ``id TAB modality TAB cache key``; a unit
    whose input cannot be read contributes ``unreadable: <problem>`` instead. The lines
    are sorted before hashing, so the row order of the table does not matter. A cache
    key covers the extractor config and the input file's content
    (:class:`mmfer.features.cache.FeatureCache`).

    Parameters
    ----------
    table
        Sample table (``id`` and the source columns).
    features
        Feature config the run's features were extracted with.
    cache_dir
        The feature cache folder (only used to build keys; nothing is read from it).
    modalities
        The run's modalities.

    Returns
    -------
    str
        64 hex digits.
    """
    from mmfer.features.cache import FeatureCache
    from mmfer.features.extract import keyed_units
    from mmfer.features.extractors import extractors_for
    from mmfer.features.units import plan_units

    units = plan_units(table, tuple(modalities), asr=features.text.asr)
    ex = extractors_for(features, limit_threads=False)  # memoised: built once per process
    lines = []
    for unit, err in keyed_units(units, FeatureCache(cache_dir), ex):
        token = unit.key if err is None else f"unreadable: {err.problem}"
        lines.append(f"{unit.sample_id}\t{unit.modality}\t{token}")
    h = hashlib.sha256(b"mmfer-features\0")
    for line in sorted(lines):
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- finished runs


@dataclass(frozen=True)
class RunFiles:
    """Where one run (same settings, samples and features) may be kept in ``runs_done/``.

    Attributes
    ----------
    current
        The file of this code version.
    pattern_dir, pattern
        Folder and glob matching the files of every code version of this run.
    legacy
        The file an older mmfer wrote for the same settings (no code version, no
        feature digest recorded).
    """

    current: Path
    pattern_dir: Path
    pattern: str
    legacy: Path

    def other_versions(self) -> list[Path]:
        """Files of this run from other code versions, newest first."""
        paths = [p for p in self.pattern_dir.glob(self.pattern) if p != self.current and p.is_file()]
        return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def recorded_version(data: dict[str, Any]) -> str:
    """The code version a finished-run file records (:data:`UNKNOWN_VERSION` if none)."""
    prov = data.get("provenance")
    if isinstance(prov, dict) and isinstance(prov.get("code_version"), str):
        return str(prov["code_version"])
    return UNKNOWN_VERSION


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable finished run (%s); not reused", path, e)
        return None
    return data if isinstance(data, dict) else None


def candidates(files: RunFiles, code: str, reuse: ReusePolicy) -> list[tuple[Path, dict[str, Any]]]:
    """Finished-run files a report may read back under ``reuse``, best first.

    ``same``: the current version's file, if it records this code version. ``any``: that,
    then other code versions (newest first), then a legacy file. ``none``: nothing.
    """
    if reuse == "none":
        return []
    paths = [files.current]
    if reuse == "any":
        paths += [*files.other_versions(), files.legacy]
    out = []
    for p in paths:
        if not p.is_file():
            continue
        data = _read(p)
        if data is None:
            continue
        if reuse == "same" and recorded_version(data) != code:
            continue
        out.append((p, data))
    return out


def versions_present(files: RunFiles) -> list[str]:
    """Code versions of every kept file of this run (legacy files: :data:`UNKNOWN_VERSION`)."""
    found = []
    for p in [files.current, *files.other_versions(), files.legacy]:
        if p.is_file():
            data = _read(p)
            found.append(recorded_version(data) if data is not None else UNKNOWN_VERSION)
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- ledger


@dataclass
class RunRecord:
    """One run of a report: computed now or read back, and from which code version."""

    model: str
    modalities: list[str]
    protocol: str
    status: Literal["computed", "reused"]
    code_version: str
    feature_digest: str
    file: str
    #: Wall seconds the cross-validation took when it was computed (``None``: not recorded).
    seconds: float | None = None
    #: Code versions of kept files of this run that were not used (``eval.reuse=same``).
    other_versions: list[str] = field(default_factory=list)


@dataclass
class RunLedger:
    """What one report computed and reused (see :func:`write_provenance`)."""

    code_version: str
    reuse: ReusePolicy = "same"
    records: list[RunRecord] = field(default_factory=list)

    def add(self, record: RunRecord) -> None:
        """Record one run; log a warning when it comes from another code version."""
        self.records.append(record)
        if record.status == "reused" and record.code_version != self.code_version:
            log.warning(
                "reusing %s on %s (%s) computed by code version %s, not the current %s (eval.reuse=%s)",
                record.model,
                "+".join(record.modalities),
                record.protocol,
                record.code_version,
                self.code_version,
                self.reuse,
            )

    @property
    def computed(self) -> int:
        """Number of runs computed by this report."""
        return sum(r.status == "computed" for r in self.records)

    @property
    def reused(self) -> int:
        """Number of runs read back from ``runs_done/``."""
        return sum(r.status == "reused" for r in self.records)

    def reused_from(self) -> dict[str, int]:
        """Code version -> number of reused runs it produced."""
        return dict(Counter(r.code_version for r in self.records if r.status == "reused"))

    def foreign(self) -> dict[str, int]:
        """Like :meth:`reused_from`, for code versions other than the current one only."""
        return {v: n for v, n in self.reused_from().items() if v != self.code_version}

    def seconds(self, status: str) -> float:
        """Recorded cross-validation wall seconds of the runs with ``status`` (unrecorded count 0)."""
        return float(sum(r.seconds or 0.0 for r in self.records if r.status == status))

    def summary(self) -> str:
        """One paragraph: code version, runs computed vs reused and where reused runs came from."""
        text = (
            f"code version {self.code_version}: {self.computed} run(s) computed, "
            f"{self.reused} reused (eval.reuse={self.reuse}); cross-validation time "
            f"{self.seconds('computed'):.0f} s now"
        )
        if self.reused:
            text += f", {self.seconds('reused'):.0f} s when the reused runs were made"
            text += "; reused runs by code version: " + ", ".join(
                f"{v} x{n}" + (" (current)" if v == self.code_version else "")
                for v, n in self.reused_from().items()
            )
        foreign = self.foreign()
        if foreign:
            text += f". WARNING: this report mixes runs of {len(foreign) + 1} code versions"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content of ``provenance.json``."""
        from mmfer import __version__

        return {
            "code_version": self.code_version,
            "package_version": __version__,
            "hashed_sources": list(CODE_PATTERNS),
            "reuse": self.reuse,
            "computed": self.computed,
            "reused": self.reused,
            "reused_from": self.reused_from(),
            "mixed_code_versions": bool(self.foreign()),
            "seconds_computed": self.seconds("computed"),
            "seconds_reused_runs": self.seconds("reused"),
            "runs": [asdict(r) for r in self.records],
        }


def _markdown(ledger: RunLedger) -> str:
    lines = [
        "# Provenance of this report",
        "",
        f"- code version: `{ledger.code_version}` (package version + SHA-256 of the contents of "
        f"{', '.join(f'`{p}`' for p in CODE_PATTERNS)})",
        f"- runs: {ledger.computed} computed by this report, {ledger.reused} reused from `runs_done/` "
        f"(`eval.reuse={ledger.reuse}`)",
        f"- cross-validation wall time: {ledger.seconds('computed'):.1f} s by this report; the reused runs "
        f"had taken {ledger.seconds('reused'):.1f} s when they were computed (where recorded)",
    ]
    for v, n in ledger.reused_from().items():
        tag = "the current version" if v == ledger.code_version else "**another code version**"
        lines.append(f"- reused from `{v}` ({tag}): {n}")
    if ledger.foreign():
        lines.append("- **WARNING: the tables mix runs of different code versions.**")
    stale = Counter(v for r in ledger.records if r.status == "computed" for v in r.other_versions)
    for v, n in stale.items():
        lines.append(
            f"- computed again: {n} run(s) whose kept results are from another code version, `{v}` "
            f"(not used under `eval.reuse={ledger.reuse}`)"
        )
    lines += [
        "",
        "| model | modalities | protocol | status | code version | features | compute s | file "
        "| kept runs of other versions (not used) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ledger.records:
        secs = "—" if r.seconds is None else f"{r.seconds:.1f}"
        lines.append(
            f"| {r.model} | {'+'.join(r.modalities)} | {r.protocol} | {r.status} | `{r.code_version}` "
            f"| `{r.feature_digest[:12]}` | {secs} | `{Path(r.file).name}` "
            f"| {', '.join(f'`{v}`' for v in r.other_versions) or '—'} |"
        )
    return "\n".join(lines) + "\n"


def write_provenance(ledger: RunLedger, out_dir: str | Path) -> dict[str, Path]:
    """Write ``provenance.md`` and ``provenance.json`` into ``out_dir`` (created if missing).

    Returns
    -------
    dict[str, pathlib.Path]
        ``{"provenance.md": ..., "provenance.json": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_text(out / "provenance.md", _markdown(ledger))
    js = atomic_write_text(out / "provenance.json", json.dumps(ledger.to_dict(), indent=2, default=str))
    return {"provenance.md": md, "provenance.json": js}


def report_provenance(ledger: RunLedger, out_dir: str | Path) -> dict[str, Path]:
    """Print and log :meth:`RunLedger.summary`, then :func:`write_provenance` into ``out_dir``.

    Logged as a warning when the report mixes runs of several code versions.
    """
    text = ledger.summary()
    log.log(logging.WARNING if ledger.foreign() else logging.INFO, "provenance: %s", text)
    print(f"provenance: {text}")
    return write_provenance(ledger, out_dir)
