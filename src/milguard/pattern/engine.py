"""The matcher: one engine for every pattern family.

Algorithm. Rules are indexed by the op types of their root pattern. Each block (nested ``cond`` /
``while_loop`` bodies included) is visited in *reverse* program order, so the largest pattern rooted
at a late op (a LayerNorm with its affine tail) is tried before a smaller one rooted earlier (the same
LayerNorm without it). At an anchor op, the rules for its type are tried by decreasing ``benefit``.
Matching walks backwards from the root through each input's unique producer, as a generator of
partial states, so alternatives (``either``), both operand orders of commutative ops and both
choices of an optional cast backtrack naturally when a later binding conflicts.

Invariants:
  * a ``Bind`` name binds one var per match (constants compare by value);
  * one ``OpPat`` object binds one op per match (DAG patterns);
  * a match never crosses a block boundary and never shares an op with an earlier match;
  * interior values may escape the match: they become its exits.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..mil import Block, Operation, Var, const_value
from .dsl import AnyPat, Bind, Const, Either, Lit, OpPat, Pat
from .match import Match, Rule
from .trace import Tracer

# Ops whose two operands may be swapped (MIL parameter names).
COMMUTATIVE: dict[str, tuple[str, str]] = {
    "add": ("x", "y"), "mul": ("x", "y"), "maximum": ("x", "y"), "minimum": ("x", "y"),
}


@dataclass
class _State:
    binds: dict[str, Var] = field(default_factory=dict)
    ops: dict[int, Operation] = field(default_factory=dict)      # id(OpPat) -> op
    names: dict[str, Operation] = field(default_factory=dict)    # OpPat.name -> op
    labels: dict[str, str] = field(default_factory=dict)         # either axis -> chosen label
    choices: dict[int, int] = field(default_factory=dict)        # id(Either) -> chosen alternative

    def copy(self) -> "_State":
        return _State(dict(self.binds), dict(self.ops), dict(self.names), dict(self.labels),
                      dict(self.choices))


class _Attempt:
    """One rule tried at one anchor: the block, ops taken by earlier matches, the best failure."""

    def __init__(self, block: Block, claimed: set[Operation]):
        self.block, self.claimed = block, claimed
        self.best: tuple[int, str] = (-1, "")

    def fail(self, st: _State, reason: str) -> None:
        depth = len(st.ops)
        if depth > self.best[0]:
            self.best = (depth, reason)


def _same_value(a: Var, b: Var) -> bool:
    if a is b:
        return True
    va, vb = const_value(a), const_value(b)
    if va is None or vb is None:
        return False
    return va.shape == vb.shape and bool(np.array_equal(va, vb))


def _describe(var: Var) -> str:
    val = const_value(var)
    if val is not None and val.size <= 4:
        return f"{var.name}={val.tolist()}"
    return f"'{var.name}'"


def _match(pat: Pat, var: Var, st: _State, at: _Attempt) -> Iterator[_State]:
    if isinstance(pat, OpPat):
        yield from _match_op(pat, var, st, at)
    elif isinstance(pat, Bind):
        bound = st.binds.get(pat.name)
        if bound is not None:
            if _same_value(bound, var):
                yield st
            else:
                at.fail(st, f"'{pat.name}' is {_describe(bound)} in one place and {_describe(var)} in another")
            return
        if pat.const and const_value(var) is None:
            at.fail(st, f"'{pat.name}' must be a constant, got the computed value {_describe(var)}")
            return
        nxt = st.copy()
        nxt.binds[pat.name] = var
        yield nxt
    elif isinstance(pat, Const):
        val = const_value(var)
        if val is None:
            at.fail(st, f"{pat.name or 'value'} must be {pat.why}, got the computed value {_describe(var)}")
            return
        if not pat.test(val):
            at.fail(st, f"{pat.name or 'value'} must be {pat.why}, got {_describe(var)}")
            return
        if pat.name is not None and pat.bind:
            yield from _match(Bind(pat.name, const=True), var, st, at)
        else:
            yield st
    elif isinstance(pat, Lit):
        val = const_value(var)
        if val is None or not pat.matches(val):
            at.fail(st, f"expected the constant {pat.value!r}, got {_describe(var)}")
            return
        yield st
    elif isinstance(pat, Either):
        chosen = st.choices.get(id(pat))      # a reused Either keeps the alternative it chose first
        for i, (label, alt) in enumerate(pat.alternatives):
            if chosen is not None and i != chosen:
                continue
            branch = st.copy()
            branch.choices[id(pat)] = i
            if pat.axis is not None:
                branch.labels[pat.axis] = label
            yield from _match(alt, var, branch, at)
    elif isinstance(pat, AnyPat):
        yield st
    else:  # pragma: no cover - a new Pat subclass without a rule here
        raise TypeError(f"unknown pattern node {pat!r}")


def _match_op(pat: OpPat, var: Var, st: _State, at: _Attempt) -> Iterator[_State]:
    op = var.op
    if op is None:
        at.fail(st, f"expected {pat!r} but '{var.name}' is a function or block input")
        return
    seen = st.ops.get(id(pat))
    if seen is not None:
        if seen is op:
            yield st
        else:
            at.fail(st, f"'{op.name}' should be the same {op.op_type} op as '{seen.name}'")
        return
    if op.op_type not in pat.op_types:
        at.fail(st, f"expected {'|'.join(pat.op_types)}, got {op.op_type} '{op.name}'")
        return
    if op in at.claimed:
        at.fail(st, f"'{op.name}' already belongs to another match")
        return
    if op.enclosing_block is not at.block:
        at.fail(st, f"'{op.name}' is in another block")
        return
    nxt = st.copy()
    nxt.ops[id(pat)] = op
    if pat.name:
        nxt.names[pat.name] = op
    orders = [pat.params]
    pair = COMMUTATIVE.get(op.op_type)
    if pair and pair[0] in pat.params and pair[1] in pat.params:
        a, b = pair
        swapped = dict(pat.params)
        swapped[a], swapped[b] = pat.params[b], pat.params[a]
        orders.append(swapped)
    for params in orders:
        yield from _match_params(list(params.items()), op, nxt, at)


def _match_params(items: list[tuple[str, Pat]], op: Operation, st: _State, at: _Attempt) -> Iterator[_State]:
    if not items:
        yield st
        return
    (param, sub), rest = items[0], items[1:]
    value = op.inputs.get(param)
    if value is None or isinstance(value, (list, tuple)):
        at.fail(st, f"'{op.name}' has no single input '{param}'")
        return
    for mid in _match(sub, value, st, at):
        yield from _match_params(rest, op, mid, at)


def root_types(pat: Pat) -> set[str]:
    """Op types a pattern can be rooted at (an ``either`` at the root contributes every alternative)."""
    if isinstance(pat, OpPat):
        return set(pat.op_types)
    if isinstance(pat, Either):
        return set().union(*(root_types(alt) for _, alt in pat.alternatives))
    raise ValueError(f"a rule's pattern must be rooted at an op, not {type(pat).__name__}")


class RuleIndex:
    """Rules grouped by root op type, each group ordered by decreasing benefit."""

    def __init__(self, rules: list[Rule]):
        self.rules = list(rules)
        self.by_root: dict[str, list[Rule]] = defaultdict(list)
        for rule in self.rules:
            for op_type in sorted(root_types(rule.pattern)):
                self.by_root[op_type].append(rule)
        for group in self.by_root.values():
            group.sort(key=lambda r: -r.benefit)


def match_block(block: Block, function: str, index: RuleIndex, claimed: set[Operation],
                tracer: Tracer | None = None) -> list[Match]:
    """All non-overlapping matches rooted in ``block`` (not its nested blocks)."""
    found: list[Match] = []
    ops = list(block.operations)
    order = {op: i for i, op in enumerate(ops)}
    for op in reversed(ops):
        if op in claimed:
            continue
        for rule in index.by_root.get(op.op_type, ()):
            match = _try(rule, op, block, function, claimed, tracer, order)
            if match is not None:
                claimed.update(match.ops)
                found.append(match)
                break
    return found


def _try(rule: Rule, root: Operation, block: Block, function: str, claimed: set[Operation],
         tracer: Tracer | None, order: dict[Operation, int]) -> Match | None:
    at = _Attempt(block, claimed)
    for st in _match(rule.pattern, root.outputs[0], _State(), at):
        match = Match.build(rule, root, st.ops.values(), st.binds, st.names, st.labels, function, order)
        reason = rule.check(match) if rule.check else None
        if reason is None:
            if tracer is not None:
                tracer.record_match(rule, match)
            return match
        if len(st.ops) + 1 > at.best[0]:     # a failed check is deeper than any structural miss
            at.best = (len(st.ops) + 1, reason)
    if tracer is not None:
        tracer.record_failure(rule, root, at.best[0], at.best[1])
    return None
