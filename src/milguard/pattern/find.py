"""``find_patterns``: run the rule library (or any rules) over every function and nested block."""
from __future__ import annotations

from typing import Any, Iterable

from ..mil import Operation, Program, iter_blocks, load
from .engine import RuleIndex, match_block
from .match import Match, Rule
from .trace import Tracer


def find_patterns(model: Any, *, kinds: Iterable[str] | None = None, rules: Iterable[Rule] | None = None,
                  tracer: Tracer | None = None, function: str | None = None) -> list[Match]:
    """Matches of the decomposed LayerNorm, RMSNorm and softmax families (and their native ops).

    ``model`` is a pymil Program, an ML-program MLModel or a path to a ``.mlpackage``.
    ``kinds`` restricts the families; ``rules`` replaces the rule library; a ``Tracer`` collects the
    reason each rule failed where it came closest. Matches never share ops; they are returned per
    function, per block, in program order of their roots.
    """
    program = model if isinstance(model, Program) else load(model).program
    if rules is None:
        from milguard.passes import RULES  # the rule library sits above the engine
        rules = RULES
    wanted = set(kinds) if kinds is not None else None
    index = RuleIndex([r for r in rules if wanted is None or r.kind in wanted])
    found: list[Match] = []
    for name, fn in program.functions.items():
        if function is not None and name != function:
            continue
        claimed: set[Operation] = set()
        for block in iter_blocks(fn):
            found.extend(reversed(match_block(block, name, index, claimed, tracer)))
    return found


def explain(model: Any, rule_or_kind: str, **kwargs: Any) -> str | None:
    """Why ``rule_or_kind`` did not match where it came closest; None if it matched or was never tried."""
    tracer = Tracer()
    matches = find_patterns(model, tracer=tracer, **kwargs)
    if any(m.rule.name == rule_or_kind or m.kind == rule_or_kind for m in matches):
        return None
    return tracer.reason(rule_or_kind)
