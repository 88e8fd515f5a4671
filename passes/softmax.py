"""Softmax: y = exp(x - max(x)) / sum(exp(x - max(x))); log-softmax: x - max - log(sum(exp(x - max))).

fp16 hazard: the naive exp(x) overflows once x > 11.09 (exp(11.09) = 65504); the sum of n shifted
exponentials reaches n, past 65504 for long rows; the log of a probability below 6e-8 is -inf.
A fully masked row built from finfo(float32).min becomes -inf in fp16 and the softmax NaN.
The native ``softmax`` and ``reduce_log_sum_exp`` ops are one-op members: they are audited, and kept
fp32 only when the analysis says they are at risk or the user asks.
"""
from __future__ import annotations

from milguard.pattern import Bind, P, Rule, either

LOGITS = Bind("x")
EXP_LIMIT = 11.09                 # exp(11.09) = 65504: the largest fp16 exponential


def long_rows(match, interval) -> str | None:
    """Risk of a native softmax: its sum of shifted exponentials (each <= 1) reaches the row length n,
    past 65504 for rows longer than that. Logits that fp16 cannot hold (a finfo(float32).min mask,
    coremltools PR #2669) are no reason here: an fp32 softmax cannot repair an fp16 input, and the
    audit reports the constant that causes it."""
    axis = int(match.root.inputs["axis"].val) if "axis" in match.root.inputs else -1
    shape = match.bindings["x"].shape
    n = shape[axis] if shape and isinstance(shape[axis], int) else None
    if n is not None and n > 65504:
        return f"the row sum of {n} exponentials may exceed 65504"
    return None


def exp_overflows(match, interval) -> str | None:
    """Risk of a native reduce_log_sum_exp: lowered without a max shift on the Neural Engine, its
    exp overflows once x > 11.09 (coremltools issue #2690)."""
    x = interval(match.bindings["x"])
    if x.hi > EXP_LIMIT:
        return f"exp(x) may reach exp({x.hi:.3g}) > 65504"
    return None
AXES = Bind("axes", const=True)


def _sum(v):
    return P.reduce_sum(x=v, axes=AXES, keep_dims=True, name="sum")


_shifted = P.sub(x=LOGITS, y=P.reduce_max(x=LOGITS, axes=AXES, keep_dims=True, name="max"),
                 name="shifted")
_exp = either(("max_shifted", P.exp(x=_shifted, name="exp")),
              ("naive", P.exp(x=LOGITS, name="exp")), axis="shift")

DECOMPOSED = P.real_div(x=_exp, y=_sum(_exp), name="div")
LOG_SOFTMAX_SHIFTED = P.sub(x=_shifted, y=P.log(x=_sum(P.exp(x=_shifted, name="exp")), name="log"))
LOG_SOFTMAX_NAIVE = P.sub(x=LOGITS, y=P.log(x=_sum(P.exp(x=LOGITS, name="exp")), name="log"))
LOG_OF_SOFTMAX = P.log(x=P.softmax(x=LOGITS, axis=Bind("axis", const=True)), name="log")

RULES = [
    Rule("softmax", "softmax.decomposed", DECOMPOSED, benefit=10, core=("exp", "sum", "div")),
    Rule("softmax", "softmax.log_softmax", LOG_SOFTMAX_SHIFTED, benefit=12,
         core=("exp", "sum", "log")),
    Rule("softmax", "softmax.log_softmax_naive", LOG_SOFTMAX_NAIVE, benefit=11,
         core=("exp", "sum", "log")),
    Rule("softmax", "softmax.log_of_softmax", LOG_OF_SOFTMAX, benefit=5),
    Rule("softmax", "softmax.native", P.softmax(x=LOGITS), keep_fp32=False, risk=long_rows),
    Rule("softmax", "softmax.native_log_sum_exp", P.reduce_log_sum_exp(x=LOGITS), keep_fp32=False,
         risk=exp_overflows),
]
