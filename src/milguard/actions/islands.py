"""Rebuild a set of ops of an fp16 program in fp32, with one cast per island entry and exit.

For every op of the island, in program order, an fp32 copy is built next to it. Its inputs are:
  * the fp32 copy, when the input comes from another island op (adjacent islands merge: no
    fp32 -> fp16 -> fp32 round trip is ever left between them);
  * the most precise fp32 value reachable up a chain of float casts: right after coremltools'
    ``add_fp16_cast`` every constant is still ``cast(fp32 const)``, so eps = 1e-12 and gamma stay
    exact; a value that a converted op produced is read before it was rounded to fp16;
  * a widened copy of an fp16 constant (a loaded fp16 package: the fp32 value is gone);
  * otherwise one shared ``cast(x, fp32)`` per entry value.
Outputs read outside the island get one ``cast(fp16)``; consumers that only cast the value back to
fp32 read the fp32 copy directly. An island none of whose compute ops is fp16 is left alone, and so
are ops already computing in fp32 from their most precise inputs: applying an island twice, or to
an fp32 program, changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mil import FP16_CAST_SUFFIX, Block, Operation, Var, dtype_name, op_inputs, rewrite

FLOATS = ("fp16", "fp32")


@dataclass
class IslandStats:
    rebuilt: int = 0
    entry_casts: int = 0
    exit_casts: int = 0

    def __iadd__(self, other: "IslandStats") -> "IslandStats":
        self.rebuilt += other.rebuilt
        self.entry_casts += other.entry_casts
        self.exit_casts += other.exit_casts
        return self


def _is_float_cast(op: Operation | None) -> bool:
    return op is not None and op.op_type == "cast" and dtype_name(op.inputs["x"]) in FLOATS \
        and dtype_name(op.outputs[0]) in FLOATS


def _best_fp32(var: Var, fp32_of: dict[Var, Var]) -> Var | None:
    """The fp32 var furthest up ``var``'s chain of float casts (or an island copy met on the way)."""
    best = None
    v = var
    while True:
        if v in fp32_of:
            return fp32_of[v]
        if dtype_name(v) == "fp32":
            best = v
        if not _is_float_cast(v.op):
            return best
        v = v.op.inputs["x"]


def _needs_rebuild(op: Operation, fp32_of: dict[Var, Var]) -> bool:
    if any(dtype_name(o) == "fp16" for o in op.outputs):
        return True
    return any(dtype_name(v) in FLOATS and _best_fp32(v, fp32_of) is not v for _, v in op_inputs(op))


def insert_cast_islands(block: Block, island: set[Operation]) -> IslandStats:
    """Make the ops of ``island`` (all in ``block``) compute in fp32; see the module docstring."""
    with block:  # the builder inserts into the innermost block entered
        return _insert(block, island)


def _insert(block: Block, island: set[Operation]) -> IslandStats:
    stats = IslandStats()
    ordered = [op for op in block.operations if op in island]
    if not any(dtype_name(o) == "fp16" for op in ordered if not _is_float_cast(op) for o in op.outputs):
        return stats                          # already fp32 (an fp32 program, or applied before)
    fp32_of: dict[Var, Var] = {}        # original var -> its fp32 value inside the island
    entry_cast: dict[Var, Var] = {}
    rebuilt: list[Operation] = []
    taken = rewrite.names_in(block)

    def as_fp32(v: Var, consumer: Operation):
        if dtype_name(v) not in FLOATS:
            return v
        best = _best_fp32(v, fp32_of)
        if best is not None:
            return best
        if v.op is not None and v.op.op_type == "const":
            return np.asarray(v.val, dtype=np.float32)
        if v not in entry_cast:
            entry_cast[v] = rewrite.cast(v, "fp32", consumer, rewrite.fresh(taken, f"{v.name}_to_fp32"))
            stats.entry_casts += 1
        return entry_cast[v]

    for op in ordered:
        if _is_float_cast(op):                    # a cast inside an fp32 island is the identity
            fp32_of[op.outputs[0]] = as_fp32(op.inputs["x"], op)
            rebuilt.append(op)
            continue
        if not _needs_rebuild(op, fp32_of):
            continue
        inputs = {}
        for param, value in op.inputs.items():
            if isinstance(value, (list, tuple)):
                inputs[param] = [as_fp32(v, op) for v in value]
            else:
                inputs[param] = as_fp32(value, op)
        base = op.name.removesuffix(FP16_CAST_SUFFIX)
        new_outputs = rewrite.rebuild(op, inputs, rewrite.fresh(taken, f"{base}_fp32"))
        fp32_of.update(zip(op.outputs, new_outputs))
        rebuilt.append(op)
        stats.rebuilt += 1

    inside = set(rebuilt)
    dead: list[Operation] = []
    for op in rebuilt:
        for old in op.outputs:
            new = fp32_of[old]
            readers = [c for c in old.child_ops if c not in inside]
            for reader in readers:
                if _is_float_cast(reader) and dtype_name(reader.outputs[0]) == "fp32":
                    rewrite.replace_uses(block, reader, reader.outputs[0], new)
                    dead.append(reader)
            if not (any(r not in dead for r in readers) or old in block.outputs):
                continue
            # anchored at the producer of ``old``: coremltools then visits only its readers
            if dtype_name(old) == dtype_name(new):
                rewrite.replace_uses(block, op, old, new)
                continue
            exit_name = rewrite.fresh(taken, f"{old.name.removesuffix(FP16_CAST_SUFFIX)}_fp16")
            back = rewrite.cast(new, dtype_name(old), op, exit_name, like=op)
            rewrite.replace_uses(block, op, old, back)
            stats.exit_casts += 1
    rewrite.remove(block, dead + rebuilt)
    return stats
