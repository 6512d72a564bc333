"""Start-up cost of inference: what `mmfer predict` imports before its first clip (issue 22).

Compares this checkout's ``src`` with a reference checkout (e.g. an older commit made with
``git worktree add /tmp/ref <commit>``) in the same run, alternating, so that machine load
hits both alike::

    python bench/bench_startup.py --ref /tmp/ref/src [--repeats 3]

Per repeat and tree it prints (a) the sum of ``python -X importtime`` self times for
``import mmfer; mmfer.load()`` (the shipped model), (b) which heavy stacks that loaded
(sklearn.metrics, scipy.stats, matplotlib, mmfer.evaluation), (c) the wall time of
``mmfer predict --about`` and (d) the top-level imports by cumulative time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("sklearn.metrics", "scipy.stats", "matplotlib", "mmfer.evaluation", "torch")
HERE = Path(__file__).resolve().parents[1] / "src"


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def import_profile(src: Path) -> tuple[float, list[str], list[tuple[float, str]]]:
    """Seconds of imports for ``mmfer.load()``, heavy stacks loaded, top-level modules by cumulative s."""
    code = (
        "import sys, mmfer; mmfer.load(); "
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=_env(src), capture_output=True, text=True
    ).stderr
    total, top, heavy = 0, [], []
    for line in err.splitlines():
        if line.startswith("HEAVY="):
            heavy = [m for m in line[6:].split(",") if m]
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:") :].split("|")
        total += int(self_us)
        if not name.startswith("  "):  # imported directly by the command
            top.append((int(cum_us) / 1e6, name.strip()))
    return total / 1e6, heavy, sorted(top, reverse=True)[:4]


def about_wall(src: Path) -> float:
    """Wall seconds of ``mmfer predict --about`` (process start to exit)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "mmfer.cli", "predict", "--about"]
    subprocess.run(cmd, env=_env(src), capture_output=True, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, required=True, help="src folder of the reference checkout")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    trees = {"reference": args.ref.resolve(), "this checkout": HERE}
    results: dict[str, dict[str, list[float]]] = {k: {"imports": [], "about": []} for k in trees}
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for i in range(args.repeats):
        for name, src in trees.items():
            imp, heavy, top = import_profile(src)
            about = about_wall(src)
            results[name]["imports"].append(imp)
            results[name]["about"].append(about)
            tops = ", ".join(f"{n} {s:.2f}" for s, n in top)
            print(f"[{i + 1}] {name}: imports {imp:.2f} s, --about {about:.2f} s wall, heavy {heavy}")
            print(f"      top-level imports (cumulative s): {tops}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for name, r in results.items():
        print(
            f"{name}: imports median {statistics.median(r['imports']):.2f} s, "
            f"--about median {statistics.median(r['about']):.2f} s over {args.repeats} repeats"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
