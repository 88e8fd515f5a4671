"""Static shapes of MIL vars: symbolic (dynamic) dimensions, ranks, element counts and byte sizes.

``tensor_info`` memoizes per MIL type (tensor types are shared classes), so analyses that look
at every var of a large program pay coremltools' type introspection once per distinct type.
"""
from __future__ import annotations

import math
from functools import lru_cache

from coremltools.converters.mil import Var
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

# bytes per element of the MIL dtypes that appear in ML programs
_ITEM_BYTES = {
    "fp16": 2, "fp32": 4, "fp64": 8, "bf16": 2,
    "int4": 0.5, "uint4": 0.5, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "bool": 1,
}


@lru_cache(maxsize=8192)
def _info(sym: type) -> tuple[str | None, tuple] | None:
    try:
        if types.is_tensor(sym):
            return _dtype_string(sym.get_primitive()), tuple(sym.get_shape())
        if types.is_scalar(sym):
            return _dtype_string(sym), ()
    except Exception:  # noqa: BLE001 - unusual MIL types are simply not tensors
        pass
    return None


def _dtype_string(builtin: type) -> str | None:
    try:
        return types.builtin_to_string(builtin)
    except Exception:  # noqa: BLE001
        return None


def tensor_info(var: Var) -> tuple[str | None, tuple] | None:
    """(dtype name, shape) of a tensor or scalar var (shape () for scalars); None otherwise."""
    sym = getattr(var, "sym_type", None)
    if sym is None:
        return None
    try:
        return _info(sym)
    except TypeError:                   # an unhashable type: no memo
        return _info.__wrapped__(sym)


def shape_of(var: Var) -> tuple | None:
    """The shape of a tensor or scalar var (() for scalars); None for other kinds of var."""
    info = tensor_info(var)
    return info[1] if info is not None else None


def numel(var: Var) -> int:
    """Number of elements of a tensor var with a static shape; 0 if it is dynamic or not a tensor."""
    shape = shape_of(var)
    if shape is None or any(is_symbolic(d) for d in shape):
        return 0
    return int(math.prod(int(d) for d in shape))


def nbytes(var: Var) -> float:
    """Bytes of a statically shaped tensor var (0 for dynamic shapes, strings and non-tensors)."""
    info = tensor_info(var)
    if info is None or info[0] is None:
        return 0.0
    return numel(var) * _ITEM_BYTES.get(info[0], 0)
