"""Transfer functions of reductions, normalisations and softmax: where fp16 sums overflow."""
from __future__ import annotations

import math

import numpy as np

from .. import fp16
from . import relational
from .interval import INF, Interval, hull_all, safe_exp
from .transfer_registry import (
    accumulated, composite_slack, const_axes, param, param_value, scalar_param, transfer,
)


# ---- reductions --------------------------------------------------------------------------------


@transfer("reduce_sum")
def _reduce_sum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, const_axes(op, ctx))
    if n == 0:
        return Interval.point(0.0)
    return relational.reduce_sum(op, ctx, accumulated(x.scale(n), n, n * x.maxabs, ctx.u(op), x))


@transfer("reduce_mean")
def _reduce_mean(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, const_axes(op, ctx))
    if n == 0:
        return Interval.nan_only()
    if not x.is_finite or not math.isfinite(n):
        return x.with_nan(x.lo == -INF and x.hi == INF)
    # the executor sums, then divides: the fp32 sum may overflow even when the mean would fit
    big = float(np.finfo(np.float32).max)
    out = accumulated(x, n, x.maxabs, ctx.u(op), x, partial=n * x.maxabs)
    if n * x.hi > big:
        out = out.hull(Interval.point(INF))
    if n * x.lo < -big:
        out = out.hull(Interval.point(-INF))
    return out.with_nan(n * x.hi > big and n * x.lo < -big)


@transfer("reduce_max", "reduce_min")
def _reduce_max(op, ctx):
    return ctx.r(op.x)


@transfer("reduce_prod")
def _reduce_prod(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, const_axes(op, ctx))
    if not math.isfinite(n):
        return Interval.top()
    if x.lo >= 0:
        return x.power(n).widen(n * ctx.u(op))
    m = x.abs().power(n)
    return Interval(-m.hi, m.hi, m.may_nan).widen(n * ctx.u(op))


def _squares(x: Interval, op, ctx) -> Interval:
    """x² as a composite op computes it before summing: a tiny square may underflow to 0 (below
    ~1e-45 in fp32; under fp16 accumulation each square is rounded to fp16, where everything
    below 6.1e-5 is subnormal, spaced 6e-8 apart)."""
    sq = x.square()
    if sq.is_empty:
        return sq
    half = ctx.u(op) >= fp16.UNIT_ROUNDOFF
    if sq.lo < (fp16.MIN_NORMAL if half else 1e-30):
        sq = Interval(0.0, sq.hi, sq.may_nan)
    return sq.widen(0.0, fp16.MIN_SUBNORMAL) if half else sq


@transfer("reduce_sum_square")
def _reduce_sum_square(op, ctx):
    x, n = _squares(ctx.r(op.x), op, ctx), ctx.count(op.x, const_axes(op, ctx))
    return accumulated(x.scale(n), n, n * x.maxabs, ctx.u(op), x)


@transfer("reduce_l1_norm")
def _reduce_l1(op, ctx):
    x, n = ctx.r(op.x).abs(), ctx.count(op.x, const_axes(op, ctx))
    return accumulated(x.scale(n), n, n * x.maxabs, ctx.u(op), x)


@transfer("reduce_l2_norm")
def _reduce_l2(op, ctx):
    x, n = _squares(ctx.r(op.x), op, ctx), ctx.count(op.x, const_axes(op, ctx))
    return accumulated(x.scale(n), n, n * x.maxabs, ctx.u(op), x).monotone(math.sqrt, True, (0.0, INF))


@transfer("reduce_log_sum")
def _reduce_log_sum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, const_axes(op, ctx))
    s = accumulated(x.scale(n), n, n * x.maxabs, ctx.u(op), x)
    return s.monotone(lambda v: math.log(v) if v > 0 else -INF, True, (0.0, INF))


@transfer("reduce_log_sum_exp")
def _reduce_lse(op, ctx):
    """max(x) <= log Σ e^x <= max(x) + log n (computed stably, with the max subtracted)."""
    x, n = ctx.r(op.x), ctx.count(op.x, const_axes(op, ctx))
    if x.is_empty:
        return x
    nan = x.may_nan or x.hi == INF or x.lo == -INF
    return Interval(x.lo, x.hi + math.log(max(n, 1.0)), nan).widen(composite_slack(op, ctx, 2.0 ** -20))


@transfer("cumsum")
def _cumsum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, [int(scalar_param(op, ctx, "axis", 0))])
    if x.is_empty:
        return x
    out = x.hull(x.scale(n))
    if bool(param_value(op, ctx, "exclusive", False)):
        out = out.hull(Interval.point(0.0))
    return accumulated(out, n, n * x.maxabs, ctx.u(op))


# ---- normalisation and softmax -----------------------------------------------------------------

@transfer("softmax")
def _softmax(op, ctx):
    """Probabilities in [0, 1]; the bound p >= 1/(1 + (n-1)·e^(hi-lo)) shows how small they get.

    NaN when the input may be +inf (inf - inf after the max subtraction) or -inf in a whole
    row (a fully masked row: -inf - (-inf)).
    """
    x = ctx.r(op.x)
    n = ctx.count(op.x, [int(scalar_param(op, ctx, "axis", -1))])
    nan = x.may_nan or x.has_inf
    if x.is_empty:
        return x
    if not x.is_finite or not math.isfinite(n) or n <= 1:
        return Interval(0.0 if n != 1 else 1.0, 1.0, nan)
    w = x.hi - x.lo
    big = (n - 1.0) * safe_exp(w)
    lo = 1.0 / (1.0 + big) if math.isfinite(big) else 0.0
    small = (n - 1.0) * safe_exp(-w)
    hi = 1.0 / (1.0 + small)
    return Interval(lo, hi, nan).widen(composite_slack(op, ctx, 2.0 ** -20))


def _affine_tail(core: Interval, gamma: Interval | None, beta: Interval | None) -> Interval:
    out = core if gamma is None else core * gamma
    return out if beta is None else out + beta


def _norm_core(x: Interval, n: float, op=None, ctx=None) -> Interval:
    """(x - mean)/sqrt(var + eps) for n elements: |.| <= sqrt(n-1); NaN once x may be ±inf, or
    under fp16 accumulation once x - mean or the running sum of x may overflow (inf/inf)."""
    if x.is_empty:
        return x
    nan = x.may_nan or x.has_inf
    if not math.isfinite(n):
        return Interval(-INF, INF, nan)
    half = op is not None and ctx.u(op) >= fp16.UNIT_ROUNDOFF
    if half and (x.hi - x.lo > fp16.MAX or n * x.maxabs > fp16.MAX):
        nan = True
    k = math.sqrt(max(n - 1.0, 0.0))
    if half:
        # the fp16 variance may fall short by θ (one rounding per block of 32 terms and a few
        # more steps); each later step rounds again: a generous 2^-5 covers them
        theta = (math.ceil(n / 32) + 3) * fp16.UNIT_ROUNDOFF
        if theta >= 0.5:
            return Interval(-INF, INF, nan)
        return Interval(-k, k, nan).widen((1.0 / math.sqrt(1.0 - theta)) * (1 + 2.0 ** -5) - 1.0, 1e-3)
    return Interval(-k, k, nan).widen(2.0 ** -16, 1e-6)


def _opt(op, ctx, name):
    v = param(op, name)
    return None if v is None else ctx.r(v)


def _elementwise_affine(core: Interval, gamma, beta, ctx) -> Interval:
    """core·gamma + beta per element; with constant gamma/beta use the per-element pairs."""
    g, b = ctx.val(gamma), ctx.val(beta)
    if g is not None and b is not None and not core.is_empty:
        g, b = np.broadcast_arrays(np.asarray(g, np.float64), np.asarray(b, np.float64))
        ends = np.stack([g * core.lo, g * core.hi]) if core.is_finite else None
        if ends is not None:
            return Interval(float((ends.min(0) + b).min()), float((ends.max(0) + b).max()), core.may_nan)
    return _affine_tail(core, None if gamma is None else ctx.r(gamma), None if beta is None else ctx.r(beta))


@transfer("layer_norm")
def _layer_norm(op, ctx):
    x = ctx.r(op.x)
    n = ctx.count(op.x, const_axes(op, ctx))
    core = _norm_core(x, n, op, ctx)
    return _tail_rounding(_elementwise_affine(core, param(op, "gamma"), param(op, "beta"), ctx),
                          core, _opt(op, ctx, "gamma"), op, ctx)


@transfer("instance_norm")
def _instance_norm(op, ctx):
    x = ctx.r(op.x)
    n = ctx.count(op.x, list(range(2, len(op.x.shape))))
    core = _norm_core(x, n, op, ctx)
    return _tail_rounding(_affine_tail(core, _opt(op, ctx, "gamma"), _opt(op, ctx, "beta")),
                          core, _opt(op, ctx, "gamma"), op, ctx)


def _tail_rounding(out: Interval, core: Interval, gamma: Interval | None, op, ctx) -> Interval:
    """Under fp16 accumulation core·gamma is rounded to fp16 before beta is added: an absolute
    error of 2^-11·|core·gamma| that beta may leave uncancelled."""
    if ctx.u(op) < fp16.UNIT_ROUNDOFF or out.is_empty:
        return out
    scaled = core if gamma is None else core * gamma
    return out.widen(2.0 ** -9, 2.0 ** -9 * scaled.maxabs) if scaled.is_finite else out


@transfer("l2_norm")
def _l2_norm(op, ctx):
    x = ctx.r(op.x)
    return Interval(-1.0, 1.0, x.may_nan or x.has_inf).widen(composite_slack(op, ctx, 2.0 ** -16))


@transfer("batch_norm")
def _batch_norm(op, ctx):
    """Per channel: x·s + t with s = gamma/sqrt(var + eps), t = beta - mean·s (constants)."""
    x = ctx.r(op.x)
    stats = [ctx.val(param(op, k)) for k in ("mean", "variance", "gamma", "beta", "epsilon")]
    mean, var = stats[0], stats[1]
    if mean is None or var is None:
        return Interval.top()
    gamma = 1.0 if stats[2] is None else stats[2]
    beta = 0.0 if stats[3] is None else stats[3]
    eps = 1e-5 if stats[4] is None else stats[4]
    mean, var, gamma, beta = (np.asarray(a, np.float64) for a in (mean, var, gamma, beta))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = gamma / np.sqrt(var + float(eps))
    t = beta - mean * s
    if not np.all(np.isfinite(s)) or not np.all(np.isfinite(t)):
        return Interval.top()
    return hull_all(x * Interval.point(si) + Interval.point(ti)
                    for si, ti in zip(np.atleast_1d(s).reshape(-1), np.atleast_1d(t).reshape(-1))
                    ).widen(composite_slack(op, ctx, 2.0 ** -20))


@transfer("local_response_norm")
def _lrn(op, ctx):
    """x / (k + alpha/size · Σ x²)^beta: for k > 0, alpha >= 0, beta >= 0, |y| <= |x| / k^beta."""
    x = ctx.r(op.x)
    k, alpha, beta = (scalar_param(op, ctx, n, d) for n, d in (("k", 1.0), ("alpha", 1e-4), ("beta", 0.75)))
    if k <= 0 or alpha < 0 or beta < 0:
        return Interval.top()
    m = x.maxabs / k ** beta
    return Interval(-m, m, x.may_nan or x.has_inf).widen(composite_slack(op, ctx, 2.0 ** -16))


@transfer("l2_pool")
def _l2_pool(op, ctx):
    """sqrt(Σ x²) over a window of prod(kernel_sizes) elements."""
    x = ctx.r(op.x)
    n = float(np.prod(np.asarray(param_value(op, ctx, "kernel_sizes", [1]))))
    sq = _squares(x, op, ctx)
    return accumulated(Interval(0.0, sq.hi).scale(n), n, n * sq.maxabs, ctx.u(op)).monotone(
        math.sqrt, True, (0.0, INF))


@transfer("thresholded_relu")
def _thresholded_relu(op, ctx):
    return ctx.r(op.x).hull(Interval.point(0.0))
