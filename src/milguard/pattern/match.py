"""Rules (a pattern, a check and a rewrite) and the matches the engine returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from ..mil import Operation, Var, const_value, op_inputs
from .dsl import Pat

if TYPE_CHECKING:
    from ..mil.rewrite import Emit


@dataclass(frozen=True, eq=False)
class Rule:
    """One pattern of the rule library: what to match, whether to accept it, what to build instead.

    ``name`` is ``"<family>.<variant>"`` (``"rms_norm.decomposed"``); the family is the part before
    the dot. ``check(match)`` returns None when the match is acceptable, else the reason it is not
    (the tracer reports it). ``rewrite(match, emit)`` builds, with ``emit``, the value that replaces
    the output of the op pattern named ``replaces`` (the root when None) and returns it; ops of the
    match that nothing reads any more are then removed. A rule without ``rewrite`` only matches.
    Rules rooted at the same op type are tried by decreasing ``benefit``.
    """

    name: str
    pattern: Pat
    check: Callable[["Match"], str | None] | None = None
    rewrite: Callable[["Match", "Emit"], Var] | None = None
    replaces: str | None = None
    benefit: int = 0

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def variant(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else self.name


@dataclass(eq=False)
class Match:
    """A matched subgraph: its ops in program order, the values entering and leaving it."""

    rule: Rule
    root: Operation
    ops: list[Operation]
    entries: list[Var]
    exits: list[Var]
    function: str
    bindings: dict[str, Var]
    named_ops: dict[str, Operation]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The pattern family ("layer_norm", "rms_norm", "softmax", ...)."""
        return self.rule.family

    @property
    def variant(self) -> str:
        return "/".join([self.rule.variant, *(v for v in self.labels.values() if v)])

    def named(self, names: Iterable[str]) -> list[Operation]:
        """The ops bound to the given op-pattern names, in program order."""
        wanted = {self.named_ops[n] for n in names if n in self.named_ops}
        return [op for op in self.ops if op in wanted]

    def __repr__(self) -> str:
        return f"Match({self.kind}:{self.variant} @ {self.root.name}, {len(self.ops)} ops)"

    @staticmethod
    def build(rule: Rule, root: Operation, ops: Iterable[Operation], bindings: dict[str, Var],
              named_ops: dict[str, Operation], labels: dict[str, str], function: str,
              order: dict[Operation, int]) -> "Match":
        ordered = sorted(set(ops), key=order.__getitem__)
        return Match(rule, root, ordered, *region_boundary(ordered), function, dict(bindings),
                     dict(named_ops), dict(labels))


def region_boundary(ops: list[Operation]) -> tuple[list[Var], list[Var]]:
    """Entries: non-constant vars produced outside and read inside. Exits: vars produced inside and
    read outside, or returned by the block."""
    inside = set(ops)
    entries: list[Var] = []
    for op in ops:
        for _, var in op_inputs(op):
            if var.op not in inside and const_value(var) is None and var not in entries:
                entries.append(var)
    exits: list[Var] = []
    for op in ops:
        block_outputs = set(op.enclosing_block.outputs)
        for var in op.outputs:
            if var in block_outputs or any(child not in inside for child in var.child_ops):
                exits.append(var)
    return entries, exits
