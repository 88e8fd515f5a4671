"""Carrying out decisions: rescale rewrites at once, fp32 islands at once or after the fp16 cast.

Inside ``ct.convert`` the family passes decide on the fp32 program just before
``common::add_fp16_cast``: they apply the rescale rewrites there (the rewritten ops are then cast
to fp16 like every other op) and *record* the fp32 islands by op name; ``milguard::apply_fp32_islands``
right after ``add_fp16_cast`` rebuilds whatever of those regions became fp16, with the fp32
constants still reachable as ``cast(fp32 const)``. Recording by name survives ``add_fp16_cast``,
which replaces each op ``n`` it converts by ``n_cast_fp16``. On a program that is already fp16 (a
saved package) the islands are built at once.
"""
from __future__ import annotations

from collections import defaultdict

from ..mil import FP16_CAST_SUFFIX, Block, Operation, Program, iter_ops, program_state, rewrite
from ..pattern import Match, apply_rewrites
from .decide import Context, Decision
from .islands import IslandStats, insert_cast_islands

ISLANDS_KEY = "milguard.islands"


def carry_out(program: Program, pairs: list[tuple[Match, Decision]], context: Context | None = None,
              *, islands_now: bool = True) -> IslandStats:
    """Apply every "rescale" decision and build (or record) every "fp32" island."""
    islands: dict[str, set[str]] = defaultdict(set)
    rescale: dict[str, list[Match]] = defaultdict(list)
    for match, decision in pairs:
        if decision.remedy == "rescale":
            rescale[match.function].append(match)
        elif decision.remedy == "fp32":
            islands[match.function].update(decision.island)
    for fn, matches in rescale.items():
        for match, old, new in apply_rewrites(matches, rewrite.names_in(program.functions[fn])):
            if context is not None:
                context.evidence(fn).aliases[new.name] = old
    if rescale and context is not None:
        context.changed()
    if islands_now:
        return build_islands(program, islands)
    record_islands(program, islands)
    return IslandStats()


def record_islands(program: Program, islands: dict[str, set[str]]) -> None:
    """Remember island op names on the program (idempotent)."""
    store = program_state(program).setdefault(ISLANDS_KEY, defaultdict(set))
    for fn, names in islands.items():
        store[fn].update(names)


def recorded_islands(program: Program) -> dict[str, set[str]]:
    return {fn: set(names) for fn, names in program_state(program).get(ISLANDS_KEY, {}).items()}


def build_islands(program: Program, islands: dict[str, set[str]]) -> IslandStats:
    """Rebuild in fp32 the named ops that are fp16 now; all regions of a block at once, so adjacent
    regions merge into one island."""
    stats = IslandStats()
    for fn_name, fn in program.functions.items():
        wanted = islands.get(fn_name)
        if not wanted:
            continue
        by_block: dict[Block, set[Operation]] = defaultdict(set)
        for op in iter_ops(fn):
            if op.name in wanted or op.name.removesuffix(FP16_CAST_SUFFIX) in wanted:
                by_block[op.enclosing_block].add(op)
        for block, island in by_block.items():
            stats += insert_cast_islands(block, island)
    return stats


