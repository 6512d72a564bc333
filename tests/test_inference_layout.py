"""Layout of the inference wing (issue 18): no import circle, small modules and functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INFERENCE = Path(__file__).resolve().parents[1] / "src" / "mmfer" / "inference"
WEB = INFERENCE.parent / "web"


def _imports(path: Path) -> set[str]:
    """``mmfer.inference.*`` modules a file imports, lazy imports included, ``TYPE_CHECKING`` excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmfer.inference."):
            out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("mmfer.inference.")}
    return out


def test_no_import_circle_in_the_inference_wing() -> None:
    graph = {p.stem: _imports(p) for p in INFERENCE.glob("*.py") if p.stem != "__init__"}
    assert "compose" not in graph["predictor"] and "predictor" in graph["compose"]

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ())
        )

    circles = [m for m in graph if reaches(m, m)]
    assert not circles, {m: graph[m] for m in circles}


@pytest.mark.parametrize("path", sorted(INFERENCE.glob("*.py")), ids=lambda p: p.name)
def test_modules_under_600_lines_and_functions_under_80(path: Path) -> None:
    if path.name == "default.py":  # another engineer's file
        return
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 600
    long = [
        (node.name, node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80  # type: ignore[operator]
    ]
    assert not long


def test_dumps_info_is_gone() -> None:
    import mmfer.inference.compose as compose

    assert not hasattr(compose, "dumps_info")
