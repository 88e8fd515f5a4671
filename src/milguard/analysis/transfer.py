"""Transfer functions: the interval of every output of an op, from the intervals of its inputs.

A registry ``op type -> fn(op, ctx) -> Interval | list[Interval]``, filled with ``@transfer``.
``ctx`` (a :class:`~milguard.analysis.ranges.Context`) gives ``ctx.r(var)`` (the interval of a
var), ``ctx.val(var)`` (its compile-time value or None) and ``ctx.count(var, axes)`` (how many
elements a reduction over ``axes`` sums; ``inf`` when a dim is symbolic).

Every function is sound over extended reals, not tight. Accumulating ops widen their result by
the worst-case rounding error of an n-term float sum, ``(n-1)·u·Σ|terms|`` (u = 2^-24 for fp32
accumulation, 2^-11 when fp16 accumulation is assumed), so an executed value never escapes its
interval by rounding. The fp16 hazards the rules encode:

* reductions: ``reduce_sum`` of n elements of [a, b] lies in [n·a, n·b] — the classic overflow of
  a sum of squares (n·mean(x²) > 65504 at n = 4096 once the RMS exceeds 4);
* matmul/linear/conv: with a constant weight W the output j lies in
  ``Σ_k [min(W_kj·lo, W_kj·hi), max(W_kj·lo, W_kj·hi)]`` (exact column sums of |W| split by sign);
  with two variable operands, K times the product interval;
* exp overflows for x > ln 65504 ≈ 11.09; pow/square overflow for |x| > 255.9;
* real_div, rsqrt, inverse, log: a denominator or argument that may be 0 makes the result
  unbounded (and 0/0 NaN);
* softmax lies in [0, 1] (tighter when the input width is finite: each of n probabilities is at
  least 1 / (1 + (n-1)·e^(hi-lo))); an input that may be -inf everywhere gives NaN;
* layer_norm: |x_i - mean| / std <= sqrt(n-1) for a population std, so the output lies within
  ``sqrt(n-1)·|gamma| + |beta|`` elementwise.

Ops with no entry here give ``Interval.top()`` and are listed as unknown by the propagation,
never treated as safe.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .interval import INF, Interval, hull_all, safe_exp

TransferFn = Callable[..., "Interval | list[Interval]"]
TRANSFER: dict[str, TransferFn] = {}


def transfer(*op_types: str) -> Callable[[TransferFn], TransferFn]:
    """Register ``fn`` as the transfer function of ``op_types``."""
    def register(fn: TransferFn) -> TransferFn:
        for name in op_types:
            TRANSFER[name] = fn
        return fn
    return register


def _p(op, name: str):
    """An op's parameter var, or None when the op does not have it set."""
    return op.inputs.get(name)


def _pv(op, ctx, name: str, default=None):
    """The compile-time value of a parameter, or ``default``."""
    v = ctx.val(_p(op, name))
    return default if v is None else v


def _scalar(op, ctx, name: str, default: float) -> float:
    v = ctx.val(_p(op, name))
    if v is None:
        return default
    return float(np.asarray(v).reshape(-1)[0])


def _acc(result: Interval, n: float, abs_sum: float, u: float, terms: Interval | None = None) -> Interval:
    """Widen a sum of n terms by its worst-case accumulation error (n-1)·u·Σ|terms|.

    Terms of one sign cannot cancel: the error is then relative to the sum itself, which keeps
    a sum of squares non-negative.
    """
    if n <= 1:
        return result
    if terms is not None and not terms.is_empty and (terms.lo >= 0 or terms.hi <= 0):
        return result.widen((n - 1) * u)
    if not math.isfinite(abs_sum):
        return result
    return result.widen(0.0, (n - 1) * u * abs_sum)


# ---- constants and data movement ---------------------------------------------------------------

@transfer("const")
def _const(op, ctx):
    return Interval.of(op.outputs[0].val)


_SAME = ("identity", "reshape", "transpose", "expand_dims", "squeeze", "slice_by_index",
         "slice_by_size", "reverse", "reverse_sequence", "flatten2d", "tile", "gather",
         "gather_along_axis", "gather_nd", "sliding_windows", "pixel_shuffle", "pixel_unshuffle",
         "depth_to_space", "space_to_depth", "space_to_batch", "batch_to_space", "crop",
         "upsample_nearest_neighbor", "resize_nearest_neighbor", "upsample_bilinear",
         "resize_bilinear", "max_pool", "reshape_like", "split")


@transfer(*_SAME)
def _same(op, ctx):
    """Data movement and convex resampling: every output element is an input element or a
    convex combination of input elements (bilinear weights are >= 0 and sum to 1)."""
    return ctx.r(op.inputs["x"])


@transfer("concat", "stack")
def _concat(op, ctx):
    return hull_all(ctx.r(v) for v in op.inputs["values"])


@transfer("pad")
def _pad(op, ctx):
    x = ctx.r(op.x)
    mode = str(_pv(op, ctx, "mode", "constant"))
    return x.hull(Interval.point(_scalar(op, ctx, "constant_val", 0.0))) if mode == "constant" else x


@transfer("band_part")
def _band_part(op, ctx):
    return ctx.r(op.x).hull(Interval.point(0.0))


@transfer("avg_pool")
def _avg_pool(op, ctx):
    x = ctx.r(op.x)
    padded = str(_pv(op, ctx, "pad_type", "valid")) != "valid" or np.any(_pv(op, ctx, "pad", 0))
    counts_pad = not bool(_pv(op, ctx, "exclude_padding_from_average", False))
    return x.hull(Interval.point(0.0)) if padded and counts_pad else x


@transfer("select")
def _select(op, ctx):
    return ctx.r(op.a).hull(ctx.r(op.b))


@transfer("slice_update")
def _slice_update(op, ctx):
    return ctx.r(op.x).hull(ctx.r(op.update))


@transfer("scatter", "scatter_along_axis", "scatter_nd")
def _scatter(op, ctx):
    mode = str(_pv(op, ctx, "mode", "update"))
    if mode != "update":
        return Interval.top()
    return ctx.r(op.data).hull(ctx.r(op.updates))


@transfer("fill")
def _fill(op, ctx):
    return ctx.r(op.value)


@transfer("fill_like")
def _fill_like(op, ctx):
    return ctx.r(op.value)


@transfer("one_hot")
def _one_hot(op, ctx):
    return ctx.r(op.on_value).hull(ctx.r(op.off_value))


@transfer("range_1d")
def _range_1d(op, ctx):
    return ctx.r(op.start).hull(ctx.r(op.end))


def _index_range(n: float) -> Interval:
    return Interval(0.0, max(n - 1.0, 0.0)) if math.isfinite(n) else Interval(0.0, INF)


@transfer("shape")
def _shape(op, ctx):
    dims = [d for d in op.x.shape if isinstance(d, (int, np.integer))]
    return Interval(0.0, float(max(dims, default=0))) if len(dims) == len(op.x.shape) else Interval(0.0, INF)


@transfer("reduce_argmax", "reduce_argmin", "argsort")
def _arg(op, ctx):
    return _index_range(ctx.count(op.x, [_scalar(op, ctx, "axis", -1)]))


@transfer("topk")
def _topk(op, ctx):
    return [ctx.r(op.x), _index_range(ctx.count(op.x, [_scalar(op, ctx, "axis", -1)]))]


@transfer("non_zero")
def _non_zero(op, ctx):
    return Interval(0.0, float(max((d for d in op.x.shape if isinstance(d, int)), default=INF)))


# ---- casts, comparisons, logic -----------------------------------------------------------------

@transfer("cast")
def _cast(op, ctx):
    x = ctx.r(op.x)
    dtype = str(_pv(op, ctx, "dtype", "fp32"))
    if dtype == "bool":
        return Interval(0.0, 1.0)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype.replace("fp", "float"))
        if x.is_empty:
            return x
        lo = math.floor(x.lo) if math.isfinite(x.lo) else float(info.min)
        hi = math.ceil(x.hi) if math.isfinite(x.hi) else float(info.max)
        # NaN and out-of-range values convert to an implementation-defined integer
        wild = x.may_nan or x.lo < info.min or x.hi > info.max
        return Interval(float(info.min), float(info.max)) if wild else Interval(lo, hi)
    return x          # the rounding to the target float type is applied by the propagation


_BOOL = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
         "logical_and", "logical_or", "logical_xor", "logical_not")


@transfer(*_BOOL)
def _bool(op, ctx):
    return Interval(0.0, 1.0)


# ---- elementwise arithmetic --------------------------------------------------------------------

@transfer("add")
def _add(op, ctx):
    return ctx.r(op.x) + ctx.r(op.y)


@transfer("sub")
def _sub(op, ctx):
    return ctx.r(op.x) - ctx.r(op.y)


@transfer("mul")
def _mul(op, ctx):
    if op.x is op.y:                       # x*x is a square: never negative
        return ctx.r(op.x).square()
    out = ctx.r(op.x) * ctx.r(op.y)
    for d, s in ((op.x, op.y), (op.y, op.x)):
        out = _normalized(out, d, s, ("rsqrt", "pow"), ctx)
    return out


@transfer("real_div")
def _real_div(op, ctx):
    return _normalized(ctx.r(op.x) / ctx.r(op.y), op.x, op.y, ("sqrt",), ctx)


# ---- a relational bound: d / sqrt(mean(d²) + eps) ---------------------------------------------

def _squared(var):
    """d when ``var`` is d², as pow(d, 2), square(d) or mul(d, d); else None."""
    op = getattr(var, "op", None)
    if op is None:
        return None
    if op.op_type == "square" or (op.op_type == "mul" and op.x is op.y):
        return op.x
    if op.op_type == "pow":
        p = const_value_of(op.y)
        if p is not None and np.all(np.asarray(p) == 2.0):
            return op.x
    return None


def const_value_of(var):
    from ..mil import const_value
    return const_value(var)


def _norm_count(d, s, forms: tuple[str, ...], ctx) -> float | None:
    """n when ``s`` is rsqrt / pow(·, -0.5) / sqrt of ``mean(d², axes, keep_dims) + eps`` with a
    constant eps >= 6e-8, else None."""
    op = getattr(s, "op", None)
    if op is None or op.op_type not in forms:
        return None
    if op.op_type == "pow":
        p = const_value_of(op.y)
        if p is None or not np.all(np.asarray(p) == -0.5):
            return None
    if op.op_type == "rsqrt":
        e = ctx.val(_p(op, "epsilon"))
        if e is not None and np.any(np.asarray(e) < 0):
            return None
    add = getattr(op.x, "op", None)
    if add is None or add.op_type != "add":
        return None
    for m, eps in ((add.x, add.y), (add.y, add.x)):
        e = ctx.val(eps)
        mean = getattr(m, "op", None)
        if e is None or mean is None or mean.op_type != "reduce_mean" or np.any(np.asarray(e) < 6e-8):
            continue
        if not bool(_pv(mean, ctx, "keep_dims", False)) or _squared(mean.x) is not d:
            continue
        return ctx.count(mean.x, _axes(mean, ctx))
    return None


def _normalized(plain: Interval, d, s, forms: tuple[str, ...], ctx) -> Interval:
    """|d_i| / sqrt(mean(d²) + eps) <= sqrt(n) (Cauchy-Schwarz: d_i² <= Σ d²), for RMSNorm
    (d = x) and LayerNorm (d = x - mean) alike; eps >= 6e-8 keeps the bound when d² rounds to 0
    in fp16, and an overflowed mean gives 0, inside the bound. 1% slack covers rounding."""
    n = _norm_count(d, s, forms, ctx)
    if n is None or not math.isfinite(n):
        return plain
    k = math.sqrt(n) * 1.01
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
    e = _p(op, "epsilon")
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
    return ctx.r(op.x).clip(_scalar(op, ctx, "alpha", -INF), _scalar(op, ctx, "beta", INF))


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
    beta = _scalar(op, ctx, "beta", INF)
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


# ---- reductions --------------------------------------------------------------------------------

def _axes(op, ctx):
    a = _pv(op, ctx, "axes")
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


@transfer("reduce_sum")
def _reduce_sum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, _axes(op, ctx))
    if n == 0:
        return Interval.point(0.0)
    return _acc(x.scale(n), n, n * x.maxabs, ctx.u(op), x)


@transfer("reduce_mean")
def _reduce_mean(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, _axes(op, ctx))
    if n == 0:
        return Interval.nan_only()
    if not x.is_finite or not math.isfinite(n):
        return x.with_nan(x.lo == -INF and x.hi == INF)
    # the executor sums, then divides: the fp32 sum may overflow even when the mean would fit
    big = float(np.finfo(np.float32).max)
    out = _acc(x, n, x.maxabs, ctx.u(op), x)
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
    x, n = ctx.r(op.x), ctx.count(op.x, _axes(op, ctx))
    if not math.isfinite(n):
        return Interval.top()
    if x.lo >= 0:
        return x.power(n).widen(n * ctx.u(op))
    m = x.abs().power(n)
    return Interval(-m.hi, m.hi, m.may_nan).widen(n * ctx.u(op))


def _squares(x: Interval) -> Interval:
    """x² as a composite op computes it: a tiny square may underflow to 0 before it is summed."""
    sq = x.square()
    return Interval(0.0, sq.hi, sq.may_nan) if not sq.is_empty and sq.lo < 1e-30 else sq


@transfer("reduce_sum_square")
def _reduce_sum_square(op, ctx):
    x, n = _squares(ctx.r(op.x)), ctx.count(op.x, _axes(op, ctx))
    return _acc(x.scale(n), n, n * x.maxabs, ctx.u(op), x)


@transfer("reduce_l1_norm")
def _reduce_l1(op, ctx):
    x, n = ctx.r(op.x).abs(), ctx.count(op.x, _axes(op, ctx))
    return _acc(x.scale(n), n, n * x.maxabs, ctx.u(op), x)


@transfer("reduce_l2_norm")
def _reduce_l2(op, ctx):
    x, n = _squares(ctx.r(op.x)), ctx.count(op.x, _axes(op, ctx))
    return _acc(x.scale(n), n, n * x.maxabs, ctx.u(op), x).monotone(math.sqrt, True, (0.0, INF))


@transfer("reduce_log_sum")
def _reduce_log_sum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, _axes(op, ctx))
    s = _acc(x.scale(n), n, n * x.maxabs, ctx.u(op), x)
    return s.monotone(lambda v: math.log(v) if v > 0 else -INF, True, (0.0, INF))


@transfer("reduce_log_sum_exp")
def _reduce_lse(op, ctx):
    """max(x) <= log Σ e^x <= max(x) + log n (computed stably, with the max subtracted)."""
    x, n = ctx.r(op.x), ctx.count(op.x, _axes(op, ctx))
    if x.is_empty:
        return x
    nan = x.may_nan or x.hi == INF or x.lo == -INF
    return Interval(x.lo, x.hi + math.log(max(n, 1.0)), nan).widen(2.0 ** -20)


@transfer("cumsum")
def _cumsum(op, ctx):
    x, n = ctx.r(op.x), ctx.count(op.x, [int(_scalar(op, ctx, "axis", 0))])
    if x.is_empty:
        return x
    out = x.hull(x.scale(n))
    if bool(_pv(op, ctx, "exclusive", False)):
        out = out.hull(Interval.point(0.0))
    return _acc(out, n, n * x.maxabs, ctx.u(op))


# ---- normalisation and softmax -----------------------------------------------------------------

@transfer("softmax")
def _softmax(op, ctx):
    """Probabilities in [0, 1]; the bound p >= 1/(1 + (n-1)·e^(hi-lo)) shows how small they get.

    NaN when the input may be +inf (inf - inf after the max subtraction) or -inf in a whole
    row (a fully masked row: -inf - (-inf)).
    """
    x = ctx.r(op.x)
    n = ctx.count(op.x, [int(_scalar(op, ctx, "axis", -1))])
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
    return Interval(lo, hi, nan).widen(2.0 ** -20)


def _affine_tail(core: Interval, gamma: Interval | None, beta: Interval | None) -> Interval:
    out = core if gamma is None else core * gamma
    return out if beta is None else out + beta


def _norm_core(x: Interval, n: float) -> Interval:
    """(x - mean)/sqrt(var + eps) for n elements: |.| <= sqrt(n-1); NaN once x may be ±inf."""
    if x.is_empty:
        return x
    nan = x.may_nan or x.has_inf
    if not math.isfinite(n):
        return Interval(-INF, INF, nan)
    k = math.sqrt(max(n - 1.0, 0.0))
    return Interval(-k, k, nan).widen(2.0 ** -16, 1e-6)


def _opt(op, ctx, name):
    v = _p(op, name)
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
    n = ctx.count(op.x, _axes(op, ctx))
    return _elementwise_affine(_norm_core(x, n), _p(op, "gamma"), _p(op, "beta"), ctx)


@transfer("instance_norm")
def _instance_norm(op, ctx):
    x = ctx.r(op.x)
    n = ctx.count(op.x, list(range(2, len(op.x.shape))))
    core = _norm_core(x, n)
    return _affine_tail(core, _opt(op, ctx, "gamma"), _opt(op, ctx, "beta"))


@transfer("l2_norm")
def _l2_norm(op, ctx):
    x = ctx.r(op.x)
    return Interval(-1.0, 1.0, x.may_nan or x.has_inf).widen(2.0 ** -16)


@transfer("batch_norm")
def _batch_norm(op, ctx):
    """Per channel: x·s + t with s = gamma/sqrt(var + eps), t = beta - mean·s (constants)."""
    x = ctx.r(op.x)
    stats = [ctx.val(_p(op, k)) for k in ("mean", "variance", "gamma", "beta", "epsilon")]
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
                    ).widen(2.0 ** -20)


@transfer("local_response_norm")
def _lrn(op, ctx):
    """x / (k + alpha/size · Σ x²)^beta: for k > 0, alpha >= 0, beta >= 0, |y| <= |x| / k^beta."""
    x = ctx.r(op.x)
    k, alpha, beta = (_scalar(op, ctx, n, d) for n, d in (("k", 1.0), ("alpha", 1e-4), ("beta", 0.75)))
    if k <= 0 or alpha < 0 or beta < 0:
        return Interval.top()
    m = x.maxabs / k ** beta
    return Interval(-m, m, x.may_nan or x.has_inf).widen(2.0 ** -16)


@transfer("l2_pool")
def _l2_pool(op, ctx):
    """sqrt(Σ x²) over a window of prod(kernel_sizes) elements."""
    x = ctx.r(op.x)
    n = float(np.prod(np.asarray(_pv(op, ctx, "kernel_sizes", [1]))))
    sq = _squares(x)
    return _acc(Interval(0.0, sq.hi).scale(n), n, n * sq.maxabs, ctx.u(op)).monotone(
        math.sqrt, True, (0.0, INF))


@transfer("thresholded_relu")
def _thresholded_relu(op, ctx):
    return ctx.r(op.x).hull(Interval.point(0.0))


# ---- control flow ------------------------------------------------------------------------------

@transfer("cond")
def _cond(op, ctx):
    """The hull of both branches' outputs (the branches are visited before the op)."""
    outs = [list(b.outputs) for b in op.blocks]
    return [hull_all(ctx.r(branch[i]) for branch in outs if i < len(branch))
            for i in range(len(op.outputs))]


@transfer("while_loop")
def _while_loop(op, ctx):
    """Loop-carried values are not bounded by this analysis: every output is unbounded."""
    return Interval.top()


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
    return _acc(out, w.shape[0], abs_sum, u)


def _dot_var(x: Interval, y: Interval, k: float, u: float) -> Interval:
    if k == 0:
        return Interval.point(0.0)
    prod = x * y
    return _acc(prod.scale(k), k, k * prod.maxabs, u)


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
    tx, ty = bool(_pv(op, ctx, "transpose_x", False)), bool(_pv(op, ctx, "transpose_y", False))
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
    if int(_scalar(op, ctx, "axis", -1)) % max(rank, 1) != rank - 1:
        return plain
    return plain.meet(values.widen(2.0 ** -10 + k * 2.0 ** -23).with_nan(True))


@transfer("linear")
def _linear(op, ctx):
    """x @ W.T + b, per output feature j: Σ_k W[j, k]·x_k + b_j."""
    x, w = ctx.r(op.x), ctx.val(op.weight)
    bias = _p(op, "bias")
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
        b = ctx.val(_p(op, "bias"))
        if b is not None or _p(op, "bias") is None:
            return _dot_const(x, w.reshape(w.shape[0], -1).T, u, b)
        out = _dot_const(x, w.reshape(w.shape[0], -1).T, u)
    bias = _p(op, "bias")
    return out if bias is None else out + ctx.r(bias)


@transfer("einsum")
def _einsum(op, ctx):
    a, b = (ctx.r(v) for v in op.inputs["values"])
    eq = str(_pv(op, ctx, "equation", ""))
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
    mask = _p(op, "attn_mask")
    nan = v.may_nan or (mask is not None and ctx.r(mask).has_inf)
    return v.with_nan(nan or ctx.r(op.query).has_inf or ctx.r(op.key).has_inf)
