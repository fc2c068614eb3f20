"""The package layout of STYLE.md, checked on the source with ``ast`` (nothing is imported):

- arrows point down: the library (``shapelatent`` outside ``shapelatent.cli``) imports neither ``viewers`` nor the
  CLI, and ``viewers`` does not import the CLI;
- no import cycles among the modules of ``shapelatent`` and ``viewers``: none at module level, and none even when
  imports inside functions count (no two modules import each other);
- no module is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shapelatent", "viewers")
MAX_LINES = 500


class Edge(NamedTuple):
    source: str  # importing module
    target: str  # imported module (the deepest module of ours that the import names)
    line: int
    top: bool  # runs at import time (not inside a function)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _edges(files: dict[str, Path]) -> list[Edge]:
    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges: list[Edge] = []
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]

        def visit(node: ast.AST, top: bool, mod: str = mod, package: str = package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    visit(child, False)
                    continue
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue  # never runs
                names: list[str] = []
                line = getattr(child, "lineno", 0)
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        pkg = package
                        for _ in range(child.level - 1):
                            pkg = pkg.rpartition(".")[0]
                        base = f"{pkg}.{base}" if base else pkg
                    names = [f"{base}.{a.name}" for a in child.names]  # `from pkg import module` names the module
                for name in names:
                    target = resolve(name) if name.split(".")[0] in PACKAGES else None
                    if target is not None and target != mod:
                        edges.append(Edge(mod, target, line, top))
                visit(child, top)

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return sorted(set(edges))  # one edge per import statement, however many names it takes


def _cycles(edges: list[Edge], modules: list[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _describe(cycles: list[list[str]], edges: list[Edge], files: dict[str, Path]) -> str:
    lines = []
    for cycle in cycles:
        inside = [e for e in edges if e.source in cycle and e.target in cycle]
        lines.append(" <-> ".join(cycle))
        lines += [f"    {files[e.source].relative_to(ROOT)}:{e.line} imports {e.target}" for e in inside]
    return "\n".join(lines)


def _is_cli(module: str) -> bool:
    return module == "shapelatent.cli" or module.startswith("shapelatent.cli.")


def _is_viewers(module: str) -> bool:
    return module == "viewers" or module.startswith("viewers.")


def test_the_graph_sees_the_packages() -> None:
    files = _files()
    edges = _edges(files)
    assert {"shapelatent.cli.main", "shapelatent.latent.runs", "viewers.render"} <= set(files)
    assert any(e.source == "shapelatent.cli.main" and e.target.startswith("shapelatent.cli.") for e in edges)


def test_cycles_are_found() -> None:
    edges = [Edge("a", "b", 1, True), Edge("b", "c", 1, False), Edge("c", "a", 1, True), Edge("c", "d", 2, True)]
    assert _cycles(edges, ["a", "b", "c", "d"]) == [["a", "b", "c"]]
    assert _cycles([e for e in edges if e.top], ["a", "b", "c", "d"]) == []


def test_no_import_cycles_at_module_level() -> None:
    files = _files()
    edges = [e for e in _edges(files) if e.top]
    cycles = _cycles(edges, list(files))
    assert not cycles, "modules importing each other at import time:\n" + _describe(cycles, edges, files)


def test_no_import_cycles_even_inside_functions() -> None:
    files = _files()
    edges = _edges(files)
    cycles = _cycles(edges, list(files))
    assert not cycles, "modules importing each other (imports in functions included):\n" + _describe(
        cycles, edges, files
    )


def test_the_library_imports_neither_viewers_nor_the_cli() -> None:
    files = _files()
    bad = [
        f"{files[e.source].relative_to(ROOT)}:{e.line} imports {e.target}"
        for e in _edges(files)
        if e.source.startswith("shapelatent") and not _is_cli(e.source) and (_is_cli(e.target) or _is_viewers(e.target))
    ]
    assert not bad, "the library must not import viewers/ or the CLI:\n" + "\n".join(bad)


def test_viewers_do_not_import_the_cli() -> None:
    files = _files()
    bad = [
        f"{files[e.source].relative_to(ROOT)}:{e.line} imports {e.target}"
        for e in _edges(files)
        if _is_viewers(e.source) and _is_cli(e.target)
    ]
    assert not bad, "viewers/ must not import the CLI (shapelatent.cli):\n" + "\n".join(bad)


def test_no_module_over_500_lines() -> None:
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in _files().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines (split along a real seam): {too_long}"
