"""The pattern families of the rule library, read from their declarations without importing them.

``milguard --help`` must answer without importing coremltools, which the family modules need. Each
module of ``passes/`` declares ``FAMILY = Family("name", "Title", "summary", ...)``; this reads those
three literals from the source (``ast``), so the CLI's help lists exactly the registered families.
``tests/pattern/test_rules_families.py`` checks the catalogue against the imported registry.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    summary: str


def catalogue() -> list[Entry]:
    """Every family of the rule library, in registration (module-name) order."""
    spec = find_spec("milguard.passes")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations)))
    out = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        entry = _declared(ast.parse(path.read_text(encoding="utf-8")))
        if entry is not None:
            out.append(entry)
    return out


def _declared(tree: ast.Module) -> Entry | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILY" for t in node.targets) \
                and isinstance(node.value, ast.Call) and len(node.value.args) >= 3:
            texts = [a.value for a in node.value.args[:3] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if len(texts) == 3:
                return Entry(*texts)
    return None

