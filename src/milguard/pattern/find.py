"""``find_patterns``: run rules over every function and nested block of a program.

The engine is handed its rules; it never imports a rule library. ``milguard.find_patterns`` (in
``milguard.families``) hands it the families registered from ``milguard.passes``.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..mil import Operation, Program, iter_blocks, load
from .engine import RuleIndex, match_block
from .match import Match, Rule
from .trace import Tracer


def find_matches(model: Any, rules: Iterable[Rule], *, tracer: Tracer | None = None,
                 function: str | None = None) -> list[Match]:
    """Matches of ``rules`` in a pymil Program, an ML-program MLModel or a ``.mlpackage`` path.

    A ``Tracer`` collects the reason each rule failed where it came closest. Matches never share
    ops; they are returned per function, per block, in program order of their roots.
    """
    program = model if isinstance(model, Program) else load(model).program
    index = RuleIndex(list(rules))
    found: list[Match] = []
    for name, fn in program.functions.items():
        if function is not None and name != function:
            continue
        claimed: set[Operation] = set()
        for block in iter_blocks(fn):
            found.extend(reversed(match_block(block, name, index, claimed, tracer)))
    return found
