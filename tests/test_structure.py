"""The package's shape: no import cycles between initlab's modules (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import initlab

PACKAGE = Path(initlab.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """initlab modules that ``path`` imports anywhere in its body (``from a import b``: a.b if a module)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]).strip(".")
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None; depth-first search with three colours."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "initlab.runs" in graph["initlab.plots.command"]
    assert "initlab.config" in graph["initlab.lab.train"]
    assert len(graph) > 20


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_check_does_not_need_matplotlib() -> None:
    graph = import_graph()
    seen, todo = set(), ["initlab.claims"]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph[node]
    assert not any(m.startswith("initlab.plots") for m in seen), sorted(seen)


def test_every_subpackage_is_shipped_in_the_wheel() -> None:
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    shipped = set(pyproject["tool"]["setuptools"]["packages"])
    found = {module_name(init) for init in PACKAGE.rglob("__init__.py")}
    assert found <= shipped, sorted(found - shipped)
