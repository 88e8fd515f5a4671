"""Rules (a named pattern with a check) and the matches the engine returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..mil import Operation, Var, const_value, op_inputs
from .dsl import Pat


@dataclass(frozen=True, eq=False)
class Rule:
    """A pattern of a family, with an optional check and what the precision passes do with it.

    ``check(match)`` returns None when the match is acceptable, else the reason it is not.
    ``core`` names the op patterns of the overflow-prone chain (kept fp32 in the minimal mode).
    ``keep_fp32`` says whether the precision passes keep the match fp32 unless told otherwise.
    ``risk(match, interval)`` (native ops) returns why the op is at fp16 risk, or None: such a match
    is kept fp32 under ``keep_native="at_risk"``; ``interval(var)`` gives a var's static value range.
    Only risks an fp32 island can repair count: overflow inside the op.
    """

    kind: str                              # "layer_norm" | "rms_norm" | "softmax"
    name: str                              # "layer_norm.decomposed"
    pattern: Pat
    check: Callable[["Match"], str | None] | None = None
    benefit: int = 0
    core: tuple[str, ...] = ()
    keep_fp32: bool = True
    risk: Callable[["Match", Any], str | None] | None = None

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
        return self.rule.kind

    @property
    def variant(self) -> str:
        return "/".join([self.rule.variant, *(v for v in self.labels.values() if v)])

    @property
    def core_ops(self) -> list[Operation]:
        """The overflow-prone core (all ops when the rule names no core)."""
        if not self.rule.core:
            return list(self.ops)
        core = {self.named_ops[n] for n in self.rule.core if n in self.named_ops}
        return [op for op in self.ops if op in core]

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
