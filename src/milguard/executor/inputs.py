"""Checking values given for a function's inputs against what it declares, in one place.

``milguard.run``, calibration (API and CLI) and the executor all go through :func:`check_inputs`,
so a bad sample gets the same one-line error wherever it enters:

* names: every input given, none unknown; a **state** input (``ct.StateType``) not given starts as
  zeros of its declared shape and dtype, as ``MLModel.makeState()`` allocates it in Core ML;
* dtype: numbers or booleans only (an ``.npz`` of strings is refused, not cast); an integer input
  takes integer values only;
* shape: the declared rank and static dims; a flexible dim within its ``ct.RangeDim`` bounds, or
  the whole shape among the ``ct.EnumeratedShapes``; one symbol, one size across all inputs.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import MilguardError
from ..mil import np_dtype
from ..mil.inputs import DeclaredInput

_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "c": "complex numbers",
          "U": "strings", "S": "byte strings", "O": "Python objects", "V": "raw records", "M": "dates",
          "m": "time deltas"}


class InputError(MilguardError):
    """The inputs given to the executor do not fit the function's declared inputs."""


def check_inputs(declared: Mapping[str, DeclaredInput], values: Mapping[str, Any],
                 where: str = "") -> dict[str, np.ndarray]:
    """{input name: array} for every declared input (states filled with zeros when not given).

    Raises :class:`InputError` naming ``where`` (a file, a sample) and the input on the first
    value that does not fit its declaration.
    """
    at = f"{where}: " if where else ""
    missing = [name for name, decl in declared.items() if name not in values and not decl.state]
    if missing:
        raise InputError(f"{at}missing input {', '.join(repr(n) for n in missing)} "
                         f"(given: {', '.join(values) or 'none'})")
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InputError(f"{at}unknown input '{unknown[0]}' (the function takes "
                         f"{', '.join(declared) or 'no inputs'})")
    out: dict[str, np.ndarray] = {}
    sizes: dict[str, tuple[int, str]] = {}            # symbol -> (size, the input that set it)
    for name, decl in declared.items():
        value = np.asarray(values[name]) if name in values else _initial_state(decl, at)
        _check_dtype(decl, value, at)
        _check_shape(decl, value, at, sizes)
        out[name] = value
    return out


def _initial_state(decl: DeclaredInput, at: str) -> np.ndarray:
    if decl.shape is None or not all(isinstance(d, int) for d in decl.shape) or decl.dtype is None:
        raise InputError(f"{at}state '{decl.name}' has no static shape to start from zeros: give its value")
    return np.zeros(decl.shape, dtype=np_dtype(decl.dtype))


def _check_dtype(decl: DeclaredInput, value: np.ndarray, at: str) -> None:
    kind = value.dtype.kind
    want = decl.dtype or "a tensor"
    if kind not in "biuf":
        raise InputError(f"{at}input '{decl.name}' holds {_KINDS.get(kind, value.dtype.name)} ({value.dtype}); "
                         f"the model takes {want}")
    if decl.dtype is not None and decl.dtype.startswith(("int", "uint")) and kind == "f":
        finite = value[np.isfinite(value)] if value.size else value
        if finite.size != value.size or not np.array_equal(finite, np.round(finite)):
            raise InputError(f"{at}input '{decl.name}' holds non-integer values; the model takes {decl.dtype}")


def _check_shape(decl: DeclaredInput, value: np.ndarray, at: str, sizes: dict[str, tuple[int, str]]) -> None:
    got = tuple(int(d) for d in value.shape)
    if decl.shapes is not None:
        if got not in decl.shapes:
            allowed = ", ".join(str(s) for s in decl.shapes)
            raise InputError(f"{at}input '{decl.name}' has shape {got}, not one of the model's "
                             f"enumerated shapes {allowed}")
        return
    if decl.shape is None:
        return
    if len(got) != len(decl.shape):
        raise InputError(f"{at}input '{decl.name}' has shape {got}, expected {_show(decl)}")
    for axis, (dim, size) in enumerate(zip(decl.shape, got)):
        lo, hi = decl.bounds[axis] if decl.bounds is not None and axis < len(decl.bounds) else (1, None)
        if isinstance(dim, int):
            if size != dim:
                raise InputError(f"{at}input '{decl.name}' has shape {got}, expected {_show(decl)}")
            continue
        if size < lo or (hi is not None and size > hi):
            span = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, unbounded)"
            raise InputError(f"{at}input '{decl.name}' has {size} along axis {axis}, outside the model's "
                             f"range {span} for that dim")
        seen = sizes.setdefault(dim, (size, decl.name))
        if seen[0] != size:
            raise InputError(f"{at}input '{decl.name}' has {size} along axis {axis} but '{seen[1]}' has "
                             f"{seen[0]} for the same flexible dim '{dim}'")


def _show(decl: DeclaredInput) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "?" for d in decl.shape) + ")"
