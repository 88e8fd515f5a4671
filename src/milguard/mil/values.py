"""Values coremltools computes for ops whose result is fixed at compile time."""
from __future__ import annotations

from typing import Any

import numpy as np

from coremltools.converters.mil import Operation


def materialized(op: Operation) -> tuple[np.ndarray, ...]:
    """The decompressed outputs of a ``constexpr_*`` op (dequantized / palettized / sparse weights).

    Uses the op's own ``materialized_val_inference`` (the definition of the op's semantics in
    coremltools), so every opset version of a constexpr op decodes exactly as the converter does.
    """
    value: Any = op.materialized_val_inference()
    values = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(np.asarray(v) for v in values)
