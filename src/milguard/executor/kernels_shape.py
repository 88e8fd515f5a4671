"""Data movement: reshape, transpose, slicing, concat/split, gather/scatter, padding, fills, masks.

No arithmetic happens here, so these kernels are exact in every dtype; values keep the input
dtype and the executor stores them in the declared output dtype.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _ints(value) -> list[int]:
    return [int(v) for v in np.atleast_1d(value)]


def _reshape(a, s):
    """A 0 in ``shape`` copies the input dim it aligns with counting from the right (1 if none)."""
    x = a["x"]
    shape = _ints(a["shape"])
    offset = x.ndim - len(shape)
    shape = [v if v != 0 else (x.shape[i + offset] if i + offset >= 0 else 1) for i, v in enumerate(shape)]
    return np.reshape(x, shape)


def _expand_dims(a, s):
    x = a["x"]
    rank = x.ndim + len(_ints(a["axes"]))
    for axis in sorted(ax % rank for ax in _ints(a["axes"])):
        x = np.expand_dims(x, axis)
    return x


def _squeeze(a, s):
    x = a["x"]
    axes = a.get("axes")
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(ax % x.ndim for ax in _ints(axes)))


def _slice_by_index(a, s):
    x = a["x"]
    n = x.ndim
    begin, end = _ints(a["begin"]), _ints(a["end"])
    stride = _ints(a["stride"]) if a.get("stride") is not None else [1] * n
    masks = {m: ([bool(v) for v in np.atleast_1d(a[m])] if a.get(m) is not None else [False] * n)
             for m in ("begin_mask", "end_mask", "squeeze_mask")}
    index = []
    for i in range(n):
        if masks["squeeze_mask"][i]:
            index.append(begin[i])
            continue
        b = None if masks["begin_mask"][i] else begin[i]
        e = None if masks["end_mask"][i] else end[i]
        index.append(slice(b, e, stride[i]))
    return x[tuple(index)]


def _slice_by_size(a, s):
    x = a["x"]
    begin, size = _ints(a["begin"]), _ints(a["size"])
    return x[tuple(slice(b, None if z == -1 else b + z) for b, z in zip(begin, size))]


def _concat(a, s):
    values, axis = [np.asarray(v) for v in a["values"]], int(a["axis"])
    if bool(a.get("interleave", False)):
        axis %= values[0].ndim
        stacked = np.stack(values, axis=axis + 1)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


def _split(a, s):
    x, axis = a["x"], int(a["axis"])
    sizes = a.get("split_sizes")
    if sizes is not None:
        cuts = np.cumsum(_ints(sizes))[:-1]
    else:
        cuts = int(a["num_splits"])
    return tuple(np.split(x, cuts, axis=axis))


def _stack(a, s):
    return np.stack([np.asarray(v) for v in a["values"]], axis=int(a["axis"]))


def _pad(a, s):
    """Pad the last len(pad)/2 axes; mode constant | reflect | replicate."""
    x = a["x"]
    flat = _ints(a["pad"])
    k = len(flat) // 2
    widths = [(0, 0)] * (x.ndim - k) + [(flat[2 * i], flat[2 * i + 1]) for i in range(k)]
    mode = str(a.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, constant_values=np.asarray(a.get("constant_val", 0.0)).astype(x.dtype))
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge", "symmetric": "symmetric"}[mode])


def _gather(a, s):
    x, idx = a["x"], np.asarray(a["indices"]).astype(np.int64)
    axis = int(a.get("axis", 0)) % x.ndim
    batch_dims = int(a.get("batch_dims", 0))
    if batch_dims == 0:
        return np.take(x, idx, axis=axis)
    lead = x.shape[:batch_dims]
    xs = x.reshape((-1,) + x.shape[batch_dims:])
    ids = idx.reshape((-1,) + idx.shape[batch_dims:])
    out = np.stack([np.take(xs[b], ids[b], axis=axis - batch_dims) for b in range(xs.shape[0])])
    return out.reshape(lead + out.shape[1:])


def _gather_along_axis(a, s):
    x = a["x"]
    axis = int(a.get("axis", 0))
    idx = np.asarray(a["indices"]).astype(np.int64)
    return np.take_along_axis(x, np.where(idx < 0, idx + x.shape[axis], idx), axis=axis)


def _gather_nd(a, s):
    x, idx = a["x"], np.asarray(a["indices"]).astype(np.int64)
    batch_dims = int(a.get("batch_dims", 0))
    if batch_dims:
        lead = x.shape[:batch_dims]
        xs = x.reshape((-1,) + x.shape[batch_dims:])
        ids = idx.reshape((-1,) + idx.shape[batch_dims:])
        out = np.stack([xs[b][tuple(np.moveaxis(ids[b], -1, 0))] for b in range(xs.shape[0])])
        return out.reshape(lead + out.shape[1:])
    return x[tuple(np.moveaxis(idx, -1, 0))]


_SCATTER = {"update": None, "add": np.add, "sub": np.subtract, "mul": np.multiply,
            "div": np.true_divide, "max": np.maximum, "min": np.minimum}


def _scatter_into(data, index, updates, mode):
    out = np.array(data, copy=True)
    fn = _SCATTER[mode]
    if fn is None:
        out[index] = updates
    else:
        fn.at(out, index, updates)
    return out


def _scatter(a, s):
    data = a["data"]
    axis = int(a.get("axis", 0)) % data.ndim
    idx = np.asarray(a["indices"]).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    updates = np.moveaxis(np.asarray(a["updates"]), axis, 0)
    moved = np.moveaxis(data, axis, 0)
    out = _scatter_into(moved, idx, updates, str(a.get("mode", "add")))
    return np.moveaxis(out, 0, axis)


def _scatter_along_axis(a, s):
    data = a["data"]
    axis = int(a.get("axis", 0)) % data.ndim
    idx = np.asarray(a["indices"]).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return _scatter_into(data, tuple(grid), np.asarray(a["updates"]), str(a.get("mode", "add")))


def _scatter_nd(a, s):
    idx = np.asarray(a["indices"]).astype(np.int64)
    return _scatter_into(a["data"], tuple(np.moveaxis(idx, -1, 0)), np.asarray(a["updates"]),
                         str(a.get("mode", "add")))


def _band_part(a, s):
    """Keep x[..., i, j] where (lower < 0 or i - j <= lower) and (upper < 0 or j - i <= upper)."""
    x = a["x"]
    lower, upper = int(a.get("lower", -1)), int(a.get("upper", -1))
    rows, cols = np.indices(x.shape[-2:], sparse=True)
    keep = np.ones(x.shape[-2:], dtype=bool)
    if lower >= 0:
        keep &= rows - cols <= lower
    if upper >= 0:
        keep &= cols - rows <= upper
    return np.where(keep, x, np.zeros((), x.dtype))


def _one_hot(a, s):
    idx = np.asarray(a["indices"]).astype(np.int64)
    depth = int(a["one_hot_vector_size"])
    axis = int(a.get("axis", -1))
    hot = np.arange(depth) == idx[..., None]
    out = np.where(hot, np.asarray(a.get("on_value", 1)), np.asarray(a.get("off_value", 0)))
    return np.moveaxis(out, -1, axis % out.ndim)


def _space_to_depth(x: np.ndarray, b: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


def _depth_to_space(x: np.ndarray, b: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def _pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def _pixel_unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


def _blocks(fn, param: str):
    return lambda a, s: fn(a["x"], int(a[param]))


def _slice_update(a, s):
    x = np.array(a["x"], copy=True)
    n = x.ndim
    begin, end = _ints(a["begin"]), _ints(a["end"])
    stride = _ints(a["stride"]) if a.get("stride") is not None else [1] * n
    bm = [bool(v) for v in np.atleast_1d(a["begin_mask"])] if a.get("begin_mask") is not None else [False] * n
    em = [bool(v) for v in np.atleast_1d(a["end_mask"])] if a.get("end_mask") is not None else [False] * n
    sm = [bool(v) for v in np.atleast_1d(a["squeeze_mask"])] if a.get("squeeze_mask") is not None else [False] * n
    index = tuple(begin[i] if sm[i] else slice(None if bm[i] else begin[i], None if em[i] else end[i], stride[i])
                  for i in range(n))
    x[index] = a["update"]
    return x


def _flatten2d(a, s):
    x = a["x"]
    axis = int(a.get("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _reshape_like(a, s):
    """Reshape to the concatenation of ref_tensors[i].shape[begins[i]:ends[i]] (end_masks[i]: to the end)."""
    shape: list[int] = []
    for ref, begin, end, to_end in zip(a["ref_tensors"], _ints(a["begins"]), _ints(a["ends"]), np.atleast_1d(a["end_masks"])):
        shape += list(np.shape(ref)[begin:None if bool(to_end) else end])
    return np.reshape(a["x"], shape)


def _crop(a, s):
    """Drop crop_height = [top, bottom] rows and crop_width = [left, right] columns."""
    x = a["x"]
    (top, bottom), (left, right) = _ints(a["crop_height"]), _ints(a["crop_width"])
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def _reverse_sequence(a, s):
    """For each batch entry b, reverse the first lengths[b] elements along seq_axis."""
    x = np.array(a["x"], copy=True)
    seq_axis, batch_axis = int(a.get("seq_axis", 0)) % x.ndim, int(a.get("batch_axis", 0)) % x.ndim
    moved = np.moveaxis(x, (batch_axis, seq_axis), (0, 1))
    for b, n in enumerate(_ints(a["lengths"])):
        moved[b, :n] = moved[b, :n][::-1].copy()
    return np.moveaxis(moved, (0, 1), (batch_axis, seq_axis))


def _sliding_windows(a, s):
    """Windows of `size` every `stride` along `axis`: (..., N, ...) -> (..., windows, size, ...)."""
    x = a["x"]
    axis, size, stride = int(a["axis"]) % x.ndim, int(a["size"]), int(a.get("stride", 1))
    view = np.lib.stride_tricks.sliding_window_view(x, size, axis=axis)[(slice(None),) * axis + (slice(None, None, stride),)]
    return np.moveaxis(view, -1, axis + 1)


KERNELS: dict[str, Callable] = {
    "crop": _crop,
    "reverse_sequence": _reverse_sequence,
    "sliding_windows": _sliding_windows,
    "reshape": _reshape,
    "reshape_like": _reshape_like,
    "transpose": lambda a, s: np.transpose(a["x"], _ints(a["perm"])),
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "flatten2d": _flatten2d,
    "slice_by_index": _slice_by_index,
    "slice_by_size": _slice_by_size,
    "slice_update": _slice_update,
    "concat": _concat,
    "split": _split,
    "stack": _stack,
    "tile": lambda a, s: np.tile(a["x"], _ints(a["reps"])),
    "reverse": lambda a, s: np.flip(a["x"], axis=None if a.get("axes") is None else tuple(_ints(a["axes"]))),
    "pad": _pad,
    "gather": _gather,
    "gather_along_axis": _gather_along_axis,
    "gather_nd": _gather_nd,
    "scatter": _scatter,
    "scatter_along_axis": _scatter_along_axis,
    "scatter_nd": _scatter_nd,
    "fill": lambda a, s: np.full(_ints(a["shape"]), np.asarray(a.get("value", 0.0))),
    "fill_like": lambda a, s: np.full(np.shape(a["ref_tensor"]), np.asarray(a.get("value", 0.0))),
    "range_1d": lambda a, s: np.arange(np.asarray(a["start"]), np.asarray(a["end"]), np.asarray(a["step"])),
    "shape": lambda a, s: np.asarray(np.shape(a["x"]), dtype=np.int32),
    "band_part": _band_part,
    "one_hot": _one_hot,
    "non_zero": lambda a, s: np.transpose(np.nonzero(a["x"])).astype(np.int32),
    "space_to_depth": _blocks(_space_to_depth, "block_size"),
    "depth_to_space": _blocks(_depth_to_space, "block_size"),
    "pixel_shuffle": _blocks(_pixel_shuffle, "upscale_factor"),
    "pixel_unshuffle": _blocks(_pixel_unshuffle, "downscale_factor"),
}
