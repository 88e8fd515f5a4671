"""Transfer functions of contractions: matmul, linear, conv, einsum and fused attention.

A constant weight gives exact per-column bounds; two variable operands give K times the
product interval; softmax(·) @ v stays within the range of v."""
from __future__ import annotations

import math

import numpy as np

from .interval import INF, Interval
from .transfer_registry import accumulated, param, param_value, scalar_param, transfer


# ---- contractions ------------------------------------------------------------------------------

def _columns(x: Interval, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column j, the exact range of Σ_k W[k, j]·x_k over x_k in ``x`` (0·inf taken as 0).

    Since every x_k ranges over the same interval, the bounds are
    ``P_j·hi + N_j·lo`` and ``P_j·lo + N_j·hi`` with P_j, N_j the sums of the positive and the
    negative entries of column j.
    """
    w = np.asarray(w, np.float32 if np.asarray(w).dtype == np.float16 else None)
    total, mag = w.sum(0, dtype=np.float64), np.abs(w).sum(0, dtype=np.float64)
    pos, neg = (total + mag) / 2, (total - mag) / 2
    with np.errstate(invalid="ignore", over="ignore"):
        hi = _masked(pos, x.hi) + _masked(neg, x.lo)
        lo = _masked(pos, x.lo) + _masked(neg, x.hi)
    return lo, hi


def _masked(w: np.ndarray, bound: float) -> np.ndarray:
    """w * bound with 0 * ±inf taken as 0."""
    out = np.asarray(w * bound, np.float64)
    out[np.asarray(w) == 0] = 0.0
    return out


def _dot_const(x: Interval, w: np.ndarray, u: float, bias=None) -> Interval:
    """Hull over columns j of Σ_k W[k, j]·x_k (+ bias_j), widened by the accumulation error."""
    if x.is_empty:
        return x
    w = np.asarray(w, np.float32 if np.asarray(w).dtype == np.float16 else None)
    lo, hi = _columns(x, w)
    if bias is not None:
        b = np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), lo.shape)
        lo, hi = lo + b, hi + b
    abs_sum = float(np.abs(w).sum(0, dtype=np.float64).max(initial=0.0)) * x.maxabs
    nan = x.may_nan or (x.has_inf and w.shape[0] > 0)
    out = Interval(float(lo.min(initial=INF)), float(hi.max(initial=-INF)), nan)
    return accumulated(out, w.shape[0], abs_sum, u)


def _dot_var(x: Interval, y: Interval, k: float, u: float) -> Interval:
    if k == 0:
        return Interval.point(0.0)
    prod = x * y
    return accumulated(prod.scale(k), k, k * prod.maxabs, u, prod)


def _as_kn(w: np.ndarray, contract_first: bool) -> np.ndarray:
    """Reshape a constant operand to (K, columns): K contracted, every other axis a column."""
    w = np.asarray(w)
    if w.ndim == 1:
        return w.reshape(-1, 1)
    axis = -2 if contract_first else -1
    w = np.moveaxis(w, axis, 0)
    return w.reshape(w.shape[0], -1)


@transfer("matmul")
def _matmul(op, ctx):
    tx, ty = bool(param_value(op, ctx, "transpose_x", False)), bool(param_value(op, ctx, "transpose_y", False))
    xv, yv = ctx.val(op.x), ctx.val(op.y)
    u = ctx.u(op)
    if yv is not None and xv is None:
        return _dot_const(ctx.r(op.x), _as_kn(yv, not ty), u)
    if xv is not None and yv is None:
        return _dot_const(ctx.r(op.y), _as_kn(xv, tx), u)
    shape = op.x.shape
    k = shape[-2] if tx and len(shape) > 1 else shape[-1] if shape else 1
    k = float(k) if isinstance(k, (int, np.integer)) else INF
    plain = _dot_var(ctx.r(op.x), ctx.r(op.y), k, u)
    return _convex(plain, op.x, ctx.r(op.y), tx, k, ctx) if yv is None else plain


def _convex(plain: Interval, probs, values: Interval, transposed: bool, k: float, ctx) -> Interval:
    """softmax(·) @ v: each output is a convex combination of v (weights >= 0 summing to 1, up to
    the rounding of the probabilities, 2^-10, and of the sum, k·2^-23), so it stays within v."""
    op = getattr(probs, "op", None)
    if op is None or op.op_type != "softmax" or transposed or not math.isfinite(k) or values.is_empty:
        return plain
    rank = len(probs.shape)
    if int(scalar_param(op, ctx, "axis", -1)) % max(rank, 1) != rank - 1:
        return plain
    return plain.meet(values.widen(2.0 ** -10 + k * 2.0 ** -23).with_nan(True))


@transfer("linear")
def _linear(op, ctx):
    """x @ W.T + b, per output feature j: Σ_k W[j, k]·x_k + b_j."""
    x, w = ctx.r(op.x), ctx.val(op.weight)
    bias = param(op, "bias")
    if w is None:
        k = op.weight.shape[-1]
        out = _dot_var(x, ctx.r(op.weight), float(k) if isinstance(k, int) else INF, ctx.u(op))
        return out if bias is None else out + ctx.r(bias)
    w = np.asarray(w)
    b = ctx.val(bias)
    if b is None and bias is not None:
        return _dot_const(x, w.reshape(w.shape[0], -1).T, ctx.u(op)) + ctx.r(bias)
    return _dot_const(x, w.reshape(w.shape[0], -1).T, ctx.u(op), b)


@transfer("conv", "conv_transpose")
def _conv(op, ctx):
    """Per output channel: Σ over its receptive field of W·x (zero padding counted as x = 0)."""
    x = ctx.r(op.x).hull(Interval.point(0.0))
    w = ctx.val(op.weight)
    u = ctx.u(op)
    if w is None:
        k = float(np.prod([d for d in op.weight.shape[1:] if isinstance(d, int)]))
        out = _dot_var(x, ctx.r(op.weight), k, u)
    else:
        w = np.asarray(w)
        if op.op_type == "conv_transpose":       # (C_in, C_out/g, k...) -> columns per C_out
            w = np.moveaxis(w, 1, 0)
        b = ctx.val(param(op, "bias"))
        if b is not None or param(op, "bias") is None:
            return _dot_const(x, w.reshape(w.shape[0], -1).T, u, b)
        out = _dot_const(x, w.reshape(w.shape[0], -1).T, u)
    bias = param(op, "bias")
    return out if bias is None else out + ctx.r(bias)


@transfer("einsum")
def _einsum(op, ctx):
    a, b = (ctx.r(v) for v in op.inputs["values"])
    eq = str(param_value(op, ctx, "equation", ""))
    lhs, _, out = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return Interval.top()
    contracted = (set(terms[0]) | set(terms[1])) - set(out)
    sizes = {}
    for term, var in zip(terms, op.inputs["values"]):
        for ch, d in zip(term, var.shape):
            sizes[ch] = d
    k = 1.0
    for ch in contracted:
        d = sizes.get(ch)
        k = k * d if isinstance(d, (int, np.integer)) else INF
    return _dot_var(a, b, k, ctx.u(op))


@transfer("scaled_dot_product_attention")
def _sdpa(op, ctx):
    """softmax(q·kᵀ/√d + mask)·v is a convex combination of rows of v."""
    v = ctx.r(op.value)
    mask = param(op, "attn_mask")
    nan = v.may_nan or (mask is not None and ctx.r(mask).has_inf)
    return v.with_nan(nan or ctx.r(op.query).has_inf or ctx.r(op.key).has_inf)
