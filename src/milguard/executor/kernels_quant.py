"""Activation quantization (iOS17 ``quantize`` / ``dequantize``), per tensor or per channel on ``axis``.

quantize:   q = clip(round(x / scale) + zero_point) to the range of the int8 / uint8 output
dequantize: x = (q - zero_point) * scale
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .semantics import wide


def _along(param, x: np.ndarray, axis) -> np.ndarray:
    """A scale / zero point that is a scalar, or a vector laid along ``axis`` of x."""
    v = wide(np.asarray(param)).astype(np.float32)
    if v.ndim == 1 and axis is not None:
        shape = [1] * x.ndim
        shape[int(axis) % x.ndim] = -1
        return v.reshape(shape)
    return v


def _quantize(a, s):
    x = wide(a["input"]).astype(np.float32)
    axis = a.get("axis")
    zero = _along(a.get("zero_point", 0), x, axis)
    info = np.iinfo(s.dtype)
    return np.clip(np.round(x / _along(a["scale"], x, axis)) + zero, info.min, info.max)


def _dequantize(a, s):
    q = np.asarray(a["input"]).astype(np.float32)
    axis = a.get("axis")
    return (q - _along(a.get("zero_point", 0), q, axis)) * _along(a["scale"], q, axis)


KERNELS: dict[str, Callable] = {
    "quantize": _quantize,
    "dequantize": _dequantize,
}
