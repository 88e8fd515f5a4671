"""Applying a rule's rewrite to a match: build the replacement, rewire its readers, drop the dead.

A rule's ``rewrite(match, emit)`` returns the value that replaces the output of the op pattern the
rule names in ``replaces`` (the root when it names none). The new ops are inserted just before that
op (every value the match read is defined there), readers of the old value read the new one, and
ops of the match that nothing reads any more are removed. Names stay unique per function.
"""
from __future__ import annotations

from ..mil import FP16_CAST_SUFFIX, Operation, Var, dtype_name, rewrite
from .match import Match


class RewriteError(ValueError):
    """A rule without a rewrite, or a rewrite that returned nothing usable."""


def replaced_op(match: Match) -> Operation:
    """The op whose output a rewrite of ``match`` replaces."""
    name = match.rule.replaces
    return match.root if name is None else match.named_ops[name]


def apply_rewrite(match: Match, taken: set[str]) -> tuple[Var, list[Operation]]:
    """Rewrite ``match`` in place; ``taken`` holds the names used in its function (and receives the
    new ones). Returns the new value and the ops built."""
    rule = match.rule
    if rule.rewrite is None:
        raise RewriteError(f"rule {rule.name} has no rewrite")
    anchor = replaced_op(match)
    old: Var = anchor.outputs[0]
    block = anchor.enclosing_block
    emit = rewrite.Emit(anchor, taken, old.name.removesuffix(FP16_CAST_SUFFIX), dtype_name(old) or "fp32")
    with block:                                   # the builder inserts into the innermost block entered
        new = rule.rewrite(match, emit)
        if not isinstance(new, Var) or dtype_name(new) != dtype_name(old):
            raise RewriteError(f"rewrite of {rule.name} gave {new!r}, not a {dtype_name(old)} value")
        rewrite.replace_uses(block, anchor, old, new)
        matched = set(match.ops)
        rewrite.remove_unused(block, [op for op in block.operations if op in matched])
    return new, emit.built
