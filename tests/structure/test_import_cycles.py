"""milguard's modules depend on each other one way: the import graph has no cycle, and every
import between two parts of milguard points down the layers of docs/architecture.md (``LAYERS``).

The graph is built with ``ast`` from every module of ``src/milguard`` and of ``passes/`` (which
installs as ``milguard.passes``). Every import counts, function-level (lazy) imports included: a
lazy import only hides a cycle from the interpreter, not from the reader. Imports under
``if TYPE_CHECKING:`` are exempt (they never run). ``from pkg import name`` depends on the module
``pkg.name`` when there is one, else on ``pkg`` itself; importing a submodule does not count as a
dependency on its parent package.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (("src/milguard", "milguard"), ("passes", "milguard.passes"))

# Known cycles being removed elsewhere, as the one edge that closes each: (importer, imported).
# Each entry is a strict expected failure: the test reports the day the cycle is gone; delete
# the entry then.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


# The layers of docs/architecture.md, lowest first. A module of a part may import a module of a
# part on a lower layer only (inside one part anything goes, cycles aside). A part is a package
# directly under milguard, or a top-level module.
LAYERS = (
    ("errors", "fp16", "progress", "catalogue", "choices", "compute_units"),
    ("outputs",),
    ("input_ranges", "mil", "zoo"),
    ("executor", "placement", "pattern"),
    ("families",),
    ("analysis", "passes"),
    ("actions",),
    ("precision", "report", "config"),
    ("registered", "registration", "testing"),
    ("cli", "milguard"),
    ("__main__", "demo"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}

# Imports that point up, being removed elsewhere: (importer, imported), each a strict expected
# failure; delete the entry when it is gone.
KNOWN_UPWARD_EDGES: set[tuple[str, str]] = set()


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _upward(graph: nx.DiGraph) -> list[str]:
    return sorted(f"{a} ({_part(a)}, layer {RANK[_part(a)]}) imports {b} ({_part(b)}, layer {RANK[_part(b)]}) "
                  f"at {graph.edges[a, b]['line']}"
                  for a, b in graph.edges
                  if _part(a) != _part(b) and RANK[_part(a)] <= RANK[_part(b)])


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package)}."""
    out = {}
    for folder, package in PACKAGES:
        for path in (root / folder).rglob("*.py"):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join([package, *(parts[:-1] if is_package else parts)])
            out[name] = (path, is_package)
    return out


def _imports(tree: ast.AST):
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


@functools.lru_cache(maxsize=None)
def import_graph(root: Path = ROOT) -> nx.DiGraph:
    """milguard's modules and their imports of each other; edges carry the importing line
    (cached: callers that change the graph change a copy)."""
    modules = _modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph.add_edge(name, target, line=f"{path.relative_to(root)}:{node.lineno}")
    return graph


def _cycles(graph: nx.DiGraph) -> list[str]:
    out = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycle = nx.find_cycle(graph.subgraph(component))
            out.append(" -> ".join(f"{a} ({graph.edges[a, b]['line']})" for a, b in cycle)
                       + f" -> {cycle[0][0]}")
    return sorted(out)


def test_milguard_has_no_import_cycle():
    graph = import_graph().copy()
    assert graph.number_of_nodes() > 50 and graph.number_of_edges() > 100   # the scan sees milguard
    graph.remove_edges_from(KNOWN_CYCLE_EDGES)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("edge", sorted(KNOWN_CYCLE_EDGES), ids=" -> ".join)
@pytest.mark.xfail(strict=True, reason="a known cycle, removed elsewhere; delete its KNOWN_CYCLE_EDGES entry")
def test_known_cycle_is_gone(edge):
    graph = import_graph()
    importer, imported = edge
    assert not (graph.has_edge(importer, imported) and nx.has_path(graph, imported, importer))


def test_a_planted_cycle_is_found(tmp_path):
    """Two modules importing each other, one of them lazily, make a cycle; TYPE_CHECKING does not."""
    pkg = tmp_path / "src" / "milguard"
    (pkg / "analysis").mkdir(parents=True)
    (tmp_path / "passes").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "analysis" / "__init__.py").write_text("from .a import f\n")
    (pkg / "analysis" / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "analysis" / "b.py").write_text("def g():\n    from .a import f\n    return f\n")
    (pkg / "analysis" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from .d import h\n")
    (pkg / "analysis" / "d.py").write_text("from .c import TYPE_CHECKING\n")
    cycles = _cycles(import_graph(tmp_path))
    assert len(cycles) == 1 and "milguard.analysis.a" in cycles[0] and "milguard.analysis.b" in cycles[0]
    assert "b.py:2" in cycles[0]                        # the lazy import is named with its line


def test_every_part_has_a_layer():
    assert {_part(m) for m in import_graph()} == set(RANK)


def test_imports_point_down_the_layers():
    graph = import_graph().copy()
    graph.remove_edges_from(KNOWN_UPWARD_EDGES)
    upward = _upward(graph)
    assert not upward, "imports against the layers of docs/architecture.md:\n" + "\n".join(upward)


@pytest.mark.parametrize("edge", sorted(KNOWN_UPWARD_EDGES), ids=" -> ".join)
@pytest.mark.xfail(strict=True, reason="a known upward import, removed elsewhere; delete its entry")
def test_known_upward_import_is_gone(edge):
    assert not import_graph().has_edge(*edge)


def test_an_upward_import_is_found(tmp_path):
    pkg = tmp_path / "src" / "milguard"
    (pkg / "mil").mkdir(parents=True)
    (pkg / "report").mkdir()
    (tmp_path / "passes").mkdir()
    (pkg / "mil" / "__init__.py").write_text("from ..report.audit import audit\n")
    (pkg / "report" / "audit.py").write_text("from ..mil import load\n")
    graph = import_graph(tmp_path)
    assert _cycles(graph)                                   # a cycle, and
    graph.remove_edge("milguard.report.audit", "milguard.mil")
    assert _upward(graph) == [f"milguard.mil (mil, layer {RANK['mil']}) imports milguard.report.audit (report, layer "
                              f"{RANK['report']}) at src/milguard/mil/__init__.py:1"]
