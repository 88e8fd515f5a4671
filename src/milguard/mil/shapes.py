"""Static shapes of MIL vars: symbolic (dynamic) dimensions, ranks, element counts and byte sizes."""
from __future__ import annotations

import math

from coremltools.converters.mil.mil import Var, types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

# bytes per element of the MIL dtypes that appear in ML programs
_ITEM_BYTES = {
    "fp16": 2, "fp32": 4, "fp64": 8, "bf16": 2,
    "int4": 0.5, "uint4": 0.5, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "bool": 1,
}


def is_tensor_like(var: Var) -> bool:
    """True for tensors and scalars (not lists, tuples, states or dictionaries)."""
    sym = getattr(var, "sym_type", None)
    return sym is not None and (types.is_tensor(sym) or types.is_scalar(sym))


def shape_of(var: Var) -> tuple | None:
    """The shape of a tensor or scalar var (() for scalars); None for other kinds of var."""
    if not is_tensor_like(var):
        return None
    return tuple(var.shape) if var.shape is not None else ()


def is_dynamic(var: Var) -> bool:
    """True when any dimension of a tensor var is symbolic (RangeDim, flexible or data dependent)."""
    shape = shape_of(var)
    return shape is not None and any(is_symbolic(d) for d in shape)


def numel(var: Var) -> int:
    """Number of elements of a tensor var with a static shape; 0 if it is dynamic or not a tensor."""
    shape = shape_of(var)
    if shape is None or any(is_symbolic(d) for d in shape):
        return 0
    return int(math.prod(int(d) for d in shape))


def nbytes(var: Var) -> float:
    """Bytes of a statically shaped tensor var (0 for dynamic shapes and non-tensors)."""
    if not is_tensor_like(var):
        return 0.0
    try:
        name = types.builtin_to_string(var.dtype)
    except Exception:  # noqa: BLE001 - unusual element types carry no size
        return 0.0
    return numel(var) * _ITEM_BYTES.get(name, 0)          # strings and other non-numeric: 0
