"""fp16's limits are written once, in ``milguard.fp16``; every other module reads them from there.

The scan looks at numbers in code (not in docstrings or comments, where "65504" explains the
math): a literal or a constant power such as ``2.0 ** -11`` equal to one of fp16's limits, in any
module of ``src/milguard`` or ``passes/`` except ``milguard/fp16.py``, is a second definition.
"""
from __future__ import annotations

import ast
import functools
import math
from pathlib import Path

import pytest

from milguard import fp16

ROOT = Path(__file__).resolve().parents[2]
FACTS = {fp16.MAX: "MAX", round(fp16.SQUARE_LIMIT, 1): "SQUARE_LIMIT",
         round(fp16.EXP_LIMIT, 2): "EXP_LIMIT", fp16.UNIT_ROUNDOFF: "UNIT_ROUNDOFF"}

# Modules being rewritten elsewhere, which switch to milguard.fp16 then. Each entry is a strict
# expected failure: delete it when its module no longer defines the limit itself.
PENDING: set[str] = set()


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exp = _number(node.left), _number(node.right)
        if base is not None and exp is not None:
            try:
                return base ** exp
            except OverflowError:
                return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    return None


@functools.lru_cache(maxsize=None)
def redefinitions(root: Path = ROOT) -> dict[str, list[str]]:
    """{module: ["line: NAME", ...]} for every fp16 limit written as a number outside fp16.py."""
    found: dict[str, list[str]] = {}
    files = sorted([*(root / "src" / "milguard").rglob("*.py"), *(root / "passes").rglob("*.py")])
    for path in files:
        rel = path.relative_to(root).as_posix()
        if rel == "src/milguard/fp16.py":
            continue
        todo = [ast.parse(path.read_text(encoding="utf-8"))]
        while todo:
            node = todo.pop()
            value = _number(node)
            if value is not None and math.isfinite(value) and abs(value) in FACTS:
                found.setdefault(rel, []).append(f"{node.lineno}: {FACTS[abs(value)]}")
            else:                               # the parts of a matched -x or 2 ** -11 are not looked at
                todo.extend(ast.iter_child_nodes(node))
        found.get(rel, []).sort(key=lambda s: int(s.split(":")[0]))
    return found


def test_fp16_limits_are_defined_once():
    extra = {k: v for k, v in redefinitions().items() if k not in PENDING}
    assert not extra, "use milguard.fp16 instead of:\n" + "\n".join(
        f"{k}: {v}" for k, v in sorted(extra.items()))


@pytest.mark.parametrize("module", sorted(PENDING))
@pytest.mark.xfail(strict=True, reason="defines an fp16 limit itself until rewritten; delete its PENDING entry")
def test_pending_module_uses_milguard_fp16(module):
    assert module not in redefinitions()


def test_a_redefinition_is_found(tmp_path):
    (tmp_path / "src" / "milguard").mkdir(parents=True)
    (tmp_path / "passes").mkdir()
    (tmp_path / "src" / "milguard" / "m.py").write_text(
        '"""x² overflows past 65504."""\nLIMIT = 65504.0\nU = 2.0 ** -11\nE = -11.09\n')
    assert redefinitions(tmp_path) == {"src/milguard/m.py": ["2: MAX", "3: UNIT_ROUNDOFF", "4: EXP_LIMIT"]}
