"""Convolution, transposed convolution and pooling over 1-3 spatial axes (layout N, C, *D).

Convolutions are im2col + (batched, per group) matmul through the op's accumulator, so fp16
accumulation applies to the C_in·K-long dot products. fp16 hazard: a conv over many channels of
large activations overflows its partial sums exactly like a matmul.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .semantics import wide


def pads(pad_type: str, sizes, kernel, strides, dilations, pad=None) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis for MIL's pad types valid/same/same_lower/custom."""
    n = len(sizes)
    if pad_type == "custom":
        flat = [int(v) for v in np.atleast_1d(pad)] if pad is not None else [0] * 2 * n
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for size, k, st, d in zip(sizes, kernel, strides, dilations):
            eff = (k - 1) * d + 1
            total = max(0, st * math.ceil(size / st) - size + eff - st)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    return [(0, 0)] * n


def _ints(value, n: int, default: int) -> list[int]:
    return [default] * n if value is None else [int(v) for v in np.atleast_1d(value)]


def _windows(x: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """View (N, C, *O, *K) of the already padded x."""
    n = len(kernel)
    spatial = tuple(range(2, 2 + n))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = sliding_window_view(x, eff, axis=spatial)
    index = (slice(None), slice(None)) + tuple(slice(None, None, st) for st in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _conv(a, s):
    x, w = wide(a["x"]), wide(a["weight"])
    n = x.ndim - 2
    kernel = list(w.shape[2:])
    strides, dilations = _ints(a.get("strides"), n, 1), _ints(a.get("dilations"), n, 1)
    groups = int(a.get("groups", 1))
    p = pads(str(a.get("pad_type", "valid")), x.shape[2:], kernel, strides, dilations, a.get("pad"))
    xp = np.pad(x, [(0, 0), (0, 0)] + p)
    win = _windows(xp, kernel, strides, dilations)              # N, C, *O, *K
    batch, cin = x.shape[:2]
    outs = win.shape[2:2 + n]
    cout, cg = w.shape[0], cin // groups
    win = win.reshape((batch, groups, cg) + outs + tuple(kernel))
    order = (1, 0) + tuple(range(3, 3 + n)) + (2,) + tuple(range(3 + n, 3 + 2 * n))
    cols = win.transpose(order).reshape(groups, -1, cg * int(np.prod(kernel)))
    wm = w.reshape(groups, cout // groups, -1).transpose(0, 2, 1)
    out = s.acc.matmul(cols, wm)                                 # G, N*O, Cout/G
    out = out.reshape((groups, batch) + outs + (cout // groups,))
    out = out.transpose((1, 0, n + 2) + tuple(range(2, 2 + n))).reshape((batch, cout) + outs)
    return _bias(out, a.get("bias"), s.acc, n)


def _bias(out: np.ndarray, bias, acc, n: int) -> np.ndarray:
    return out if bias is None else acc.round(out) + wide(bias).reshape((-1,) + (1,) * n)


def _conv_transpose(a, s):
    """Scatter form: y[i*s + j*d] += x[i] · W[j], then crop the padding (and pad to output_shape)."""
    x, w = wide(a["x"]), wide(a["weight"])                       # w: Cin, Cout/G, *K
    n = x.ndim - 2
    kernel = list(w.shape[2:])
    strides, dilations = _ints(a.get("strides"), n, 1), _ints(a.get("dilations"), n, 1)
    groups = int(a.get("groups", 1))
    batch, cin = x.shape[:2]
    ins = x.shape[2:]
    og = w.shape[1]
    cols = x.reshape((batch, groups, cin // groups, -1)).transpose(1, 0, 3, 2)        # G, N, I, Cg
    wm = w.reshape(groups, cin // groups, og * int(np.prod(kernel)))
    contrib = s.acc.matmul(cols.reshape(groups, -1, cin // groups), wm)              # G, N*I, Og*K
    contrib = contrib.reshape((groups, batch) + tuple(ins) + (og,) + tuple(kernel))
    full = [(i - 1) * st + (k - 1) * d + 1 for i, st, k, d in zip(ins, strides, kernel, dilations)]
    y = np.zeros((groups, batch, og) + tuple(full), dtype=contrib.dtype)
    move = (0, 1, 2 + n) + tuple(range(2, 2 + n)) + tuple(range(3 + n, 3 + 2 * n))
    contrib = contrib.transpose(move)                                                 # G, N, Og, *I, *K
    for offset in np.ndindex(*kernel):
        target = (slice(None),) * 3 + tuple(
            slice(j * d, j * d + (i - 1) * st + 1, st) for j, d, i, st in zip(offset, dilations, ins, strides))
        y[target] = s.acc.round(y[target] + contrib[(Ellipsis,) + offset])
    y = y.transpose((1, 0, 2) + tuple(range(3, 3 + n))).reshape((batch, groups * og) + tuple(full))
    out_sizes = _transpose_out_sizes(a, s, ins, full, strides, n)
    pad_type = str(a.get("pad_type", "valid"))
    if pad_type == "custom":
        before = [pb for pb, _ in pads("custom", ins, kernel, strides, dilations, a.get("pad"))]
    else:
        before = [max(0, f - o) // 2 for f, o in zip(full, out_sizes)] if pad_type == "same" else [0] * n
    y = np.pad(y, [(0, 0), (0, 0)] + [(0, max(0, b + o - f)) for b, o, f in zip(before, out_sizes, full)])
    y = y[(slice(None), slice(None)) + tuple(slice(b, b + o) for b, o in zip(before, out_sizes))]
    return _bias(y, a.get("bias"), s.acc, n)


def _transpose_out_sizes(a, s, ins, full, strides, n) -> list[int]:
    shape = s.shape
    if shape is not None and all(isinstance(v, int) for v in shape[2:]):
        return list(shape[2:])
    if a.get("output_shape") is not None:
        return [int(v) for v in np.atleast_1d(a["output_shape"])][-n:]
    pad_type = str(a.get("pad_type", "valid"))
    if pad_type == "custom":
        flat = _ints(a.get("pad"), 2 * n, 0)
        return [f - flat[2 * i] - flat[2 * i + 1] for i, f in enumerate(full)]
    if pad_type == "same":
        return [i * st for i, st in zip(ins, strides)]
    return list(full)


def _pool_geometry(a, s, x):
    n = x.ndim - 2
    kernel = _ints(a["kernel_sizes"], n, 1)
    strides = _ints(a.get("strides"), n, 1)
    p = pads(str(a.get("pad_type", "valid")), x.shape[2:], kernel, strides, [1] * n, a.get("pad"))
    outs = [(size + pb + pa - k) // st + 1 for size, (pb, pa), k, st in zip(x.shape[2:], p, kernel, strides)]
    if bool(a.get("ceil_mode", False)):
        outs = [-(-(size + pb + pa - k) // st) + 1 for size, (pb, pa), k, st in zip(x.shape[2:], p, kernel, strides)]
        outs = [o - 1 if (o - 1) * st >= size + pb else o for o, size, (pb, _), st in zip(outs, x.shape[2:], p, strides)]
    if s.shape is not None and len(s.shape) == x.ndim:
        outs = list(s.shape[2:])           # the program's declared output size is authoritative
    extra = [max(0, (o - 1) * st + k - (size + pb + pa)) for o, st, k, size, (pb, pa)
             in zip(outs, strides, kernel, x.shape[2:], p)]
    return kernel, strides, p, extra, outs


def _pooled(x, kernel, strides, p, extra, outs, fill):
    n = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pb, pa + e) for (pb, pa), e in zip(p, extra)], constant_values=fill)
    win = _windows(xp, kernel, strides, [1] * n)
    return win[(slice(None), slice(None)) + tuple(slice(0, o) for o in outs)]


def _max_pool(a, s):
    x = wide(a["x"])
    kernel, strides, p, extra, outs = _pool_geometry(a, s, x)
    win = _pooled(x, kernel, strides, p, extra, outs, -np.inf)
    return np.max(win, axis=tuple(range(-len(kernel), 0)))


def _window_sum(win, n, acc):
    return acc.sum(win, tuple(range(win.ndim - n, win.ndim)))


def _avg_pool(a, s):
    """Window mean; the divisor counts padding unless exclude_padding_from_average (never the ceil overhang)."""
    x = wide(a["x"])
    kernel, strides, p, extra, outs = _pool_geometry(a, s, x)
    n = len(kernel)
    total = _window_sum(_pooled(x, kernel, strides, p, extra, outs, 0.0), n, s.acc)
    ones = np.ones((1, 1) + x.shape[2:], dtype=np.float32)
    if not bool(a.get("exclude_padding_from_average", False)):
        ones = np.pad(ones, [(0, 0), (0, 0)] + p, constant_values=1.0)
        p = [(0, 0)] * n
    count = np.sum(_pooled(ones, kernel, strides, p, extra, outs, 0.0), axis=tuple(range(-n, 0)))
    return total / count


def _l2_pool(a, s):
    x = wide(a["x"])
    kernel, strides, p, extra, outs = _pool_geometry(a, s, x)
    win = _pooled(s.acc.round(x * x), kernel, strides, p, extra, outs, 0.0)
    return np.sqrt(_window_sum(win, len(kernel), s.acc))


KERNELS: dict[str, Callable] = {
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "l2_pool": _l2_pool,
}
