"""The shape of the house, checked from the source itself (issue 18).

- no import circle between the modules of ``src/mmfer`` (function-level imports count:
  they run too; only ``if TYPE_CHECKING:`` imports, which never run, are left out);
- no module over 600 lines and no function over 80 lines, but for the exceptions named
  below with their reason.

An edge ``a -> b`` means module ``a`` executes ``import b`` or ``from b import name``; for
``from pkg import name`` where ``pkg.name`` is itself a module, the edge goes to that
module. Parent packages are not implied: ``import mmfer.x.y`` runs ``mmfer/x/__init__``
too, but counting that would make every re-exporting ``__init__`` a circle by definition.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mmfer"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# name -> reason. Keep this short; every entry is a debt with a reason.
MODULE_EXCEPTIONS: dict[str, str] = {}
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (those under ``if TYPE_CHECKING:`` cannot)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``mmfer`` modules it imports (see the module docstring)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve_from(name, is_package, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports(tmp_path: Path) -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import mmfer.never\n"
        "def f():\n    import mmfer.late\n"
    )
    names = [n.names[0].name for n in _imports(tree)]
    assert "mmfer.late" in names and "mmfer.never" not in names


def test_no_import_circle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles in src/mmfer:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _long_functions() -> list[tuple[str, int]]:
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append((f"{name}:{node.name}", length))
    return offenders


@pytest.mark.parametrize("kind", ["module", "function"])
def test_size_limits(kind: str) -> None:
    if kind == "module":
        sizes = [(n, p.read_text().count("\n")) for n, p in _modules().items()]
        offenders = [(n, s) for n, s in sizes if s > MAX_MODULE_LINES and n not in MODULE_EXCEPTIONS]
        limit = MAX_MODULE_LINES
    else:
        offenders = [(n, s) for n, s in _long_functions() if n not in FUNCTION_EXCEPTIONS]
        limit = MAX_FUNCTION_LINES
    assert not offenders, f"{kind}s over {limit} lines:\n" + "\n".join(f"{n}: {s}" for n, s in offenders)


def test_exceptions_are_still_needed() -> None:
    """An exception whose module/function shrank (or vanished) must be removed from the list."""
    modules = _modules()
    for name in MODULE_EXCEPTIONS:
        assert name in modules and modules[name].read_text().count("\n") > MAX_MODULE_LINES, name
    long_names = {n for n, _ in _long_functions()}
    for name in FUNCTION_EXCEPTIONS:
        assert name in long_names, name
