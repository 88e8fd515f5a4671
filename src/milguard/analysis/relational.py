"""Relational bounds: values plain interval arithmetic over-approximates because it forgets that two
operands come from the same tensor. Each rule recognises the shape of a fp16-safe form (milguard's
rescaled norms, a max-shifted softmax, a guarded L2 normalisation) and returns the interval its
math guarantees, which the transfer function intersects with the plain one.

* ``x / s`` with ``s = maximum(reduce_max(|x|), c)`` or ``reduce_max(|x|)`` over the same axes
  (kept): every |x_i| <= s, so |x / s| <= 1 (a correctly rounded quotient of |x_i| <= s stays <= 1).
* ``x / maximum(reduce_l2_norm(x), e)`` (possibly through ``tile``): |x_i| <= ||x||, so |y| <= 1.
* ``x - reduce_max(x)`` over axes (kept): x_i <= max, so the result is <= 0 (and >= lo - hi).
* ``reduce_sum(exp(x - reduce_max(x)))`` over the same axes: the max contributes exp(0) = 1 and the
  other terms are >= 0, so the sum is >= 1 (a rounded sum of non-negative terms is at least its
  largest term): the division of a max-shifted softmax never divides by 0.
* ``u / maximum(reduce_l2_norm(u), e)`` with ``u = x / s`` as in the first rule and
  ``e = eps / s``: either s = max|x| and ||u|| >= 1, or s is the floor f and e = eps / f > 0, so
  the denominator is never 0 and the quotient is NaN only when an input is.
* ``t + mean(u²)`` with ``u = d / s`` as in the first rule and ``t = (r / s)²``: either s = max|d|
  and some |u_j| = 1, so mean(u²) >= (1 - θ)/n; or s is the floor f and t >= (r / f)². The sum is
  at least the smaller of the two, so the rsqrt after it stays finite.
* ``u · rsqrt(t + mean(u²))``: in the first case |y| <= |u_i| / sqrt(mean(u²)) <= sqrt(n / (1 - θ));
  in the second |y| <= |u| / sqrt(t) <= f / r. (θ: how far the computed mean may fall short of the
  exact one, as in the plain normalisation bound.)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..mil import const_value
from .interval import Interval
from .normalized import mean_shortfall, squared_of

SLACK = 1.01


def _op(var: Any, *types: str) -> Any:
    op = getattr(var, "op", None)
    return op if op is not None and op.op_type in types else None


def _axes(op: Any) -> tuple[int, ...] | None:
    a = const_value(op.inputs.get("axes"))
    return None if a is None else tuple(int(v) for v in np.asarray(a).reshape(-1))


def _kept(op: Any) -> bool:
    kd = const_value(op.inputs.get("keep_dims"))
    return kd is not None and bool(kd)


def _positive_const(var: Any) -> float | None:
    v = const_value(var)
    if v is None or np.asarray(v).size != 1:
        return None
    f = float(np.asarray(v).reshape(()))
    return f if f > 0 else None


def row_peak(s: Any) -> tuple[Any, tuple[int, ...], float] | None:
    """(x, axes, floor) when ``s`` is ``maximum(reduce_max(abs(x), axes, keep), floor)`` or
    ``reduce_max(abs(x), axes, keep)`` (floor 0)."""
    floor = 0.0
    peak = _op(s, "reduce_max")
    if peak is None:
        guard = _op(s, "maximum")
        if guard is None:
            return None
        for a, b in ((guard.inputs["x"], guard.inputs["y"]), (guard.inputs["y"], guard.inputs["x"])):
            c = _positive_const(b)
            if c is not None and _op(a, "reduce_max") is not None:
                peak, floor = _op(a, "reduce_max"), c
                break
        else:
            return None
    absolute = _op(peak.inputs["x"], "abs")
    if absolute is None or not _kept(peak):
        return None
    return absolute.inputs["x"], _axes(peak), floor


def _l2_guard(den: Any) -> Any:
    """x when ``den`` is maximum(reduce_l2_norm(x, keep), e) or its tile."""
    tiled = _op(den, "tile")
    if tiled is not None:
        den = tiled.inputs["x"]
    guard = _op(den, "maximum")
    if guard is None:
        return None
    for a in (guard.inputs["x"], guard.inputs["y"]):
        norm = _op(a, "reduce_l2_norm")
        if norm is not None and _kept(norm):
            return norm.inputs["x"]
    return None


def real_div(op: Any, ctx: Any, plain: Interval) -> Interval:
    x, y = op.inputs["x"], op.inputs["y"]
    peak = row_peak(y)
    if (peak is not None and peak[0] is x) or _l2_guard(y) is x:
        nan = plain.may_nan and not _guarded_rescaled(x, y)
        return plain.meet(Interval(-1.0, 1.0, nan or ctx.r(x).may_nan or ctx.r(y).may_nan))
    return plain


def _guarded_rescaled(u: Any, den: Any) -> bool:
    """``den`` is maximum(reduce_l2_norm(u), eps / s), u = x / s, s = maximum(reduce_max(|x|), f > 0),
    eps > 0: never 0 (module docstring)."""
    scaled = _op(u, "real_div")
    tiled = _op(den, "tile")
    guard = _op(tiled.inputs["x"] if tiled is not None else den, "maximum")
    if scaled is None or guard is None:
        return False
    s = scaled.inputs["y"]
    peak = row_peak(s)
    if peak is None or peak[0] is not scaled.inputs["x"] or peak[2] <= 0:
        return False
    for e in (guard.inputs["x"], guard.inputs["y"]):
        ratio = _op(e, "real_div")
        if ratio is not None and ratio.inputs["y"] is s and _positive_const(ratio.inputs["x"]) is not None:
            return True
    return False


def reduce_sum(op: Any, ctx: Any, plain: Interval) -> Interval:
    """A max-shifted softmax's sum of exponentials is at least 1 (module docstring)."""
    exp = _op(op.inputs["x"], "exp")
    shifted = _op(exp.inputs["x"], "sub") if exp is not None else None
    peak = _op(shifted.inputs["y"], "reduce_max") if shifted is not None else None
    if peak is None or peak.inputs["x"] is not shifted.inputs["x"] or not _kept(peak) or not _kept(op) \
            or _axes(peak) != _axes(op):
        return plain
    return plain.meet(Interval(1.0, math.inf, plain.may_nan and ctx.r(op.inputs["x"]).may_nan))


def sub(op: Any, ctx: Any, plain: Interval) -> Interval:
    x, y = op.inputs["x"], op.inputs["y"]
    peak = _op(y, "reduce_max")
    if peak is not None and peak.inputs["x"] is x and _kept(peak):
        return plain.meet(Interval(-math.inf, 0.0, plain.may_nan))
    return plain


def add(op: Any, ctx: Any, plain: Interval) -> Interval:
    """``t + mean(u²)`` of a rescaled norm is bounded away from 0 (module docstring)."""
    parts = _rescaled_sum(op, ctx)
    if parts is None:
        return plain
    n, theta, r, f = parts
    low = min((1.0 - theta) / n, (r / f) ** 2) * (1 - 2.0 ** -9)
    return plain.meet(Interval(low, math.inf, plain.may_nan))


def mul(op: Any, ctx: Any, plain: Interval) -> Interval:
    """The rescaled normalisation ``u · rsqrt(t + mean(u²))`` (module docstring)."""
    for u, inv in ((op.inputs["x"], op.inputs["y"]), (op.inputs["y"], op.inputs["x"])):
        rsqrt = _op(inv, "rsqrt")
        add_op = _op(rsqrt.inputs["x"], "add") if rsqrt is not None else None
        parts = _rescaled_sum(add_op, ctx, u) if add_op is not None else None
        if parts is not None:
            n, theta, r, f = parts
            k = max(math.sqrt(n / (1.0 - theta)), f / r * (1 + 2.0 ** -9)) * SLACK
            return plain.meet(Interval(-k, k, plain.may_nan))
    return plain


def _rescaled_sum(add_op: Any, ctx: Any, numerator: Any = None) -> tuple[float, float, float, float] | None:
    """(n, θ, r, f) when ``add_op`` is ``mean(u²) + (r / s)²`` with ``u = d / s`` and
    ``s = maximum(reduce_max(|d|), f)``, f > 0 (and u is ``numerator`` when given)."""
    for m, t in ((add_op.inputs["x"], add_op.inputs["y"]), (add_op.inputs["y"], add_op.inputs["x"])):
        mean = _op(m, "reduce_mean")
        ratio = _op(squared_of(t), "real_div")
        if mean is None or ratio is None or not _kept(mean):
            continue
        u = squared_of(mean.inputs["x"])
        scaled = _op(u, "real_div")
        if scaled is None or (numerator is not None and u is not numerator):
            continue
        s = scaled.inputs["y"]
        peak = row_peak(s)
        r = _positive_const(ratio.inputs["x"])
        if peak is None or peak[0] is not scaled.inputs["x"] or peak[2] <= 0 or r is None or ratio.inputs["y"] is not s:
            continue
        n = ctx.count(mean.inputs["x"], _axes(mean))
        theta = mean_shortfall(mean, n, ctx)
        if not math.isfinite(n) or theta >= 0.5:
            return None
        return n, theta, r, peak[2]
    return None
