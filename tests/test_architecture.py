"""The house rules the layers contract cannot see: no import circle, few hidden imports, short functions.

``lint-imports`` (``make lint``) checks that each layer imports only the layers
below it; these tests scan every import statement, module- and function-level,
of the project's own packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runs", "reviews", "plannerweb")
MAX_FUNCTION_LINES = 80
MAX_LOCAL_IMPORTS = 4


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    local: bool  # inside a function
    explained: bool  # a comment on its line or the line above says why


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every project module by dotted name (migrations excluded)."""
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _targets(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> Iterator[str]:
    """The dotted names an import statement names: a module, or a name inside one."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        yield f"{base}.{alias.name}"


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """The project modules ``module`` imports, each resolved to the deepest known module."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    local_nodes = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(fn)
    }
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        explained = "#" in lines[node.lineno - 1] or above.startswith("#")
        seen = set()
        for target in _targets(node, module, path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and target not in seen:
                seen.add(target)
                found.append(
                    Import(module, target, node.lineno, id(node) in local_nodes, explained)
                )
    return found


def import_graph(root: Path = ROOT) -> list[Import]:
    files = module_files(root)
    return [imp for name, path in files.items() for imp in imports_of(name, path, set(files))]


def circles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circle_among_project_modules_counting_imports_inside_functions() -> None:
    assert circles(import_graph()) == []


def test_function_local_imports_of_project_modules_are_few_and_each_says_why() -> None:
    local = [imp for imp in import_graph() if imp.local]
    statements = {(imp.source, imp.line) for imp in local}
    unexplained = sorted({(imp.source, imp.line) for imp in local if not imp.explained})
    assert len(statements) <= MAX_LOCAL_IMPORTS, sorted(statements)
    assert unexplained == []


def long_functions(root: Path = ROOT) -> list[tuple[str, str, int]]:
    found = []
    for package in ("runs", "reviews"):
        for path in (root / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append((str(path.relative_to(root)), node.name, length))
    return found


def test_no_function_in_the_apps_is_longer_than_80_lines() -> None:
    assert long_functions() == []


# The scanner itself, on a small tree of its own: it must see what it claims to see.
@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    (tmp_path / "reviews").mkdir()
    (tmp_path / "plannerweb").mkdir()
    for package in PACKAGES:
        (tmp_path / package / "__init__.py").write_text("")
    return tmp_path


def test_a_circle_hidden_in_a_function_is_found(tree: Path) -> None:
    (tree / "runs" / "a.py").write_text("from runs.b import x\n")
    (tree / "runs" / "b.py").write_text("def f():\n    from runs import a\n    return a\nx = 1\n")
    assert circles(import_graph(tree)) == [["runs.a", "runs.b"]]
    [hidden] = [imp for imp in import_graph(tree) if imp.local]
    assert (hidden.source, hidden.target, hidden.explained) == ("runs.b", "runs.a", False)


def test_a_relative_import_and_a_comment_above_are_understood(tree: Path) -> None:
    (tree / "reviews" / "c.py").write_text("y = 2\n")
    (tree / "reviews" / "d.py").write_text(
        "def f():\n    # why: app loading\n    from .c import y\n"
    )
    [edge] = import_graph(tree)
    assert (edge.source, edge.target, edge.local, edge.explained) == (
        "reviews.d",
        "reviews.c",
        True,
        True,
    )
    assert circles(import_graph(tree)) == []


def test_a_long_function_is_reported(tree: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tree / "runs" / "e.py").write_text(f"def long():\n{body}")
    assert long_functions(tree) == [("runs/e.py", "long", MAX_FUNCTION_LINES + 1)]
