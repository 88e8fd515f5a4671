"""What a function declares about its inputs: dtype, shape, the bounds of flexible dims, states.

A flexible input dim is a symbol in the program (``(1, is0, 16)``); its bounds live elsewhere:

* a saved or loaded model: in the spec's input description, ``multiArrayType.shapeRange``
  (``ct.RangeDim``: one ``[lowerBound, upperBound]`` per dim, ``upperBound = -1`` unbounded) or
  ``multiArrayType.enumeratedShapes`` (``ct.EnumeratedShapes``); states in ``description.state``
  (multi-function models: the same per entry of ``description.functions``);
* a program fresh from ``ct.convert``: in ``function.input_types`` (the ``ct.TensorType`` list);
* a program built with the MIL builder: nowhere: a symbolic dim is then any size >= 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import Function, dtype_name, types


@dataclass(frozen=True)
class DeclaredInput:
    """One input of a function as declared: dims are ints, or symbol names for flexible dims."""

    name: str
    dtype: str | None                                    # 'fp16', 'int32', ...; a state's wrapped dtype
    shape: tuple[int | str, ...] | None
    bounds: tuple[tuple[int, int | None], ...] | None = None   # per dim (lower, upper; None: unbounded)
    shapes: tuple[tuple[int, ...], ...] | None = None          # the only shapes allowed (EnumeratedShapes)
    state: bool = False


def declared_inputs(function: Function, spec: Any = None, name: str = "main") -> dict[str, DeclaredInput]:
    """{input name: DeclaredInput} of ``function`` (named ``name``), bounds from ``spec`` (a
    ``Model_pb2.Model``) when given, else from the function's converter input types."""
    described = _described(spec, name)
    given = {t.name: t for t in getattr(function, "input_types", None) or () if getattr(t, "name", None)}
    out: dict[str, DeclaredInput] = {}
    for key, var in function.inputs.items():
        state = types.is_state(var.sym_type)
        dtype = dtype_name(var)
        shape = tuple(int(d) if isinstance(d, (int, np.integer)) else str(d) for d in var.shape) \
            if getattr(var, "shape", None) is not None else None
        bounds, shapes = described.get(key) or _from_input_type(given.get(key))
        out[key] = DeclaredInput(key, dtype, shape, bounds, shapes, state)
    return out


def _described(spec: Any, name: str) -> dict[str, tuple]:
    """{input name: (bounds, shapes)} from a spec's description of function ``name``."""
    if spec is None:
        return {}
    desc = spec.description
    inputs = list(desc.input)
    for fn in getattr(desc, "functions", ()):
        if fn.name == name:
            inputs = list(fn.input)
    out: dict[str, tuple] = {}
    for feature in inputs:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        array = feature.type.multiArrayType
        kind = array.WhichOneof("ShapeFlexibility")
        if kind == "shapeRange":
            out[feature.name] = (tuple((int(r.lowerBound), None if r.upperBound < 0 else int(r.upperBound))
                                       for r in array.shapeRange.sizeRanges), None)
        elif kind == "enumeratedShapes":
            out[feature.name] = (None, tuple(tuple(int(d) for d in s.shape) for s in array.enumeratedShapes.shapes))
    return out


def _from_input_type(input_type: Any) -> tuple:
    """(bounds, shapes) from a ``ct.TensorType``'s ``Shape`` (RangeDim dims) or ``EnumeratedShapes``."""
    shape = getattr(input_type, "shape", None)
    if shape is None:
        return None, None
    if hasattr(shape, "shapes"):
        return None, tuple(tuple(int(d) for d in s.shape) for s in shape.shapes)
    dims = getattr(shape, "shape", None) or ()
    if not any(hasattr(d, "lower_bound") for d in dims):
        return None, None
    return tuple((int(d.lower_bound), None if int(d.upper_bound) < 0 else int(d.upper_bound))
                 if hasattr(d, "lower_bound") else (int(d), int(d)) for d in dims), None
