"""Spatial resizing of the last two axes: nearest-neighbour and bilinear, MIL's grid conventions.

Bilinear interpolation is separable: along each axis, y[i] = (1 - w) x[floor(g)] + w x[floor(g) + 1]
with g the grid point of output i. fp16-typed ops interpolate in float32 and round once.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .semantics import wide


def grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """Source coordinates of the output samples (MIL's sampling modes), clamped to [0, size_in - 1]."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            g = np.full(1, (size_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            g = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        g = i * ((size_in - size_in / size_out) / (size_out - 1)) if size_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        g = i * spacing + 0.5 * spacing - 0.5
    elif mode == "ASYMMETRIC":                         # upsample_bilinear without half-pixel centres
        g = i * (size_in / size_out)
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return np.clip(g, 0.0, size_in - 1)


def _interpolate(x: np.ndarray, axis: int, g: np.ndarray) -> np.ndarray:
    lo = np.floor(g).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    w = (g - lo).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def bilinear(x: np.ndarray, out_h: int, out_w: int, mode: str) -> np.ndarray:
    x = wide(x)
    y = _interpolate(x, -2, grid(x.shape[-2], out_h, mode))
    return _interpolate(y, -1, grid(x.shape[-1], out_w, mode))


def _scaled(size: int, factor) -> int:
    return int(np.floor(size * float(factor)))


def _upsample_bilinear(a, s):
    x = a["x"]
    sh, sw = a.get("scale_factor_height", 1), a.get("scale_factor_width", 1)
    align = bool(a.get("align_corners", True))
    half_pixel = a.get("half_pixel_centers")
    half_pixel = (not align) if half_pixel is None else bool(half_pixel)
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half_pixel else "ASYMMETRIC")
    return bilinear(x, _scaled(x.shape[-2], sh), _scaled(x.shape[-1], sw), mode)


def _resize_bilinear(a, s):
    x = a["x"]
    h, w = int(a.get("target_size_height", 1)), int(a.get("target_size_width", 1))
    return bilinear(x, h, w, str(a.get("sampling_mode", "DEFAULT")))


def _nearest(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Output pixel i reads input floor(i * in / out)."""
    rows = np.minimum((np.arange(out_h) * x.shape[-2]) // out_h, x.shape[-2] - 1)
    cols = np.minimum((np.arange(out_w) * x.shape[-1]) // out_w, x.shape[-1] - 1)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)


def _upsample_nearest(a, s):
    x = a["x"]
    sh, sw = float(a.get("scale_factor_height", 1)), float(a.get("scale_factor_width", 1))
    out_h, out_w = _scaled(x.shape[-2], sh), _scaled(x.shape[-1], sw)
    rows = np.minimum(np.floor(np.arange(out_h) / sh).astype(np.int64), x.shape[-2] - 1)
    cols = np.minimum(np.floor(np.arange(out_w) / sw).astype(np.int64), x.shape[-1] - 1)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)


def _resize(a, s):
    """iOS17 resize: the last ``resized_dims`` axes to ``shape[-resized_dims:]`` (0 keeps the input size).

    LINEAR interpolates separably with the sampling mode's grid; NEAREST_NEIGHBOR reads input
    floor(i * in / out) as resize_nearest_neighbor does.
    """
    x = a["x"]
    r = int(a["resized_dims"])
    target = [int(v) for v in np.atleast_1d(a["shape"])][-r:] if r else []
    mode, sampling = str(a.get("interpolation_mode", "LINEAR")), str(a.get("sampling_mode", "DEFAULT"))
    y = wide(x) if mode == "LINEAR" else x
    for axis, size in zip(range(x.ndim - r, x.ndim), target):
        size = size or x.shape[axis]
        if mode == "LINEAR":
            y = _interpolate(y, axis, grid(x.shape[axis], size, sampling))
        else:
            y = np.take(y, np.minimum((np.arange(size) * x.shape[axis]) // size, x.shape[axis] - 1), axis=axis)
    return y


KERNELS: dict[str, Callable] = {
    "resize": _resize,
    "upsample_bilinear": _upsample_bilinear,
    "resize_bilinear": _resize_bilinear,
    "upsample_nearest_neighbor": _upsample_nearest,
    "resize_nearest_neighbor": lambda a, s: _nearest(a["x"], int(a["target_size_height"]), int(a["target_size_width"])),
}
