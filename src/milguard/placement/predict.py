"""Expected device of every op: the rules table per op, then two region policies.

Algorithm (one linear pass per step, ops in program order — a topological order in MIL):

1. **Per op.** Every op that is not a const gets the first rule of ``rules.RULES`` that
   applies. Ops inside the blocks of a ``cond``/``while_loop`` take their parent's placement.
2. **Compute units.** Verdict ``ane`` → ``ane`` (``gpu`` under CPU_AND_GPU); ``cpu`` → ``cpu``;
   ``off_ane`` → ``cpu`` under CPU_AND_NE, ``gpu`` under CPU_AND_GPU, and under ALL per run of
   consecutive non-ANE ops: ``gpu`` if the run has ``gpu_region_min_ops`` ops or
   ``gpu_region_min_flops`` FLOPs, else ``cpu`` (P2: Core ML ping-pongs ANE↔CPU cheaply but
   switches to the GPU once).
3. **Size floor** (ALL and CPU_AND_NE). If all ops with verdict ``ane`` together do less than
   ``size_floor_flops``, they all go to the CPU with rule ``S1.size_floor`` (small models run
   on the CPU).
4. **Small ANE segments** (maximal runs of ``ane`` ops) doing less than
   ``min_ane_segment_flops`` move to the device of the segment before them, else the one after
   them, else the CPU (P4). Their rule becomes
   ``P4.small_segment``. Moving a segment only merges non-ANE segments, so one pass is a fixed
   point.

Const and ``constexpr_*`` ops get no entry in the result (``MLComputePlan`` reports no device
for them either, O19).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from milguard.errors import MilguardError
from milguard.mil import Block, Function, Operation, Program, load

from .facts import OpFacts, is_unplaced, op_facts
from .rules import RULES_BY_ID, PlacementRule, first_rule
from .target import Chip, PlacementOptions, Target, make_target

DEVICES = ("ane", "gpu", "cpu")


@dataclass(frozen=True)
class Placement:
    """Expected device of one op, the id of the rule that decided it and that rule's certainty."""

    device: str           # "ane" | "gpu" | "cpu"
    rule: str
    certainty: str        # "H" | "M" | "L"

    def to_dict(self) -> dict[str, str]:
        return {"device": self.device, "rule": self.rule, "certainty": self.certainty}


def as_function(model: Any, function: str = "main") -> Function:
    """A MIL Function from a Function, a Program, an MLModel or a path to a package."""
    if isinstance(model, Function):
        return model
    program = model if isinstance(model, Program) else load(model).program
    if function not in program.functions:
        raise MilguardError(f"the program has no function '{function}' "
                            f"(it has {', '.join(program.functions)})")
    return program.functions[function]


def placed_ops(block: Block) -> Iterator[tuple[Operation, Operation | None]]:
    """(op, enclosing control-flow op or None) for every non-const op, in program order."""
    for op in block.operations:
        if is_unplaced(op):
            continue
        yield op, None
        for inner in op.blocks:
            for nested, _ in placed_ops(inner):
                yield nested, op


def predict(function: Any, *, compute_units: Any = "ALL", chip: str | Chip = "M1",
            options: PlacementOptions | None = None) -> dict[str, Placement]:
    """{op name: Placement} for every non-const op of ``function`` ("main" of a program/model)."""
    fn = as_function(function)
    target = make_target(compute_units, chip, options)
    rows: list[tuple[OpFacts, PlacementRule]] = []
    inherited: dict[str, str] = {}                      # nested op name -> parent op name
    for op, parent in placed_ops(fn):
        if parent is None:
            facts = op_facts(op)
            rows.append((facts, first_rule(facts, target)))
        else:
            inherited[op.name] = parent.name
    devices = _assign_devices(rows, target)
    region_rule = (_size_floor(rows, devices, target)
                   or _demote_small_ane_segments(rows, devices, target))
    result: dict[str, Placement] = {}
    for (facts, rule), device in zip(rows, devices):
        if rule.verdict == "ane" and device != _ane(target):
            rule = region_rule
        result[facts.name] = Placement(device, rule.id, rule.certainty)
    for name, parent in inherited.items():
        result[name] = result[parent]
    return result


def _ane(target: Target) -> str:
    return "gpu" if target.compute_units == "CPU_AND_GPU" else "ane"


def _assign_devices(rows: list[tuple[OpFacts, PlacementRule]], target: Target) -> list[str]:
    units = target.compute_units
    fixed = {"ane": _ane(target), "cpu": "cpu"}
    off_ane = {"CPU_AND_NE": "cpu", "CPU_AND_GPU": "gpu", "CPU_ONLY": "cpu"}.get(units)
    devices = [fixed.get(rule.verdict, off_ane) for _, rule in rows]
    if units != "ALL":
        return devices
    opts = target.options
    for start, stop in _runs([rule.verdict != "ane" for _, rule in rows]):
        run = rows[start:stop]
        large = (len(run) >= opts.gpu_region_min_ops
                 or sum(f.flops for f, _ in run) >= opts.gpu_region_min_flops)
        for i in range(start, stop):
            if rows[i][1].verdict == "off_ane":
                devices[i] = "gpu" if large else "cpu"
    return devices


def _size_floor(rows: list[tuple[OpFacts, PlacementRule]], devices: list[str],
                target: Target) -> PlacementRule | None:
    eligible = [i for i, (_, rule) in enumerate(rows) if rule.verdict == "ane"]
    work = sum(rows[i][0].flops for i in eligible)
    if target.compute_units not in ("ALL", "CPU_AND_NE") or not eligible \
            or work >= target.options.size_floor_flops:
        return None
    for i in eligible:
        devices[i] = "cpu"
    return RULES_BY_ID["S1.size_floor"]


def _demote_small_ane_segments(rows: list[tuple[OpFacts, PlacementRule]], devices: list[str],
                               target: Target) -> PlacementRule:
    floor = target.options.min_ane_segment_flops
    for start, stop in _runs([d == "ane" for d in devices]):
        if sum(rows[i][0].flops for i in range(start, stop)) >= floor:
            continue
        if start > 0:
            neighbour = devices[start - 1]
        else:
            neighbour = devices[stop] if stop < len(devices) else "cpu"
        devices[start:stop] = [neighbour] * (stop - start)
    return RULES_BY_ID["P4.small_segment"]


def _runs(flags: list[bool]) -> Iterator[tuple[int, int]]:
    """[start, stop) of every maximal run of True."""
    start = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            yield start, i
            start = None
