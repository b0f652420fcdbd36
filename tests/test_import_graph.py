"""The package's import graph: no cycle, and the foundation modules import nothing above them.

Read from the source with ``ast`` (imports inside functions count: a deferred
import is still a dependency), so the test needs no import of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Modules every stage uses; they import only each other (and the package's ``__init__``).
FOUNDATION = {"photoz", "photoz.io", "photoz.latex", "photoz.bins", "photoz.metrics", "photoz.regions",
              "photoz.published", "photoz.trials", "photoz.config", "photoz.catalog",
              "photoz.sdss.sqlerrors", "photoz.sdss.loopback", "photoz.sdss.frames", "photoz.sdss.query"}
#: What only the command line, the figures and the paper may import (the outputs of a run).
OUTPUTS = ("photoz.paper", "photoz.figures")


def _modules(src=SRC):
    mods = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph(src=SRC):
    """``{module: {modules of the package it imports}}``, deferred imports included."""
    mods = _modules(src)
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[mod] |= {n for n in names if n in mods and n != mod}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read_from_the_source(graph):
    """A known edge of each kind: top-level, relative, deferred inside a function."""
    assert "photoz.io" in graph["photoz.paper"]
    assert "photoz.sdss.query" in graph["photoz.sdss.skyserver"]          # from . import query as Q
    assert "photoz.sdss.casjobs" in graph["photoz.sdss.catalog_query"]


def test_cycles_are_found_when_there_is_one(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    assert cycles(import_graph(tmp_path)) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_foundation_imports_only_foundation(graph):
    upward = {m: sorted(graph[m] - FOUNDATION) for m in FOUNDATION if graph[m] - FOUNDATION}
    assert upward == {}


def test_outputs_are_imported_only_by_outputs(graph):
    """The paper and the figures read results; nothing that makes results imports them."""
    def is_output(m):
        return any(m == o or m.startswith(o + ".") for o in OUTPUTS)

    wrong = {m: sorted(t for t in deps if is_output(t))
             for m, deps in graph.items() if not is_output(m) and m != "photoz.__main__"}
    assert {m: t for m, t in wrong.items() if t} == {}
