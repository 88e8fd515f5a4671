"""The registry of transfer functions and the helpers the family modules share.

``TRANSFER`` maps an op type to ``fn(op, ctx) -> Interval | list[Interval]``; ``@transfer`` fills
it. The family modules (:mod:`.transfer_data`, :mod:`.transfer_elementwise`,
:mod:`.transfer_reduce`, :mod:`.transfer_contract`) import this module and nothing imports them
back except :mod:`.transfer`, which loads them all: dependencies run one way.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import fp16
from .interval import Interval

TransferFn = Callable[..., "Interval | list[Interval]"]
TRANSFER: dict[str, TransferFn] = {}


def transfer(*op_types: str) -> Callable[[TransferFn], TransferFn]:
    """Register ``fn`` as the transfer function of ``op_types``."""
    def register(fn: TransferFn) -> TransferFn:
        for name in op_types:
            TRANSFER[name] = fn
        return fn
    return register


def param(op, name: str):
    """An op's parameter var, or None when the op does not have it set."""
    return op.inputs.get(name)


def param_value(op, ctx, name: str, default=None):
    """The compile-time value of a parameter, or ``default``."""
    v = ctx.val(param(op, name))
    return default if v is None else v


def scalar_param(op, ctx, name: str, default: float) -> float:
    v = ctx.val(param(op, name))
    if v is None:
        return default
    return float(np.asarray(v).reshape(-1)[0])


def accumulated(result: Interval, n: float, abs_sum: float, u: float, terms: Interval | None = None,
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
    if u >= fp16.UNIT_ROUNDOFF and bound > fp16.MAX and not out.is_empty:
        pos, neg = side.hi > 0, side.lo < 0
        if pos:
            out = out.hull(Interval.point(math.inf))
        if neg:
            out = out.hull(Interval.point(-math.inf))
        out = out.with_nan(pos and neg)
    return out


def composite_slack(op, ctx, fp32_rel: float) -> float:
    """Relative slack of an op with several internal steps: each step rounds to fp16 under
    fp16 accumulation (a few units of 2^-11), to fp32 otherwise."""
    return 2.0 ** -8 if ctx.u(op) >= fp16.UNIT_ROUNDOFF else fp32_rel


def const_axes(op, ctx):
    """The constant ``axes`` of a reduction as a list (None = all axes)."""
    a = param_value(op, ctx, "axes")
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]
