"""Building blocks shared by the pattern families: the math, named after the math."""
from __future__ import annotations

import numpy as np

from milguard.pattern import Bind, Const, P, either

X = Bind("x")                            # the tensor being normalised
AXES = Bind("axes", const=True)          # one binding: every reduction of a match uses the same axes
GAMMA = Bind("gamma", const=True)
BETA = Bind("beta", const=True)


def _is_scalar(v: np.ndarray) -> bool:
    return v.size == 1


EPS = Const("eps", lambda v: _is_scalar(v) and 0.0 < float(v.reshape(())) <= 1e-2,
            "a small positive constant (0 < eps <= 1e-2)")
TWO = Const("exponent", lambda v: _is_scalar(v) and float(v.reshape(())) == 2.0, "exactly 2", bind=False)
MINUS_HALF = Const("exponent", lambda v: _is_scalar(v) and float(v.reshape(())) == -0.5, "exactly -0.5",
                   bind=False)


def mean(v, name: str):
    """mean over AXES, keeping dims (what torch's ``mean(dim, keepdim=True)`` becomes)."""
    return P.reduce_mean(x=v, axes=AXES, keep_dims=True, name=name)


def square(v):
    """v**2 in the three spellings converters emit."""
    return either(("pow", P.pow(x=v, y=TWO, name="square")),
                  ("square", P.square(x=v, name="square")),
                  ("mul", P.mul(x=v, y=v, name="square")), axis="square")


def normalize(numerator, variance_plus_eps):
    """numerator / sqrt(variance + eps) in its three spellings."""
    return either(("rsqrt", P.mul(x=numerator, y=P.rsqrt(x=variance_plus_eps, name="inv_std"))),
                  ("sqrt_div", P.real_div(x=numerator, y=P.sqrt(x=variance_plus_eps, name="inv_std"))),
                  ("pow_-0.5", P.mul(x=numerator, y=P.pow(x=variance_plus_eps, y=MINUS_HALF,
                                                          name="inv_std"))),
                  axis="inv_std")


def reduced_axes(match) -> tuple[str | None, str]:
    """('last_axis' | 'channel_axis' | None, description) for the AXES binding of a match."""
    axes = [int(a) for a in np.atleast_1d(match.bindings["axes"].val)]
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


FP16_MAX = 65504.0


def centred_square_overflows(match, interval) -> str | None:
    """Risk of a native layer_norm: (x - mean)^2 exceeds 65504 once the spread of x passes 256."""
    x = interval(match.bindings["x"])
    spread = x.hi - x.lo
    if spread * spread > FP16_MAX:
        return f"(x - mean)^2 may reach {spread * spread:.3g} > 65504 (x spans [{x.lo:.3g}, {x.hi:.3g}])"
    return None
