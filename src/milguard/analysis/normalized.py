"""The relational bound of a normalised value: |d_i| / sqrt(mean(d²) + eps) <= sqrt(n).

Cauchy-Schwarz gives d_i² <= Σ d², so every element of ``d · rsqrt(mean(d²) + eps)`` (RMSNorm with
d = x, LayerNorm with d = x - mean) lies within sqrt(n), whatever the range of d: plain interval
arithmetic, which forgets that numerator and denominator move together, gives |d|max / sqrt(eps).
The fp16 hazard it guards against is a false alarm: without it every decomposed norm would look
like an overflow. :func:`norm_count` recognises the denominator; both the interval transfer
functions (:mod:`.transfer_elementwise`) and the row norms (:mod:`.norms`) use it.
"""
from __future__ import annotations

import numpy as np

from .. import fp16
from ..mil import const_value, dtype_name
from .transfer_registry import const_axes, param, param_value


def squared_of(var):
    """d when ``var`` is d², as pow(d, 2), square(d) or mul(d, d); else None."""
    op = getattr(var, "op", None)
    if op is None:
        return None
    if op.op_type == "square" or (op.op_type == "mul" and op.x is op.y):
        return op.x
    if op.op_type == "pow":
        p = const_value(op.y)
        if p is not None and np.all(np.asarray(p) == 2.0):
            return op.x
    return None


def norm_count(d, s, forms: tuple[str, ...], ctx) -> float | None:
    """n/(1-θ) when ``s`` is rsqrt / pow(·, -0.5) / sqrt of ``mean(d², axes, keep_dims) + eps``
    with a constant eps >= fp16's smallest subnormal (θ: how far the computed mean may fall
    short), else None."""
    op = getattr(s, "op", None)
    if op is None or op.op_type not in forms:
        return None
    if op.op_type == "pow":
        p = const_value(op.y)
        if p is None or not np.all(np.asarray(p) == -0.5):
            return None
    if op.op_type == "rsqrt":
        e = ctx.val(param(op, "epsilon"))
        if e is not None and np.any(np.asarray(e) < 0):
            return None
    add = getattr(op.x, "op", None)
    if add is None or add.op_type != "add":
        return None
    for m, eps in ((add.x, add.y), (add.y, add.x)):
        e = ctx.val(eps)
        mean = getattr(m, "op", None)
        if e is None or mean is None or mean.op_type != "reduce_mean":
            continue
        if np.any(np.asarray(e) < fp16.MIN_SUBNORMAL):
            continue
        if not bool(param_value(mean, ctx, "keep_dims", False)) or squared_of(mean.x) is not d:
            continue
        n = ctx.count(mean.x, const_axes(mean, ctx))
        theta = mean_shortfall(mean, n, ctx)
        return n / (1.0 - theta) if theta < 0.5 else None
    return None


def mean_shortfall(mean, n: float, ctx) -> float:
    """θ: how far (relatively) the computed ``mean`` of n non-negative terms may fall short of the
    exact one: its accumulation error, plus the rounding of its fp16 (or fp32) result."""
    return (n - 1) * ctx.u(mean) + (2.0 ** -10 if dtype_name(mean.outputs[0]) == "fp16" else 2.0 ** -22)
