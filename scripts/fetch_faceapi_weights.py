#!/usr/bin/env python3
"""Install face-api's expression weights (install time only; mmfer never downloads at run time).

``npm pack @vladmandic/face-api@1.7.15`` into a temporary folder, check the tarball
against the pinned sha512 (the npm registry's ``dist.integrity``) and sha1
(``dist.shasum``), then extract only ``package/model/face_expression_model.bin`` and its
weights manifest, check their sha256, and move them into the weights folder:
``$MMFER_FACEAPI_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/mmfer/weights/faceapi-1.7.15``
(the folder ``mmfer.features.face.faceapi`` reads). Run by ``make env``.

Exit status: 0 when the files are installed (or were already, with the pinned hashes),
also 0 with a warning when ``npm`` is not on PATH (mmfer then falls back to the FER2013
head); 1 on any other failure (npm pack failed, a hash differs, a file is missing).

Usage: ``python scripts/fetch_faceapi_weights.py [--dest DIR] [--tarball FILE.tgz] [--force]``
(``--tarball`` uses an already downloaded tarball, checked the same way).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
#: ``npm view @vladmandic/face-api@1.7.15 dist.integrity`` / ``dist.shasum``, recorded 2026-12-03.
TARBALL_SHA512 = (
    "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
)
TARBALL_SHA1 = "10cddf5c405f6f52f37605c9ee28c91ac6a23ead"
#: sha256 of the two files taken from the tarball (and checked again when already installed).
FILES = {
    "face_expression_model.bin": "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
    "face_expression_model-weights_manifest.json": (
        "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8"
    ),
}


def default_dest() -> Path:
    """``$MMFER_FACEAPI_DIR`` or the per-user cache folder (same rule as ``faceapi_weights_dir``)."""
    env = os.environ.get("MMFER_FACEAPI_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "mmfer" / "weights" / f"faceapi-{VERSION}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(dest: Path) -> bool:
    """Both files present with the pinned sha256."""
    return all((dest / n).is_file() and sha256(dest / n) == h for n, h in FILES.items())


def check_tarball(tgz: Path) -> None:
    """Raise SystemExit unless ``tgz`` has the pinned sha512 and sha1."""
    data = tgz.read_bytes()
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    sha1 = hashlib.sha1(data).hexdigest()
    if sri != TARBALL_SHA512 or sha1 != TARBALL_SHA1:
        raise SystemExit(
            f"error: {tgz.name}: integrity mismatch (got {sri}, sha1 {sha1}; pinned {TARBALL_SHA512}, "
            f"sha1 {TARBALL_SHA1}): not installing"
        )


def npm_pack(tmp: Path) -> Path:
    """``npm pack PACKAGE@VERSION`` into ``tmp``; returns the tarball."""
    cmd = ["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(tmp), "--silent"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    tgz = sorted(tmp.glob("*.tgz"))
    if len(tgz) != 1:
        raise SystemExit(f"error: npm pack left {len(tgz)} tarballs in {tmp}")
    return tgz[0]


def extract(tgz: Path, dest: Path) -> None:
    """Copy the two model files out of ``tgz`` (regular members only), check them, move them to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".faceapi-", dir=dest))
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for name, want in FILES.items():
                member = tar.getmember(f"package/model/{name}")
                src = tar.extractfile(member) if member.isfile() else None
                if src is None:
                    raise SystemExit(f"error: {tgz.name}: package/model/{name} is not a regular file")
                (stage / name).write_bytes(src.read())
                if sha256(stage / name) != want:
                    raise SystemExit(f"error: {name}: sha256 {sha256(stage / name)} != pinned {want}")
        for name in FILES:
            os.replace(stage / name, dest / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=None, help="weights folder (default: see above)")
    ap.add_argument("--tarball", type=Path, default=None, help="use this face-api-1.7.15.tgz instead of npm")
    ap.add_argument("--force", action="store_true", help="reinstall even if the files are already there")
    args = ap.parse_args()
    dest = args.dest or default_dest()
    if not args.force and installed(dest):
        print(f"face-api {VERSION} expression weights already in {dest}")
        return 0
    if args.tarball is None and shutil.which("npm") is None:
        print(
            f"warning: npm not found: face-api {VERSION} expression weights not installed in {dest}; "
            "mmfer will use the FER2013 expression head instead (install npm, then rerun "
            "python scripts/fetch_faceapi_weights.py)",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="mmfer-faceapi-") as tmp:
        tgz = args.tarball or npm_pack(Path(tmp))
        check_tarball(tgz)
        extract(tgz, dest)
    print(f"face-api {VERSION} expression weights installed in {dest} (tarball sha512 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
