"""The value range the static analysis assumes for each function input, and why.

Per input, in order (``origin`` in brackets, as the report's ``input_range_origins`` names it):

* the caller's range (``given``: ``input_ranges={"x": (lo, hi)}``, ``--input-range x=LO:HI``);
* float inputs: ``[-1, 1]`` (``default``) — normalised activations, the assumption under which a
  static finding means "this op overflows even for tame inputs"; pass the real range of your
  inputs, or calibrate, for anything else;
* integer inputs read as gather indices (``indices``): ``[0, n - 1]``, with n the size of the
  gathered axis (the smallest, if several gathers read it) — token ids into an embedding table.
  "Read as" follows the input through casts, reshapes, slices and the ``select(i >= 0, i, i + n)``
  that coremltools emits for negative indices of ``torch.nn.Embedding``;
* other integer inputs: the full range of their dtype (``dtype``): nothing in the program bounds
  them, so the analysis does not invent a bound;
* bool inputs: ``[0, 1]`` (``dtype``).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..mil import const_value, dtype_name
from .interval import INF

DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
GATHERS = ("gather", "gather_along_axis")
# ops whose integer output holds the same index values as their input (some of them, or reshaped)
SAME_INDICES = ("cast", "identity", "reshape", "expand_dims", "squeeze", "transpose",
                "slice_by_index", "slice_by_size", "select")


def input_range(var: Any, given: Mapping[str, tuple[float, float]]) -> tuple[float, float, str]:
    """(lo, hi, origin) for the function input ``var``."""
    if var.name in given:
        lo, hi = given[var.name]
        return float(lo), float(hi), "given"
    dt = dtype_name(var)
    if dt is None:
        return -INF, INF, "dtype"
    if dt == "bool":
        return 0.0, 1.0, "dtype"
    if dt.startswith(("int", "uint")):
        n = gathered_size(var)
        if n is not None:
            return 0.0, float(n - 1), "indices"
        info = np.iinfo(dt)
        return float(info.min), float(info.max), "dtype"
    return (*DEFAULT_FLOAT_RANGE, "default")


def gathered_size(var: Any) -> int | None:
    """The smallest static size of an axis ``var`` indexes through a gather (None when none does)."""
    sizes, todo, seen = [], [var], set()
    while todo:
        v = todo.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        for op in v.child_ops:
            if op.op_type in GATHERS and op.inputs.get("indices") is v:
                n = _axis_size(op)
                if n is not None:
                    sizes.append(n)
            elif op.op_type in SAME_INDICES and _passes_on(op, v):
                todo.extend(out for out in op.outputs if (dtype_name(out) or "").startswith(("int", "uint")))
    return min(sizes) if sizes else None


def _passes_on(op: Any, v: Any) -> bool:
    """``v`` is the value an index-keeping op passes on (``x``; for select, a branch, not the condition)."""
    params = ("a", "b") if op.op_type == "select" else ("x",)
    return any(op.inputs.get(p) is v for p in params)


def _axis_size(op: Any) -> int | None:
    shape = getattr(op.x, "shape", None)
    axis = const_value(op.inputs.get("axis"))
    if not shape:
        return None
    axis = int(np.asarray(axis).reshape(-1)[0]) if axis is not None else 0
    d = shape[axis % len(shape)]
    return int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None
