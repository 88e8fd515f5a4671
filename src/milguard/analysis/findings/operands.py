"""What the rules ask about an op's operands: float inputs, fp16 contact, the ``x`` input."""
from __future__ import annotations

from typing import Any

from ...mil import dtype_name, op_inputs

FLOAT_DTYPES = ("fp16", "fp32", "fp64")


def float_inputs(op: Any) -> list[tuple[str, Any]]:
    return [(p, v) for p, v in op_inputs(op) if dtype_name(v) in FLOAT_DTYPES]


def touches_fp16(op: Any) -> bool:
    return any(dtype_name(v) == "fp16" for v in op.outputs) or \
        any(dtype_name(v) == "fp16" for _, v in op_inputs(op))


def x_input(op: Any) -> Any:
    """The single var bound to ``x`` (None when absent or a list)."""
    x = op.inputs.get("x")
    return None if x is None or isinstance(x, (list, tuple)) else x


def origin(var: Any) -> str:
    """The op that produced ``var`` (the input's name for a function input)."""
    return var.op.name if var.op is not None else var.name
