"""The package's shape: no import cycles between initlab's modules (function-level imports included), the
layer rules (who may import whom), only ``plots/`` draws, few modules at the root."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from pathlib import Path

import pytest

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


@functools.cache
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


# -- the layer rules ---------------------------------------------------------------------------------------
ROOT_MODULES_AT_MOST = 9  # the faces, config and errors


FACES = ("initlab.api", "initlab.cli", "initlab.completion", "initlab.theory_cli", "initlab.export_tb")


def _in(module: str, *packages: str) -> bool:
    return module in packages or any(module.startswith(p + ".") for p in packages)


# rule name -> allowed(importer, imported): who may import whom.
LAYER_RULES: dict[str, Callable[[str, str], bool]] = {
    "probing, theory and runs never import the training stage, config or sweeps": lambda a, b: (
        not (
            _in(a, "initlab.probing", "initlab.theory", "initlab.runs")
            and _in(b, "initlab.lab", "initlab.config", "initlab.sweep")
        )
    ),
    "runs imports nothing of initlab but errors": lambda a, b: (
        not _in(a, "initlab.runs") or _in(b, "initlab.runs", "initlab.errors")
    ),
    "theory imports nothing of initlab but itself": lambda a, b: (
        not _in(a, "initlab.theory") or _in(b, "initlab.theory")
    ),
    "config imports nothing of initlab but errors": lambda a, b: (
        a != "initlab.config" or b == "initlab.errors"
    ),
    "the doctor sits above every stage: no stage imports it": lambda a, b: (
        not _in(b, "initlab.diagnosis")
        or not _in(
            a,
            "initlab.lab",
            "initlab.probing",
            "initlab.theory",
            "initlab.runs",
            "initlab.sweep",
            "initlab.config",
            "initlab.plots",
            "initlab.claims",
        )
    ),
    "lab never imports sweeps, figures, claims or the faces": lambda a, b: (
        not (
            _in(a, "initlab.lab")
            and (
                _in(b, "initlab.sweep", "initlab.plots", "initlab.claims", "initlab.__main__", *FACES)
                or b == "initlab"
            )
        )
    ),
}


def breaking(rule: Callable[[str, str], bool], graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) edge of ``graph`` that ``rule`` refuses."""
    edges = ((a, b) for a, targets in graph.items() for b in targets)
    return sorted((a, b) for a, b in edges if not rule(a, b))


@pytest.mark.parametrize("name", LAYER_RULES)
def test_layer_rule(name: str) -> None:
    assert breaking(LAYER_RULES[name], import_graph()) == []


@pytest.mark.parametrize(
    ("name", "edge"),
    [
        (
            "probing, theory and runs never import the training stage, config or sweeps",
            ("initlab.runs.x", "initlab.lab.train"),
        ),
        ("runs imports nothing of initlab but errors", ("initlab.runs.run", "initlab.config")),
        ("theory imports nothing of initlab but itself", ("initlab.theory.predict", "initlab.runs.write")),
        ("config imports nothing of initlab but errors", ("initlab.config", "initlab.sweep.objective")),
        ("lab never imports sweeps, figures, claims or the faces", ("initlab.lab.train", "initlab.cli")),
    ],
)
def test_each_rule_refuses_a_planted_import(name: str, edge: tuple[str, str]) -> None:
    graph: dict[str, set[str]] = {}
    for a, b in (edge, ("initlab.lab.train", "initlab.runs.write")):  # the second: every rule lets it through
        graph.setdefault(a, set()).add(b)
    assert breaking(LAYER_RULES[name], graph) == [edge]


def test_only_plots_imports_matplotlib() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if module_name(path).startswith("initlab.plots"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [(module_name(path), n) for n in names if n.split(".")[0] == "matplotlib"]
    assert found == []


def test_the_training_stage_does_not_load_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, initlab.lab.train, initlab.probing.loop; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_few_modules_at_the_root() -> None:
    root = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_MODULES_AT_MOST, root


# -- docs/development.md -----------------------------------------------------------------------------------
DEVELOPMENT = PACKAGE.parent / "docs" / "development.md"


def named_paths(text: str) -> set[str]:
    """Every `path` in backticks naming a file or directory of the repository (initlab/, conf/, tests/)."""
    return {p for p in re.findall(r"`([\w./-]+)`", text) if p.split("/")[0] in ("initlab", "conf", "tests")}


def test_every_path_the_developer_docs_name_exists() -> None:
    named = named_paths(DEVELOPMENT.read_text())
    assert len(named) > 50  # the layout lists every module
    assert sorted(p for p in named if not (PACKAGE.parent / p).exists()) == []


def test_the_developer_docs_name_every_module() -> None:
    """The layout lists the tree: a new module gets its line in docs/development.md (a package's
    ``__init__.py`` is named by its directory, ``initlab/lab/``)."""
    named = named_paths(DEVELOPMENT.read_text())
    modules = {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")}
    missing = [
        m for m in modules - named if not (m.endswith("/__init__.py") and m[: -len("__init__.py")] in named)
    ]
    assert sorted(missing) == []


def test_named_paths_finds_what_is_in_backticks() -> None:
    text = "see `initlab/lab/train.py`, `conf/init/` and `pytest`, not initlab/cli.py"
    assert named_paths(text) == {"initlab/lab/train.py", "conf/init/"}
