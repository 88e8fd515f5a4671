"""Building blocks shared by the pattern families: the math, named after the math.

Patterns (``mean``, ``square``, ``normalize``), checks on the reduction axes, the fp16-safe
rescaled forms the rewrites build (``row_scale``, ``eps_term``), the patterns that recognise them,
and the risk tests the families combine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from milguard import fp16
from milguard.pattern import Bind, Const, P, either

X = Bind("x")                            # the tensor being normalised
AXES = Bind("axes", const=True)          # one binding: every reduction of a match uses the same axes
GAMMA = Bind("gamma", const=True)
BETA = Bind("beta", const=True)


def _is_scalar(v: np.ndarray) -> bool:
    return v.size == 1


def _scalar(v: np.ndarray) -> float:
    return float(np.asarray(v).reshape(()))


EPS = Const("eps", lambda v: _is_scalar(v) and 0.0 < _scalar(v) <= 1e-2,
            "a small positive constant (0 < eps <= 1e-2)")
TWO = Const("exponent", lambda v: _is_scalar(v) and _scalar(v) == 2.0, "exactly 2", bind=False)
MINUS_HALF = Const("exponent", lambda v: _is_scalar(v) and _scalar(v) == -0.5, "exactly -0.5", bind=False)


def mean(v, name: str):
    """mean over AXES, keeping dims (what torch's ``mean(dim, keepdim=True)`` becomes)."""
    return P.reduce_mean(x=v, axes=AXES, keep_dims=True, name=name)


def square(v):
    """v**2 in the three spellings converters emit."""
    return either(("pow", P.pow(x=v, y=TWO, name="square")),
                  ("square", P.square(x=v, name="square")),
                  ("mul", P.mul(x=v, y=v, name="square")), axis="square")


def normalize(numerator, variance_plus_eps):
    """numerator / sqrt(variance + eps) in its three spellings (the division op is "normalized")."""
    return either(("rsqrt", P.mul(x=numerator, y=P.rsqrt(x=variance_plus_eps, name="inv_std"),
                                  name="normalized")),
                  ("sqrt_div", P.real_div(x=numerator, y=P.sqrt(x=variance_plus_eps, name="inv_std"),
                                          name="normalized")),
                  ("pow_-0.5", P.mul(x=numerator, y=P.pow(x=variance_plus_eps, y=MINUS_HALF, name="inv_std"),
                                     name="normalized")),
                  axis="inv_std")


def axes_of(match, name: str = "axes") -> list[int]:
    """The axes bound as ``name`` (a scalar or a list) as a list of ints."""
    return [int(a) for a in np.atleast_1d(match.bindings[name].val)]


def op_axes(op) -> list[int]:
    """The ``axes`` input of a native reduction or norm op, in [0, rank); every axis when absent."""
    rank = op.inputs["x"].rank
    axes = op.inputs.get("axes")
    return [int(a) % rank for a in axes.val] if axes is not None else list(range(rank))


def keep_dims(op) -> bool:
    """The ``keep_dims`` input of a native reduction op (False when absent, its default)."""
    kd = op.inputs.get("keep_dims")
    return bool(kd.val) if kd is not None else False


def reduced_axes(match) -> tuple[str | None, str]:
    """('last_axis' | 'channel_axis' | None, description) for the AXES binding of a match."""
    axes = axes_of(match)
    rank = match.bindings["x"].rank
    norm = sorted(a % rank for a in axes) if rank > 0 else axes
    if norm == [rank - 1]:
        return "last_axis", f"axes {axes}"
    if norm == [1] and rank >= 3:
        return "channel_axis", f"axes {axes}"
    return None, f"axes {axes} of a rank-{rank} tensor"


def last_or_channel_axis(match) -> str | None:
    """Check: the reductions run over the last axis or the channel axis 1 (LayerNorm2d)."""
    label, described = reduced_axes(match)
    if label is None:
        return f"reduces over {described}; expected the last axis or the channel axis 1"
    match.labels["axis"] = label
    return None


# ---- the rescaled forms (what the rewrites build) ------------------------------------------------
#
# For a row x (the elements a reduction over AXES combines) and s > 0:
#     mean(x²) + eps = s² · (mean((x/s)²) + (sqrt(eps)/s)²)
# so x · rsqrt(mean(x²) + eps) = u · rsqrt(mean(u²) + t) with u = x/s and t = (sqrt(eps)/s)²,
# exactly, for any s > 0. With s = max(max|x|, f): |u| <= 1, u² <= 1, mean(u²) <= 1, and some
# |u| = 1 (so mean(u²) >= 1/n) unless the whole row is below f; t <= (sqrt(eps)/f)² <= 2^14.
# No intermediate can leave fp16 for any finite input, and eps is carried exactly (coremltools'
# own max-abs lowering adds eps to mean(u²) instead of (sqrt(eps)/s)², inflating it by s²).

def scale_floor(eps: float) -> float:
    """The smallest scale f a rescaled form divides by: a power of two (dividing by it is exact),
    at least fp16's smallest subnormal 2^-24, and at least sqrt(eps)/128 so that
    t = (sqrt(eps)/s)² <= 128² = 16384 stays finite in fp16 for every s >= f."""
    if eps <= 0:
        return fp16.MIN_SUBNORMAL
    return max(fp16.MIN_SUBNORMAL, 2.0 ** math.ceil(math.log2(math.sqrt(eps) / 128.0)))


def rescaled_rms(emit, v, axes: list[int], eps: float):
    """v · rsqrt(mean(v²) + eps), computed as u · rsqrt(mean(u²) + (sqrt(eps)/s)²) with u = v/s
    (see above): RMSNorm's normalised value, and LayerNorm's of the deviations v = x - mean(x)."""
    s = row_scale(emit, v, axes, scale_floor(eps))
    u = emit.real_div(x=v, y=s)
    mean_square = emit.reduce_mean(x=emit.square(x=u), axes=axes, keep_dims=True)
    return emit.mul(x=u, y=inv_sqrt(emit, emit.add(x=mean_square, y=eps_term(emit, eps, s))))


def row_scale(emit, x, axes: list[int], floor: float):
    """s = max(max|x| over ``axes`` (kept), floor): one scale per row, 0 < s, |x/s| <= 1."""
    peak = emit.reduce_max(x=emit.abs(x=x), axes=axes, keep_dims=True)
    return emit.maximum(x=peak, y=emit.const(floor))


def eps_term(emit, eps: float, s):
    """t = (sqrt(eps)/s)² = eps/s², built so that neither eps nor s² is ever formed in fp16."""
    return emit.square(x=emit.real_div(x=emit.const(math.sqrt(eps)), y=s))


def power_of_two_above(n: int) -> float:
    """The smallest power of two >= n."""
    return 2.0 ** math.ceil(math.log2(max(n, 1)))


def mean_of_scaled(emit, x, axes: list[int]):
    """mean(x) = mean(x · 2^-k) · 2^k with 2^k >= n: the sum inside the mean is at most max|x|, so it
    cannot overflow fp16 even when n·max|x| does (an fp16-accumulating reduction would), and scaling
    by a power of two is exact."""
    n = row_length(x, axes)
    if n is None:
        return emit.reduce_mean(x=x, axes=axes, keep_dims=True)
    k = power_of_two_above(n)
    total = emit.reduce_mean(x=emit.mul(x=x, y=emit.const(1.0 / k)), axes=axes, keep_dims=True)
    return emit.mul(x=total, y=emit.const(k))


def inv_sqrt(emit, x):
    """1/sqrt(x) with no epsilon of its own (rsqrt's default 1e-12 would shift the exact value)."""
    return emit.rsqrt(x=x, epsilon=emit.const(0.0))


POSITIVE = Const("floor", lambda v: _is_scalar(v) and _scalar(v) > 0, "a positive constant", bind=False)
ROOT_EPS = Const("root_eps", lambda v: _is_scalar(v) and 0.0 < _scalar(v) <= 0.1,
                 "sqrt(eps) of a small eps (0 < sqrt(eps) <= 0.1)")


POWER_OF_TWO = Const("power_of_two", lambda v: _is_scalar(v) and _scalar(v) > 0
                     and math.log2(_scalar(v)).is_integer(), "a power of two", bind=False)


def mean_scaled(v, name: str):
    """The pattern of ``mean_of_scaled``: mean(v · 2^-k) · 2^k (or a plain mean, for dynamic rows)."""
    return either(("", P.mul(x=P.reduce_mean(x=P.mul(x=v, y=POWER_OF_TWO), axes=AXES, keep_dims=True, name=name),
                             y=POWER_OF_TWO)),
                  ("", P.reduce_mean(x=v, axes=AXES, keep_dims=True, name=name)))


def scaled(v):
    """The pattern of ``row_scale`` and the division by it: (v / s, s)."""
    s = P.maximum(x=P.reduce_max(x=P.abs(x=v, name="abs"), axes=AXES, keep_dims=True, name="max_abs"),
                  y=POSITIVE, name="scale")
    return P.real_div(x=v, y=s, name="scaled"), s


def rescaled_normalize(centred, s):
    """The pattern of ``centred · rsqrt(mean(centred²) + (sqrt(eps)/s)²)`` as the rewrites build it."""
    t = P.square(x=P.real_div(x=ROOT_EPS, y=s, name="eps_over_scale"), name="eps_term")
    variance = P.reduce_mean(x=P.square(x=centred, name="square"), axes=AXES, keep_dims=True, name="var")
    # the parts only a rescaled form has come first, so other norms fail here, early, and their near
    # misses are explained by the rules they almost matched
    inv_std = P.rsqrt(x=P.add(x=t, y=variance, name="add_eps"), name="inv_std")
    return P.mul(x=inv_std, y=centred, name="normalized")


# ---- risk tests ---------------------------------------------------------------------------------

def eps_value(match) -> float:
    return _scalar(match.bindings["eps"].val) if "eps" in match.bindings else 0.0


def numerator(match):
    """The value the "normalized" op divides (the operand that is not the inverse std)."""
    op = match.named_ops["normalized"]
    inv = match.named_ops["inv_std"].outputs[0]
    for param in ("x", "y"):
        if op.inputs[param] is not inv:
            return op.inputs[param]
    raise ValueError(f"{match}: the normalized op divides its inverse std by itself")


def square_risk(match, evidence, what: str = "x²") -> str | None:
    """The square inside a norm (the named op "square") may leave fp16; with fp16 accumulation a
    block of squares summed by the mean may too."""
    sq = evidence.interval(match.named_ops["square"].outputs[0])
    if not math.isfinite(sq.maxabs):
        return f"{what} is {evidence.bound(sq)} ({evidence.describe()})"
    if sq.maxabs > fp16.MAX:
        return f"{what} may reach {sq.maxabs:.4g} > 65504 ({evidence.describe()})"
    return block_sum_risk(match, evidence, sq.maxabs, what)


def block_sum_risk(match, evidence, term: float, what: str) -> str | None:
    """Under fp16 accumulation a reduction sums blocks of terms in fp16 (the executor's block size)."""
    if evidence.accumulate != "fp16":
        return None
    from milguard.executor import FP16_BLOCK
    partial = FP16_BLOCK * term
    if partial > fp16.MAX:
        return (f"summing {FP16_BLOCK} terms of {what} up to {term:.4g} in fp16 may reach {partial:.4g} > 65504 "
                f"({evidence.describe()})")
    return None


def spread_risk(x_interval, evidence) -> str | None:
    """(x - mean)² of a native norm: |x - mean| <= hi - lo, so (hi - lo)² bounds the square."""
    spread = x_interval.hi - x_interval.lo
    if not math.isfinite(spread):
        return f"x is {evidence.bound(x_interval)} ({evidence.describe()})"
    if spread > fp16.SQUARE_LIMIT:
        return (f"(x - mean)² may reach {spread * spread:.4g} > 65504: x spans "
                f"[{x_interval.lo:.4g}, {x_interval.hi:.4g}] ({evidence.describe()})")
    return None


def row_length(var: Any, axes: list[int]) -> int | None:
    """How many elements one row of a reduction over ``axes`` holds (None when dynamic)."""
    shape = getattr(var, "shape", None)
    if shape is None:
        return None
    n = 1
    for a in axes:
        d = shape[a]
        if not isinstance(d, (int, np.integer)):
            return None
        n *= int(d)
    return n
