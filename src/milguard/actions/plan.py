"""From matches to fp32 islands: choose the regions, remember them on the program, apply them.

Inside ``ct.convert`` the family passes run on the pristine fp32 program just before
``common::add_fp16_cast`` and only *record* their regions (op names) on the program; the pass
``milguard::apply_fp32_islands`` right after ``add_fp16_cast`` rebuilds whatever of those regions
became fp16. Recording by name survives ``add_fp16_cast``, which replaces each converted op ``n`` by
``n_cast_fp16``. Nothing here needs options on ``add_fp16_cast``: ``ct.convert`` overwrites them
when given ``FP16ComputePrecision(op_selector=...)`` and rejects them for ``FLOAT32``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from ..mil import FP16_CAST_SUFFIX, Block, Operation, Program, iter_ops
from ..pattern import Match, find_patterns
from .islands import IslandStats, insert_cast_islands
from .options import Options

PLAN_ATTR = "_milguard_plan"


@dataclass(frozen=True)
class Region:
    """A region to keep fp32, by op names so that it survives ops being rebuilt."""

    function: str
    kind: str
    rule: str
    variant: str
    ops: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"function": self.function, "kind": self.kind, "rule": self.rule,
                "variant": self.variant, "ops": list(self.ops)}


def select(matches: list[Match], options: Options,
           native_risk: Callable[[Match], str | None] | None = None) -> list[tuple[Match, list[Operation]]]:
    """The matches to keep fp32 under ``options``, each with the ops to keep (region or core).

    Native single-op members are kept when ``keep_native`` is "always", or "at_risk" and
    ``native_risk(match)`` gives a reason."""
    chosen = []
    for match in matches:
        if match.kind not in options.families or options.excludes(match):
            continue
        if not match.rule.keep_fp32:
            at_risk = options.keep_native == "at_risk" and native_risk is not None and native_risk(match)
            if not (options.keep_native == "always" or at_risk):
                continue
        ops = match.ops if options.scope == "region" else match.core_ops
        chosen.append((match, ops))
    return chosen


def plan(program: Program, options: Options, kinds: tuple[str, ...] | None = None) -> list[Region]:
    """Find and select the regions of ``program`` for the given families."""
    kinds = tuple(k for k in (kinds or options.families) if k in options.families)
    matches = find_patterns(program, kinds=kinds)
    risk = None
    if options.keep_native == "at_risk" and any(not m.rule.keep_fp32 and m.rule.risk for m in matches):
        risk = _static_risk(program, options)
    return [Region(m.function, m.kind, m.rule.name, m.variant, tuple(op.name for op in ops))
            for m, ops in select(matches, options, risk)]


def _static_risk(program: Program, options: Options) -> Callable[[Match], str | None]:
    """``match -> reason | None``; static ranges of a function are computed the first time a rule's
    risk asks for an interval (a row-length risk never does)."""
    from ..analysis.ranges import propagate

    ranges: dict[str, Any] = {}

    def risk(match: Match) -> str | None:
        def interval(var):
            if match.function not in ranges:
                given = options.ranges if match.function == "main" else None
                ranges[match.function] = propagate(program, given, function=match.function)
            rm = ranges[match.function]
            return rm.wanted.get(var.name, rm.typed.get(var.name))
        return match.rule.risk(match, interval)
    return risk


def record(program: Program, regions: list[Region]) -> None:
    """Remember regions on the program (idempotent: a region recorded twice is kept once)."""
    recorded: list[Region] = getattr(program, PLAN_ATTR, [])
    seen = set(recorded)
    recorded.extend(r for r in regions if r not in seen)
    setattr(program, PLAN_ATTR, recorded)


def recorded(program: Program) -> list[Region]:
    return list(getattr(program, PLAN_ATTR, []))


def apply(program: Program, regions: list[Region]) -> IslandStats:
    """Rebuild in fp32 the ops of ``regions`` that are fp16 now; all regions of a block at once, so
    adjacent regions merge into one island."""
    stats = IslandStats()
    for fn_name, fn in program.functions.items():
        wanted = {name for r in regions if r.function == fn_name for name in r.ops}
        if not wanted:
            continue
        by_block: dict[Block, set[Operation]] = defaultdict(set)
        for op in iter_ops(fn):
            if op.name in wanted or op.name.removesuffix(FP16_CAST_SUFFIX) in wanted:
                by_block[op.enclosing_block].add(op)
        for block, island in by_block.items():
            stats += insert_cast_islands(block, island)
    return stats
