"""Device segments, transitions, fp32 islands, FLOP shares and relative cost of a placement.

Order: ops are taken in program order (MIL blocks are topologically sorted; ops of nested
blocks follow their parent op). Const ops, and any op without an entry in ``placements``,
are skipped: they neither start nor break a segment or an island.

* **segment** — a maximal run of consecutive ops on the same device;
* **transition** — a boundary between two consecutive segments (segments − 1);
* **fp32 island** — a maximal run of consecutive fp32-typed ops (an fp32 tensor among their
  inputs or outputs). A run made only of casts that read a function input or write a
  function output is the model's I/O conversion, not an island, and is not counted;
* **FLOP share** — Σ FLOPs on a device / Σ FLOPs (``flops.py``), the static analogue of
  ``MLComputePlan``'s cost weight;
* **relative cost** — ``cost.relative_cost`` over the segments and the values that cross
  devices. RELATIVE ONLY.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from milguard.mil.shapes import nbytes

from .cost import UNIT, CostModel, Crossing, SegmentWork, relative_cost
from .facts import OpFacts, op_facts
from .predict import DEVICES, Placement, as_function, placed_ops


@dataclass(frozen=True)
class Segment:
    device: str
    ops: tuple[str, ...]
    flops: float

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "ops": list(self.ops), "flops": self.flops}


@dataclass(frozen=True)
class PlacementSummary:
    segments: tuple[Segment, ...]
    transitions: int
    transitions_by_pair: dict[str, int]     # "ane->cpu": count
    fp32_islands: int
    op_counts: dict[str, int]               # device -> ops
    flops: dict[str, float]                 # device -> FLOPs
    flops_share: dict[str, float]           # device -> share of all FLOPs (0 when none)
    crossings: int                          # values read on another device than their producer's
    crossing_bytes: float
    relative_cost: float                    # RELATIVE ONLY (see cost.py)
    cost_breakdown: dict[str, float]
    cost_model: CostModel

    def to_dict(self) -> dict[str, Any]:
        return {
            "segments": [s.to_dict() for s in self.segments],
            "segment_count": len(self.segments),
            "transitions": self.transitions,
            "transitions_by_pair": dict(self.transitions_by_pair),
            "fp32_islands": self.fp32_islands,
            "op_counts": dict(self.op_counts),
            "flops": dict(self.flops),
            "flops_share": dict(self.flops_share),
            "crossings": self.crossings,
            "crossing_bytes": self.crossing_bytes,
            "relative_cost": self.relative_cost,
            "relative_cost_unit": UNIT,
            "cost_breakdown": dict(self.cost_breakdown),
            "cost_model": self.cost_model.to_dict(),
        }


def summarize(function: Any, placements: Mapping[str, Placement], *,
              cost_model: CostModel | None = None) -> PlacementSummary:
    """Segments, transitions, fp32 islands, FLOP shares and relative cost of ``placements``."""
    fn = as_function(function)
    model = cost_model or CostModel()
    rows = [(op_facts(op), placements[op.name].device) for op, _ in placed_ops(fn)
            if op.name in placements]
    segments = _segments(rows)
    flops = {d: sum((f.flops for f, dev in rows if dev == d), 0.0) for d in DEVICES}
    total = sum(flops.values())
    pairs: dict[str, int] = {}
    for a, b in zip(segments, segments[1:]):
        key = f"{a.device}->{b.device}"
        pairs[key] = pairs.get(key, 0) + 1
    crossings = _crossings(rows)
    work = [SegmentWork(s.device, tuple((f.flops, f.bytes) for f in group))
            for s, group in zip(segments, _groups(rows))]
    cost = relative_cost(work, crossings, model)
    return PlacementSummary(
        segments=tuple(segments),
        transitions=max(len(segments) - 1, 0),
        transitions_by_pair=pairs,
        fp32_islands=_fp32_islands(fn, [f for f, _ in rows]),
        op_counts={d: sum(1 for _, dev in rows if dev == d) for d in DEVICES},
        flops=flops,
        flops_share={d: (v / total if total else 0.0) for d, v in flops.items()},
        crossings=len(crossings),
        crossing_bytes=sum(c.nbytes for c in crossings),
        relative_cost=cost["total"],
        cost_breakdown={k: v for k, v in cost.items() if k != "total"},
        cost_model=model,
    )


def _groups(rows: list[tuple[OpFacts, str]]) -> list[list[OpFacts]]:
    groups: list[list[OpFacts]] = []
    previous = None
    for facts, device in rows:
        if device != previous:
            groups.append([])
            previous = device
        groups[-1].append(facts)
    return groups


def _segments(rows: list[tuple[OpFacts, str]]) -> list[Segment]:
    device_of = {f.name: d for f, d in rows}
    return [Segment(device_of[g[0].name], tuple(f.name for f in g), sum(f.flops for f in g))
            for g in _groups(rows)]


def _crossings(rows: list[tuple[OpFacts, str]]) -> list[Crossing]:
    placed = {f.op: (f, d) for f, d in rows}
    seen: set[tuple[int, str]] = set()
    out: list[Crossing] = []
    for facts, device in rows:
        for var in facts.op.inputs.values():
            for v in (var if isinstance(var, (list, tuple)) else (var,)):
                producer = placed.get(getattr(v, "op", None))
                if producer is None or producer[1] == device or (id(v), device) in seen:
                    continue
                seen.add((id(v), device))
                out.append(Crossing(producer[1], device, nbytes(v), producer[0].fp32 != facts.fp32))
    return out


def _fp32_islands(fn: Any, ordered: list[OpFacts]) -> int:
    inputs = {id(v) for v in fn.inputs.values()}
    outputs = {id(v) for v in fn.outputs}

    def io_cast(f: OpFacts) -> bool:
        return f.op_type == "cast" and (id(f.op.inputs["x"]) in inputs
                                        or any(id(o) in outputs for o in f.op.outputs))

    islands, run = 0, []
    for facts in [*ordered, None]:
        if facts is not None and facts.fp32:
            run.append(facts)
            continue
        if run and not all(io_cast(f) for f in run):
            islands += 1
        run = []
    return islands
