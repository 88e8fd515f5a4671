"""Softmax: y = exp(x - max(x)) / sum(exp(x - max(x))); log-softmax: x - max - log(sum(exp(x - max))).

fp16 hazard: the naive exp(x) overflows once x > 11.09 (exp(11.09) = 65504) and underflows to 0 below
-17.3, so a row of low logits divides 0 by 0; the sum of n shifted exponentials reaches n, past 65504
for rows longer than that; log(softmax) takes the log of probabilities that fp16 flushes below 6.1e-5.
The native ``softmax``, ``reduce_log_sum_exp`` and (iOS18) ``scaled_dot_product_attention`` ops are
one-op members. reduce_log_sum_exp is lowered without a max shift on the Neural Engine
(coremltools #2690: at 32 channels it overflows from x = ln(65504/32) = 7.63). In
scaled_dot_product_attention the q·kᵀ logits are the hazard; milguard audits it and has no rewrite.

Rescale (no fp32 op): the max-shifted forms, with m = max(x) over the axes:
    softmax(x)     = e / sum(e),                e = exp(x - m) in (0, 1], 1 <= sum(e) <= n
    log_softmax(x) = (x - m) - log(sum(e)),     x - m <= 0, 0 <= log(sum(e)) <= ln n
    logsumexp(x)   = m + log(sum(e))
all exact; every intermediate is bounded by n or by the logits themselves.
"""
from __future__ import annotations

import math

from milguard import fp16
from milguard.families import Family, Member
from milguard.pattern import Any, Bind, P, Rule, either

from ._common import axes_of, keep_dims, op_axes, row_length

LOGITS = Bind("x")
AXES = Bind("axes", const=True)
EXP_UNDERFLOW = math.log(fp16.MIN_SUBNORMAL / 2)     # exp(x) rounds to 0 in fp16 below ln(2^-25) = -17.3


def _sum(v):
    return P.reduce_sum(x=v, axes=AXES, keep_dims=True, name="sum")


_shifted = P.sub(x=LOGITS, y=P.reduce_max(x=LOGITS, axes=AXES, keep_dims=True, name="max"), name="shifted")
_exp = either(("max_shifted", P.exp(x=_shifted, name="exp")),
              ("naive", P.exp(x=LOGITS, name="exp")), axis="shift")

DECOMPOSED = P.real_div(x=_exp, y=_sum(_exp), name="div")
LOG_SOFTMAX_SHIFTED = P.sub(x=_shifted, y=P.log(x=_sum(P.exp(x=_shifted, name="exp")), name="log"))
LOG_SOFTMAX_NAIVE = P.sub(x=LOGITS, y=P.log(x=_sum(P.exp(x=LOGITS, name="exp")), name="log"))
LOG_OF_SOFTMAX = P.log(x=P.softmax(x=LOGITS, axis=Bind("axis", const=True), name="softmax"), name="log")
SDPA = P.scaled_dot_product_attention(query=Bind("q"), key=Bind("k"), value=Any())


# ---- rewrites: the max-shifted forms --------------------------------------------------------------

def _axes(match) -> list[int]:
    return axes_of(match) if "axes" in match.bindings else [int(match.bindings["axis"].val)]


def _shift(emit, x, axes):
    return emit.sub(x=x, y=emit.reduce_max(x=x, axes=axes, keep_dims=True))


def shifted_softmax(match, emit):
    """exp(x - m) / sum(exp(x - m))."""
    axes = _axes(match)
    e = emit.exp(x=_shift(emit, match.bindings["x"], axes))
    return emit.real_div(x=e, y=emit.reduce_sum(x=e, axes=axes, keep_dims=True))


def shifted_log_softmax(match, emit):
    """(x - m) - log(sum(exp(x - m)))."""
    axes = _axes(match)
    sh = _shift(emit, match.bindings["x"], axes)
    return emit.sub(x=sh, y=emit.log(x=emit.reduce_sum(x=emit.exp(x=sh), axes=axes, keep_dims=True)))


def shifted_log_sum_exp(match, emit):
    """m + log(sum(exp(x - m))), with reduce_log_sum_exp's own axes and keep_dims."""
    op, x = match.root, match.bindings["x"]
    axes, keep = op_axes(op), keep_dims(op)
    m = emit.reduce_max(x=x, axes=axes, keep_dims=True)
    total = emit.reduce_sum(x=emit.exp(x=emit.sub(x=x, y=m)), axes=axes, keep_dims=keep)
    return emit.add(x=emit.log(x=total), y=m if keep else emit.squeeze(x=m, axes=axes))


# ---- risk -----------------------------------------------------------------------------------------

def _row(match) -> int | None:
    op = match.root
    if op.op_type == "softmax":
        return row_length(match.bindings["x"], [int(op.inputs["axis"].val) if "axis" in op.inputs else -1])
    if op.op_type == "reduce_log_sum_exp":
        return row_length(match.bindings["x"], op_axes(op))
    if "axes" in match.bindings or "axis" in match.bindings:
        return row_length(match.bindings["x"], _axes(match))
    return None


def long_rows(match, evidence) -> str | None:
    """The sum of n shifted exponentials (each <= 1) reaches n: past 65504 for longer rows."""
    n = _row(match)
    if n is not None and n > fp16.MAX:
        return f"the row sum of {n} exponentials may exceed 65504"
    return None


def naive_exp(match, evidence) -> str | None:
    """exp(x) of unshifted logits: overflow past 11.09, and 0/0 for a row that underflows entirely."""
    x = evidence.interval(match.bindings["x"])
    if not math.isfinite(x.maxabs):
        return f"the logits are {evidence.bound(x)} ({evidence.describe()})"
    if x.hi > fp16.EXP_LIMIT:
        return f"exp(x) may reach exp({x.hi:.4g}) > 65504 ({evidence.describe()})"
    if x.lo < EXP_UNDERFLOW:
        return (f"exp(x) underflows to 0 below {EXP_UNDERFLOW:.3g} and the logits reach {x.lo:.4g}: a row of "
                f"such logits divides 0 by 0 ({evidence.describe()})")
    return None


def log_of_small(match, evidence) -> str | None:
    """log(softmax(x)): the smallest probability is at least exp(-(hi - lo)) / n; below 6.1e-5 fp16
    loses it (subnormal, then 0, and log(0) = -inf)."""
    x = evidence.interval(match.bindings["x"])
    n = _row(match) or 1
    if not math.isfinite(x.maxabs):
        return f"the logits are {evidence.bound(x)} ({evidence.describe()})"
    smallest = math.exp(-(x.hi - x.lo)) / n
    if smallest < fp16.MIN_NORMAL:
        return (f"probabilities may fall to {smallest:.3g} < 6.1e-5, where fp16 loses them before the log "
                f"({evidence.describe()})")
    return None


def log_sum_exp_overflow(match, evidence) -> str | None:
    """Native reduce_log_sum_exp, lowered without a shift: n·exp(max x) must stay below 65504."""
    x = evidence.interval(match.bindings["x"])
    n = _row(match) or 1
    if not math.isfinite(x.hi):
        return f"the input is {evidence.bound(x)} ({evidence.describe()})"
    limit = math.log(fp16.MAX / n)
    if x.hi > limit:
        return (f"the unshifted sum of {n} exponentials may reach {n}·exp({x.hi:.4g}) > 65504 "
                f"(x > {limit:.3g}; coremltools #2690) ({evidence.describe()})")
    return None


def logits_overflow(match, evidence) -> str | None:
    """q·kᵀ of attention: |q·k| <= d · max|q| · max|k| over the head dimension d."""
    q, k = evidence.interval(match.bindings["q"]), evidence.interval(match.bindings["k"])
    shape = match.bindings["q"].shape
    d = shape[-1] if shape and isinstance(shape[-1], int) else None
    if d is None or not (math.isfinite(q.maxabs) and math.isfinite(k.maxabs)):
        return f"q·kᵀ is unbounded: q is {evidence.bound(q)}, k is {evidence.bound(k)} ({evidence.describe()})"
    logits = d * q.maxabs * k.maxabs
    if logits > fp16.MAX:
        return f"q·kᵀ may reach {logits:.4g} > 65504 (d = {d}) ({evidence.describe()})"
    return None


def decomposed_risk(match, evidence) -> str | None:
    """The naive exp of an unshifted decomposed softmax; the row sum of a shifted one."""
    return (naive_exp if match.labels.get("shift") == "naive" else long_rows)(match, evidence)


def _naive_only(match) -> str | None:
    return None if match.labels.get("shift") == "naive" else "already max-shifted"


FAMILY = Family(
    "softmax", "softmax",
    "exp(x − max)/sum; an unshifted exp overflows fp16 once x > 11.09, log(p) loses p < 6.1e-5",
    members=(
        Member(Rule("softmax.decomposed", DECOMPOSED, benefit=10, rewrite=shifted_softmax),
               core=("exp", "sum", "div"), rescale_passes=2, rescalable=_naive_only, risk=decomposed_risk),
        Member(Rule("softmax.log_softmax", LOG_SOFTMAX_SHIFTED, benefit=12), core=("exp", "sum", "log")),
        Member(Rule("softmax.log_softmax_naive", LOG_SOFTMAX_NAIVE, benefit=11, rewrite=shifted_log_softmax),
               core=("exp", "sum", "log"), rescale_passes=2, risk=naive_exp),
        Member(Rule("softmax.log_of_softmax", LOG_OF_SOFTMAX, benefit=5, rewrite=shifted_log_softmax),
               rescale_passes=3, risk=log_of_small),
        Member(Rule("softmax.native", P.softmax(x=LOGITS)), native=True),
        Member(Rule("softmax.native_log_sum_exp", P.reduce_log_sum_exp(x=LOGITS), rewrite=shifted_log_sum_exp),
               native=True, rescale_passes=4, risk=log_sum_exp_overflow),
        Member(Rule("softmax.native_attention", SDPA), native=True, remedies=(), risk=logits_overflow),
    ),
    risk=long_rows,
)
