"""The facts about one op that placement rules look at, computed once per op.

Rules are predicates over these facts, so every rule reads the same view of an op: the
dtypes and shapes of its tensor inputs and outputs, which inputs are compile-time constants,
whether a shape is symbolic, and its FLOP estimate.
"""
from __future__ import annotations

from dataclasses import dataclass

from milguard.mil import Operation, const_value, dtype_name, op_inputs
from milguard.mil.shapes import is_dynamic, is_tensor_like, nbytes, shape_of

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
        return var is None or const_value(var) is not None


def is_unplaced(op: Operation) -> bool:
    """Const and constexpr_* ops: folded at compile time, no device (MLComputePlan reports none)."""
    return op.op_type in UNPLACED_TYPES or op.op_type.startswith("constexpr_")


def op_facts(op: Operation) -> OpFacts:
    inputs = [v for _, v in op_inputs(op) if is_tensor_like(v)]
    outputs = [v for v in op.outputs if is_tensor_like(v)]
    runtime_inputs = [v for v in inputs if const_value(v) is None]
    # scalar constants (epsilon, alpha, constant_val) do not set an op's precision
    typed = [v for v in inputs if const_value(v) is None or (shape_of(v) or ()) != ()]
    dtypes_all = {dtype_name(v) for v in (*typed, *outputs)}
    return OpFacts(
        op=op,
        op_type=op.op_type,
        name=op.name,
        float_dtypes=frozenset(dtypes_all & FLOAT_DTYPES),
        runtime_int_dtypes=frozenset({dtype_name(v) for v in runtime_inputs} & INT_DTYPES),
        output_int_dtypes=frozenset({dtype_name(v) for v in outputs} & INT_DTYPES),
        shapes=tuple(shape_of(v) for v in (*inputs, *outputs)),
        dynamic=any(is_dynamic(v) for v in (*runtime_inputs, *outputs)),
        flops=flops(op),
        bytes=sum(nbytes(v) for v in (*inputs, *outputs)),
    )
