"""Imports run one way between lmd's rooms, with no circle.

Every module is parsed (imports inside functions and under TYPE_CHECKING count too: a lazy
import is still a dependency). Nodes are lmd's subpackages and top-level modules
(`lmd.controller`, `lmd.cli`, `lmd.api`, `lmd.models`, ...; a package's modules are one node).
`lmd.layouts` <- `lmd.prompts` <- `lmd.conversation` <- the rest of lmd, and no circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "lmd": ROOT / "lmd",
    "lmd.layouts": ROOT / "layouts",
    "lmd.prompts": ROOT / "prompts",
    "lmd.conversation": ROOT / "conversation",
}
LAYERS = ["lmd.layouts", "lmd.prompts", "lmd.conversation"]
"""The lower rooms, lowest first: each may import only those before it."""


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def node(module: str) -> str | None:
    """The room `module` belongs to: `lmd.cli.render` -> `lmd.cli`; None outside lmd."""
    parts = module.split(".")
    if parts[0] != "lmd":
        return None
    if len(parts) == 1:
        return "lmd"
    return ".".join(parts[:2])


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every lmd module `name` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for stmt in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(stmt, ast.Import):
            out |= {alias.name for alias in stmt.names}
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                base = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                source = ".".join([*base, *([stmt.module] if stmt.module else [])])
            else:
                source = stmt.module or ""
            # `from lmd import models` imports the module lmd.models (and the package `lmd`
            # only for names that are not modules: `from lmd import __version__`)
            submodules = {f"{source}.{a.name}" for a in stmt.names} & set(known)
            out |= submodules
            if len(submodules) < len(stmt.names):
                out.add(source)
    return {m for m in out if m.split(".")[0] == "lmd"}


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        source = node(name)
        for target in imported(name, path, known):
            to = node(target)
            if to is not None and to != source:
                edges[source].add(to)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_there_is_no_circle_between_the_rooms_of_lmd():
    assert cycles(graph()) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_the_lower_rooms_import_only_rooms_below_them(layer):
    allowed = set(LAYERS[: LAYERS.index(layer)])
    assert graph().get(layer, set()) <= allowed


def test_the_graph_sees_the_rest_of_lmd_build_on_the_lower_rooms():
    edges = graph()
    rest = {k for k in edges if k not in LAYERS}
    assert "lmd.api" in rest and "lmd.cli" in rest  # the graph sees the rest of lmd
    assert any("lmd.conversation" in edges[k] for k in rest)


def test_the_checker_finds_a_circle_and_a_lazy_import(tmp_path):
    """The test above can fail: a made-up circle is found, and so is an import in a function."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lmd.api import generate\n    import lmd.cli.app\n")
    assert imported("lmd.x.m", module, {}) == {"lmd.api", "lmd.cli.app"}
