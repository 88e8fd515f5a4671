"""Transfer functions of elementwise arithmetic and activations; products and quotients that
normalise (d / sqrt(mean(d²) + eps)) get the relational bound of :mod:`.normalized`."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import relational
from .interval import INF, Interval, hull_all, safe_exp
from .normalized import norm_count
from .transfer_registry import TRANSFER, param, scalar_param, transfer


# ---- elementwise arithmetic --------------------------------------------------------------------

@transfer("add")
def _add(op, ctx):
    return relational.add(op, ctx, ctx.r(op.x) + ctx.r(op.y))


@transfer("sub")
def _sub(op, ctx):
    return relational.sub(op, ctx, ctx.r(op.x) - ctx.r(op.y))


@transfer("mul")
def _mul(op, ctx):
    if op.x is op.y:                       # x*x is a square: never negative
        return ctx.r(op.x).square()
    out = ctx.r(op.x) * ctx.r(op.y)
    for d, s in ((op.x, op.y), (op.y, op.x)):
        out = _normalized(out, d, s, ("rsqrt", "pow"), ctx)
    return relational.mul(op, ctx, out)


@transfer("real_div")
def _real_div(op, ctx):
    return relational.real_div(op, ctx, _normalized(ctx.r(op.x) / ctx.r(op.y), op.x, op.y, ("sqrt",), ctx))


# ---- a relational bound: d / sqrt(mean(d²) + eps) ---------------------------------------------

def _normalized(plain: Interval, d, s, forms: tuple[str, ...], ctx) -> Interval:
    """|d_i| / sqrt(mean(d²) + eps) <= sqrt(n) (Cauchy-Schwarz: d_i² <= Σ d²), for RMSNorm
    (d = x) and LayerNorm (d = x - mean) alike; eps >= 6e-8 keeps the bound when d² rounds to 0
    in fp16, and an overflowed mean gives 0, inside the bound. 1% slack covers rounding."""
    n = norm_count(d, s, forms, ctx)
    if n is None or not math.isfinite(n):
        return plain
    k = math.sqrt(n) * 1.01          # n already carries the shortfall of the computed mean
    return plain.meet(Interval(-k, k, True))


@transfer("floor_div")
def _floor_div(op, ctx):
    q = ctx.r(op.x) / ctx.r(op.y)
    return Interval(math.floor(q.lo) if math.isfinite(q.lo) else q.lo,
                    math.ceil(q.hi) if math.isfinite(q.hi) else q.hi, q.may_nan) if not q.is_empty else q


@transfer("mod")
def _mod(op, ctx):
    y = ctx.r(op.y)
    m = y.maxabs
    return Interval(-m, m, True) if math.isfinite(m) else Interval.top()


@transfer("maximum")
def _maximum(op, ctx):
    return ctx.r(op.x).maximum(ctx.r(op.y))


@transfer("minimum")
def _minimum(op, ctx):
    return ctx.r(op.x).minimum(ctx.r(op.y))


@transfer("pow")
def _pow(op, ctx):
    y = ctx.val(op.y)
    if y is None or np.asarray(y).size == 0:
        return Interval.top()
    exps = np.unique(np.asarray(y, dtype=np.float64).reshape(-1))
    return hull_all(ctx.r(op.x).power(float(p)) for p in exps)


@transfer("square")
def _square(op, ctx):
    return ctx.r(op.x).square()


@transfer("abs")
def _abs(op, ctx):
    return ctx.r(op.x).abs()


def _eps(op, ctx) -> Interval:
    e = param(op, "epsilon")
    return Interval.point(0.0) if e is None else ctx.r(e)


@transfer("sqrt")
def _sqrt(op, ctx):
    return ctx.r(op.x).monotone(math.sqrt, True, (0.0, INF))


@transfer("rsqrt")
def _rsqrt(op, ctx):
    """1/sqrt(x + epsilon): unbounded above when x + epsilon may reach 0."""
    return (ctx.r(op.x) + _eps(op, ctx)).monotone(
        lambda v: 1.0 / math.sqrt(v) if v > 0 else INF, False, (0.0, INF))


@transfer("inverse")
def _inverse(op, ctx):
    return (ctx.r(op.x) + _eps(op, ctx)).reciprocal()


@transfer("log")
def _log(op, ctx):
    return (ctx.r(op.x) + _eps(op, ctx)).monotone(
        lambda v: math.log(v) if v > 0 else -INF, True, (0.0, INF))


@transfer("exp")
def _exp(op, ctx):
    return ctx.r(op.x).monotone(safe_exp)


@transfer("exp2")
def _exp2(op, ctx):
    return ctx.r(op.x).monotone(lambda v: safe_exp(v * math.log(2.0)))


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + safe_exp(-v)) if v > -745 else 0.0


_MONOTONE_UP: dict[str, Callable[[float], float]] = {
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "erf": math.erf,
    "atan": math.atan,
    "softsign": lambda v: v / (1.0 + abs(v)) if math.isfinite(v) else math.copysign(1.0, v),
    "softplus": lambda v: v + math.log1p(safe_exp(-v)) if v > 0 else math.log1p(safe_exp(v)),
    "floor": lambda v: math.floor(v) if math.isfinite(v) else v,
    "ceil": lambda v: math.ceil(v) if math.isfinite(v) else v,
    "round": lambda v: float(np.round(v)),
    "sign": lambda v: float(np.sign(v)),
    "relu": lambda v: max(v, 0.0),
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "atanh": lambda v: math.atanh(v) if abs(v) < 1 else math.copysign(INF, v),
    "asin": math.asin,
    "sinh": lambda v: math.sinh(v) if abs(v) < 700 else math.copysign(INF, v),
}
_DOMAIN = {"atanh": (-1.0, 1.0), "asin": (-1.0, 1.0)}


def _monotone_up(op, ctx):
    return ctx.r(op.x).monotone(_MONOTONE_UP[op.op_type], True, _DOMAIN.get(op.op_type, (-INF, INF)))


for _name in _MONOTONE_UP:
    TRANSFER[_name] = _monotone_up


@transfer("acos")
def _acos(op, ctx):
    return ctx.r(op.x).monotone(math.acos, False, (-1.0, 1.0))


@transfer("sin", "cos")
def _sin(op, ctx):
    x = ctx.r(op.x)
    return Interval(-1.0, 1.0, x.may_nan or x.has_inf)


@transfer("cosh")
def _cosh(op, ctx):
    return ctx.r(op.x).abs().monotone(lambda v: math.cosh(v) if v < 700 else INF)


@transfer("tan")
def _tan(op, ctx):
    return Interval.top()


@transfer("gelu")
def _gelu(op, ctx):
    """x·Φ(x) (and its tanh/sigmoid approximations): >= max(x, -0.17) below 0, <= x above."""
    x = ctx.r(op.x)
    if x.is_empty:
        return x
    lo = 0.0 if x.lo >= 0 else max(x.lo, -0.1701)
    # the tanh form 0.5·x·(1 + tanh(·)) cancels for negative x: an absolute error of about
    # |x|·ulp(1) until tanh rounds to -1 exactly (|x| > ~9 in fp32), so at most ~64·2^-20
    pad = 2.0 ** -20 * min(x.maxabs, 64.0)
    return Interval(lo - pad, max(x.hi, 0.0) + pad, x.may_nan or x.lo == -INF)   # -inf·0 = NaN


@transfer("silu")
def _silu(op, ctx):
    """x·sigmoid(x) >= -0.2785; <= x for x >= 0, <= 0 for x < 0."""
    x = ctx.r(op.x)
    if x.is_empty:
        return x
    lo = 0.0 if x.lo >= 0 else max(x.lo, -0.2785)
    return Interval(lo, max(x.hi, 0.0), x.may_nan or x.lo == -INF)      # -inf·0 = NaN


@transfer("clip")
def _clip(op, ctx):
    return ctx.r(op.x).clip(scalar_param(op, ctx, "alpha", -INF), scalar_param(op, ctx, "beta", INF))


@transfer("threshold")
def _threshold(op, ctx):
    return ctx.r(op.x).maximum(ctx.r(op.alpha))


@transfer("leaky_relu", "elu", "prelu")
def _leaky(op, ctx):
    """Negative side scaled by alpha (leaky/prelu) or alpha·(e^x - 1) in (-alpha, 0] (elu)."""
    x = ctx.r(op.x)
    a = ctx.r(op.alpha)
    pos = x.clip(0.0, INF)
    neg = x.clip(-INF, 0.0)
    if op.op_type == "elu":
        neg_out = a * Interval(-1.0, 0.0)
    else:
        neg_out = neg * a
    return pos.hull(neg_out).hull(Interval.point(0.0)).with_nan(x.may_nan)


@transfer("linear_activation")
def _linear_activation(op, ctx):
    return ctx.r(op.x) * ctx.r(op.alpha) + ctx.r(op.beta)


@transfer("clamped_relu")
def _clamped_relu(op, ctx):
    beta = scalar_param(op, ctx, "beta", INF)
    return _leaky(op, ctx).clip(-INF, beta)


@transfer("sigmoid_hard")
def _sigmoid_hard(op, ctx):
    return (ctx.r(op.x) * ctx.r(op.alpha) + ctx.r(op.beta)).clip(0.0, 1.0)


@transfer("scaled_tanh")
def _scaled_tanh(op, ctx):
    return ctx.r(op.alpha).abs().hull(-ctx.r(op.alpha).abs()) * Interval(-1.0, 1.0)


@transfer("softplus_parametric")
def _softplus_parametric(op, ctx):
    inner = ctx.r(op.x) * ctx.r(op.beta)
    sp = inner.monotone(_MONOTONE_UP["softplus"])
    return ctx.r(op.alpha) * sp
