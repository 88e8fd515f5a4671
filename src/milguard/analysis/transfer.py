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
never treated as safe. The functions live in family modules, imported at the end of this one:
:mod:`.transfer_data` (constants, data movement, casts, logic, control flow),
:mod:`.transfer_elementwise`, :mod:`.transfer_reduce` (reductions, norms, softmax) and
:mod:`.transfer_contract` (matmul, linear, conv, einsum, attention).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .interval import Interval

TransferFn = Callable[..., "Interval | list[Interval]"]
FP16_UNIT = 2.0 ** -11
FP16_LIMIT = 65504.0
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


def _acc(result: Interval, n: float, abs_sum: float, u: float, terms: Interval | None = None,
         partial: float | None = None) -> Interval:
    """Widen a sum of n terms by its worst-case accumulation error (n-1)·u·Σ|terms|.

    Terms of one sign cannot cancel: the error is then relative to the sum itself, which keeps
    a sum of squares non-negative. Under fp16 accumulation (u = 2^-11) a running partial sum
    beyond 65504 is inf and stays inf: when ``partial`` (a bound on |partial sums|, default
    ``abs_sum``) exceeds it, ±inf joins the result (NaN too when both signs can overflow).
    """
    out = result
    side = terms if terms is not None and not terms.is_empty else result
    if n > 1 and side.lo == -math.inf and side.hi == math.inf:
        out = out.with_nan(True)              # a term may be +inf and another -inf: inf - inf
    if n > 1:
        if terms is not None and not terms.is_empty and (terms.lo >= 0 or terms.hi <= 0):
            out = result.widen((n - 1) * u)
        elif math.isfinite(abs_sum):
            out = result.widen(0.0, (n - 1) * u * abs_sum)
    bound = abs_sum if partial is None else partial
    if u >= FP16_UNIT and bound > FP16_LIMIT and not out.is_empty:
        pos, neg = side.hi > 0, side.lo < 0
        if pos:
            out = out.hull(Interval.point(math.inf))
        if neg:
            out = out.hull(Interval.point(-math.inf))
        out = out.with_nan(pos and neg)
    return out


def _composite(op, ctx, fp32_rel: float) -> float:
    """Relative slack of an op with several internal steps: each step rounds to fp16 under
    fp16 accumulation (a few units of 2^-11), to fp32 otherwise."""
    return 2.0 ** -8 if ctx.u(op) >= FP16_UNIT else fp32_rel


def _axes(op, ctx):
    """The constant ``axes`` of a reduction as a list (None = all axes)."""
    a = _pv(op, ctx, "axes")
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


# the families register themselves on import
from . import transfer_contract, transfer_data, transfer_elementwise, transfer_reduce  # noqa: E402,F401
