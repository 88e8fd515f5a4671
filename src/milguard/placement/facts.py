"""The facts about one op that placement rules look at, computed once per op.

Rules are predicates over these facts, so every rule reads the same view of an op: the
dtypes and shapes of its tensor inputs and outputs, which inputs are compile-time constants,
whether a shape is symbolic, and its FLOP estimate.
"""
from __future__ import annotations

from dataclasses import dataclass

from milguard.mil import Operation, const_value, op_inputs
from milguard.mil.shapes import is_symbolic, nbytes, tensor_info

from .flops import flops

FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64", "bf16"})
INT_DTYPES = frozenset({"int4", "uint4", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                        "int64"})
UNPLACED_TYPES = frozenset({"const", "_const_symbolic"})   # and every constexpr_* op


@dataclass(frozen=True)
class OpFacts:
    op: Operation
    op_type: str
    name: str
    float_dtypes: frozenset[str]          # float dtypes of outputs and non-scalar inputs
    runtime_int_dtypes: frozenset[str]    # integer dtypes of non-constant inputs
    output_int_dtypes: frozenset[str]     # integer dtypes of outputs
    shapes: tuple[tuple, ...]             # shapes of all tensor inputs and outputs
    dynamic: bool                         # a non-constant input or an output has a symbolic dim
    flops: float
    bytes: float                          # bytes read (inputs, weights included) and written

    @property
    def fp32(self) -> bool:
        return "fp32" in self.float_dtypes

    @property
    def max_rank(self) -> int:
        return max((len(s) for s in self.shapes), default=0)

    def const(self, param: str) -> bool:
        """True when the named input is absent or known at compile time."""
        var = self.op.inputs.get(param)
        return var is None or is_compile_time(var)


def is_unplaced(op: Operation) -> bool:
    """Const and constexpr_* ops: folded at compile time, no device (MLComputePlan reports none)."""
    return op.op_type in UNPLACED_TYPES or op.op_type.startswith("constexpr_")


def is_compile_time(var) -> bool:
    """A var known at compile time: a constant, a folded value, or a constexpr_* weight
    (palettized, sparse or quantized weights are decompressed when the model is compiled)."""
    if isinstance(var, (list, tuple)):
        return all(is_compile_time(v) for v in var)
    producer = getattr(var, "op", None)
    return (producer is not None and is_unplaced(producer)) or const_value(var) is not None


def op_facts(op: Operation) -> OpFacts:
    inputs = [(v, tensor_info(v)) for _, v in op_inputs(op)]
    inputs = [(v, info, is_compile_time(v)) for v, info in inputs if info is not None]
    outputs = [tensor_info(v) for v in op.outputs]
    outputs = [info for info in outputs if info is not None]
    runtime = [info for _, info, const in inputs if not const]
    # scalar constants (epsilon, alpha, constant_val) do not set an op's precision
    typed = [info for _, info, const in inputs if not const or info[1] != ()]
    dtypes_all = {info[0] for info in (*typed, *outputs)}
    every = [info for _, info, _ in inputs] + outputs
    return OpFacts(
        op=op,
        op_type=op.op_type,
        name=op.name,
        float_dtypes=frozenset(dtypes_all & FLOAT_DTYPES),
        runtime_int_dtypes=frozenset({info[0] for info in runtime} & INT_DTYPES),
        output_int_dtypes=frozenset({info[0] for info in outputs} & INT_DTYPES),
        shapes=tuple(info[1] for info in every),
        dynamic=any(is_symbolic(d) for info in (*runtime, *outputs) for d in info[1]),
        flops=flops(op),
        bytes=sum(nbytes(v) for v, _, _ in inputs) + sum(nbytes(v) for v in op.outputs),
    )
