"""Only ``milguard.mil`` touches coremltools internals, and it lists every one it touches.

The scan is textual: a marker of :data:`milguard.mil.private_names.PRIVATE_NAMES` (an internal
import path or a private attribute), ``ct.converters`` or ``_milguard_`` (state pinned onto a
coremltools object instead of :func:`milguard.mil.program_state`) anywhere in a module of
``src/milguard`` outside ``mil/`` or of ``passes/`` - code, comment or docstring - is a leak.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from milguard.mil.private_names import CONVERTERS, PRIVATE_NAMES

ROOT = Path(__file__).resolve().parents[2]
FACADE = ROOT / "src" / "milguard" / "mil"
MARKERS = sorted({n.marker for n in PRIVATE_NAMES} | {"ct.converters", "_milguard_"})

# Leaks being removed elsewhere: (file, marker). Each entry is a strict expected failure, so the
# test reports the day it is fixed; delete the entry then.
PENDING: set[tuple[str, str]] = set()


def _outside_facade(root: Path) -> list[Path]:
    facade = root / "src" / "milguard" / "mil"
    files = [p for p in (root / "src" / "milguard").rglob("*.py") if facade not in p.parents]
    return sorted(files + list((root / "passes").rglob("*.py")))


def _leaks(root: Path = ROOT) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in _outside_facade(root):
        rel = path.relative_to(root).as_posix()
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for marker in MARKERS:
                if marker in line:
                    found.setdefault((rel, marker), []).append(lineno)
    return found


def test_no_module_outside_the_facade_touches_coremltools_internals():
    leaks = {k: v for k, v in _leaks().items() if k not in PENDING}
    assert not leaks, "\n".join(f"{f}:{lines} uses {m!r}; go through milguard.mil"
                                for (f, m), lines in sorted(leaks.items()))


@pytest.mark.parametrize("entry", sorted(PENDING), ids=lambda e: f"{e[0]}:{e[1]}")
@pytest.mark.xfail(strict=True, reason="a known leak, removed elsewhere; delete its PENDING entry")
def test_pending_leak_is_gone(entry):
    assert entry not in _leaks()


def _internal_imports() -> list[tuple[str, str, str]]:
    """(façade file, module, name) of every import from coremltools.converters in the façade."""
    out = []
    for path in sorted(FACADE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CONVERTERS):
                out += [(path.name, node.module, a.name) for a in node.names]
    return out


def _listed(module: str, name: str) -> bool:
    full = f"{module}.{name}"
    return any(entry.name == full or (entry.name.startswith(module + ".")
                                      and re.search(rf"\b{re.escape(name)}\b", entry.name[len(module):]))
               for entry in PRIVATE_NAMES)


def test_every_internal_import_of_the_facade_is_listed():
    imports = _internal_imports()
    assert len(imports) > 10                           # the scan sees the façade's imports
    missing = [f"{f}: from {m} import {n}" for f, m, n in imports if not _listed(m, n)]
    assert not missing, "add to milguard.mil.private_names.PRIVATE_NAMES:\n" + "\n".join(missing)


def test_a_leak_is_reported(tmp_path):
    """The scan itself works: outside mil/ a read of ``_mil_program`` is caught, inside it is not."""
    for folder in ("report", "mil"):
        (tmp_path / "src" / "milguard" / folder).mkdir(parents=True)
        (tmp_path / "src" / "milguard" / folder / "m.py").write_text("def f(m):\n    return m._mil_program\n")
    (tmp_path / "passes").mkdir()
    (tmp_path / "passes" / "p.py").write_text("prog._milguard_plan = 1\n")
    assert _leaks(tmp_path) == {("src/milguard/report/m.py", "_mil_program"): [2],
                                ("passes/p.py", "_milguard_"): [1]}


def test_the_inventory_names_what_each_private_name_is_for():
    for entry in PRIVATE_NAMES:
        assert entry.name and entry.why and entry.marker and entry.where
    publics = [e for e in PRIVATE_NAMES if e.public]
    assert publics and all("used" in e.public for e in publics)   # a public alternative is used
