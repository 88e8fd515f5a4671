"""Reductions, softmax, cumulative sums and sorting.

Sums go through the op's accumulator (``semantics``): fp32 accumulation by default, blocked fp16
accumulation on request. fp16 hazards: ``reduce_sum_square`` and ``reduce_l2_norm`` overflow once
the sum of squares passes 65504 (|x| about 256 for one element, less for many);
``softmax(x)`` gives NaN for a row that is entirely -inf (0/0 after ``x - max``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .semantics import wide


def _axes(a) -> tuple[int, ...] | None:
    axes = a.get("axes")
    return None if axes is None else tuple(int(v) for v in np.atleast_1d(axes))


def _keep(a) -> bool:
    return bool(a.get("keep_dims", False))


def _all_axes(x: np.ndarray, axes) -> tuple[int, ...]:
    return tuple(range(x.ndim)) if axes is None else tuple(ax % x.ndim for ax in axes)


def _reduce_sum(a, s):
    return s.acc.sum(a["x"], _axes(a), _keep(a))


def _reduce_mean(a, s):
    return s.acc.mean(a["x"], _axes(a), _keep(a))


def _reduce_sum_square(a, s):
    x = wide(a["x"])
    return s.acc.sum(s.acc.round(x * x), _axes(a), _keep(a))


def _reduce_l2_norm(a, s):
    return np.sqrt(_reduce_sum_square(a, s))


def _reduce_l1_norm(a, s):
    return s.acc.sum(np.abs(wide(a["x"])), _axes(a), _keep(a))


def _reduce_log_sum(a, s):
    return np.log(_reduce_sum(a, s))


def _reduce_log_sum_exp(a, s):
    """log(sum(exp(x - m))) + m with m = max over the axes (the stable form)."""
    x = wide(a["x"])
    axes = _all_axes(x, _axes(a))
    m = np.max(x, axis=axes, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, np.zeros((), x.dtype))
    e = s.acc.round(np.exp(s.acc.round(x - m_safe)))
    out = np.log(s.acc.sum(e, axes, True)) + m_safe
    return out if _keep(a) else np.squeeze(out, axis=axes)


def _extreme(fn):
    def kernel(a, s):
        x = wide(a["x"])
        return fn(x, axis=_all_axes(x, _axes(a)), keepdims=_keep(a))
    return kernel


def _arg(fn):
    def kernel(a, s):
        x = wide(a["x"])
        axis = int(a.get("axis", -1))
        out = fn(x, axis=axis)
        return np.expand_dims(out, axis) if _keep(a) else out
    return kernel


def softmax(x: np.ndarray, axis: int, acc) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis``."""
    x = wide(x)
    e = acc.round(np.exp(acc.round(x - np.max(x, axis=axis, keepdims=True))))
    return e / acc.sum(e, (axis,), True)


def _softmax(a, s):
    return softmax(a["x"], int(a.get("axis", -1)), s.acc)


def _cumsum(a, s):
    x = wide(a["x"])
    axis = int(a.get("axis", 0))
    if bool(a.get("reverse", False)):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype if x.dtype.kind == "f" else None)
    if bool(a.get("exclusive", False)):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(out, axis) if bool(a.get("reverse", False)) else out


def _order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    return np.argsort(x if ascending else -x, axis=axis, kind="stable")


def _argsort(a, s):
    return _order(wide(a["x"]), int(a.get("axis", -1)), bool(a.get("ascending", False)))


def _topk(a, s):
    x = wide(a["x"])
    axis, k = int(a.get("axis", -1)), int(a.get("k", 1))
    idx = np.take(_order(x, axis, bool(a.get("ascending", False))), np.arange(k), axis=axis)
    values = np.take_along_axis(x, idx, axis=axis)
    return (values, idx) if bool(a.get("return_indices", True)) else (values,)


KERNELS: dict[str, Callable] = {
    "reduce_sum": _reduce_sum,
    "reduce_mean": _reduce_mean,
    "reduce_sum_square": _reduce_sum_square,
    "reduce_l2_norm": _reduce_l2_norm,
    "reduce_l1_norm": _reduce_l1_norm,
    "reduce_log_sum": _reduce_log_sum,
    "reduce_log_sum_exp": _reduce_log_sum_exp,
    "reduce_max": _extreme(np.max),
    "reduce_min": _extreme(np.min),
    "reduce_prod": _extreme(np.prod),
    "reduce_argmax": _arg(np.argmax),
    "reduce_argmin": _arg(np.argmin),
    "softmax": _softmax,
    "cumsum": _cumsum,
    "argsort": _argsort,
    "topk": _topk,
}
