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


def apply_rewrites(matches: list[Match], taken: set[str]) -> list[tuple[Match, str, Var]]:
    """Rewrite every match in place (all of one function; ``taken`` holds its names and receives the
    new ones). Returns (match, name of the replaced value, new value) per match. The block of each
    match is entered once for all its rewrites: coremltools revisits the whole block on every exit."""
    done: list[tuple[Match, str, Var]] = []
    by_block: dict = {}
    for match in matches:
        by_block.setdefault(replaced_op(match).enclosing_block, []).append(match)
    for block, group in by_block.items():
        with block:                               # the builder inserts into the innermost block entered
            for match in group:
                old = replaced_op(match).outputs[0].name
                done.append((match, old, _rewrite(match, block, taken)))
    return done


def apply_rewrite(match: Match, taken: set[str]) -> Var:
    """Rewrite one match in place (see :func:`apply_rewrites`); returns the new value."""
    return apply_rewrites([match], taken)[0][2]


def _rewrite(match: Match, block, taken: set[str]) -> Var:
    rule = match.rule
    if rule.rewrite is None:
        raise RewriteError(f"rule {rule.name} has no rewrite")
    anchor = replaced_op(match)
    old: Var = anchor.outputs[0]
    emit = rewrite.Emit(anchor, taken, old.name.removesuffix(FP16_CAST_SUFFIX), dtype_name(old) or "fp32")
    new = rule.rewrite(match, emit)
    if not isinstance(new, Var) or dtype_name(new) != dtype_name(old):
        raise RewriteError(f"rewrite of {rule.name} gave {new!r}, not a {dtype_name(old)} value")
    rewrite.replace_uses(block, anchor, old, new)
    rewrite.remove_unused(block, [op for op in match.ops if op.enclosing_block is block])
    return new
