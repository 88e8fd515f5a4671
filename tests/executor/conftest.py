"""Builders for small MIL programs used by the executor tests."""
from __future__ import annotations

from typing import Callable, Sequence

import coremltools as ct
import numpy as np
import pytest

from milguard.mil import Function, Program, mb, types

_MIL = {np.dtype(np.float16): types.fp16, np.dtype(np.float32): types.fp32,
        np.dtype(np.int32): types.int32, np.dtype(np.bool_): types.bool}


def build_program(build: Callable, arrays: Sequence[np.ndarray], opset=ct.target.iOS17) -> Program:
    """A one-function program whose inputs x0, x1, ... have the shapes and dtypes of ``arrays``."""
    placeholders = {f"x{i}": mb.placeholder(shape=a.shape, dtype=_MIL[a.dtype]) for i, a in enumerate(arrays)}
    prog = Program()
    with Function(placeholders, opset_version=opset) as fn:
        out = build(*[fn.inputs[f"x{i}"] for i in range(len(arrays))])
        fn.set_outputs(list(out) if isinstance(out, (list, tuple)) else [out])
        prog.add_function("main", fn)
    return prog


@pytest.fixture
def program_of() -> Callable[..., Program]:
    return build_program
