"""The package layout: no import circles in the reorganised packages, the demo outside the core."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _import_graph() -> dict[str, set[str]]:
    """Module -> mmfer modules it imports, read from the source (lazy imports included,
    ``if TYPE_CHECKING:`` blocks excluded); a submodule's import of its own package is no edge."""
    mods = {}
    for p in (SRC / "mmfer").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        skip: set[int] = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for n in ast.walk(node)}
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for t in targets:
                r = resolve(t)
                if r and r != m and not m.startswith(r + "."):
                    graph[m].add(r)
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


@pytest.mark.parametrize(
    "package", ["mmfer.evaluation", "mmfer.training", "mmfer.data", "mmfer.demo", "mmfer.features"]
)
def test_no_import_circle(package: str) -> None:
    graph = _import_graph()
    inside = [m for m in graph if m == package or m.startswith(package + ".")]
    assert len(inside) > 1
    circles = [(a, b) for a in inside for b in graph[a] if b in inside and _reaches(graph, b, a)]
    assert circles == []


def test_core_never_imports_the_demo() -> None:
    graph = _import_graph()
    assert "mmfer.demo.corpus" in graph
    core = [m for m in graph if m.startswith(("mmfer.data", "mmfer.features", "mmfer.evaluation"))]
    assert [m for m in core if any(d.startswith("mmfer.demo") for d in graph[m])] == []


def test_the_detector_sees_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The check above is only worth something if it can fail: a planted circle is found.
    pkg = tmp_path / "mmfer" / "planted"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from mmfer.planted import b\n")
    (pkg / "b.py").write_text("from mmfer.planted.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    graph = _import_graph()
    assert _reaches(graph, "mmfer.planted.a", "mmfer.planted.b")
    assert _reaches(graph, "mmfer.planted.b", "mmfer.planted.a")
