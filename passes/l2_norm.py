"""L2 norms: ||x|| = sqrt(sum(x²)) over some axes, and what is built on it.

Members: the native ``reduce_l2_norm`` (``torch.norm``, ``torch.linalg.vector_norm``); ``F.normalize``,
which coremltools lowers to x / tile(maximum(reduce_l2_norm(x), eps)); and ConvNeXtV2's global response
normalisation (GRN): Gx = ||x|| over the spatial axes, Nx = Gx / (mean(Gx over channels) + eps).

fp16 hazard: sum(x²) overflows 65504 once ||x|| > 255.9, even when every element is small (4096
elements of 4.0 already do), and the norm becomes inf: x / inf = 0.

Rescale (no fp32 op): with s = max(max|x|, 2^-24) per row and u = x/s,
    ||x|| = s · ||u||,      x / max(||x||, eps) = u / max(||u||, eps/s)                exactly;
bounds in fp16: |u| <= 1, sum(u²) <= n, ||u|| <= sqrt(n); s·||u|| is the norm itself. GRN never
needs Gx itself, which may exceed 65504 although its ratio to the channel mean is moderate: with
one scale S per sample (the max over the spatial and the channel axes), g = ||x/S|| and
    Nx = Gx / (mean(Gx) + eps) = g / (mean(g) + eps/S)                                  exactly,
with g <= sqrt(HW) and mean(g) <= sqrt(HW).
"""
from __future__ import annotations

import math

from milguard import fp16
from milguard.families import Family, Member
from milguard.pattern import Bind, Const, P, Rule, either

from ._common import AXES, EPS, POSITIVE, X, axes_of, eps_value, keep_dims, row_scale, scaled

_TRUE = Const("keep_dims", lambda v: bool(v), "True", bind=False)


def _norm(v, name: str = "l2"):
    return P.reduce_l2_norm(x=v, axes=AXES, name=name)


_guarded = P.maximum(x=P.reduce_l2_norm(x=X, axes=AXES, keep_dims=_TRUE, name="l2"), y=EPS, name="guard")
NORMALIZE = P.real_div(x=X, y=either(("tiled", P.tile(x=_guarded)), ("", _guarded), axis="tile"), name="normalized")
CHANNELS = Bind("channel_axes", const=True)
_gx = P.reduce_l2_norm(x=X, axes=AXES, keep_dims=_TRUE, name="l2")
GRN = P.real_div(x=_gx, y=P.add(x=P.reduce_mean(x=_gx, axes=CHANNELS, keep_dims=True), y=EPS), name="response")
_sample = P.maximum(x=P.reduce_max(x=P.abs(x=X), axes=Bind("sample_axes", const=True), keep_dims=True),
                    y=POSITIVE, name="scale")
_g = P.reduce_l2_norm(x=P.real_div(x=X, y=_sample), axes=AXES, keep_dims=_TRUE, name="l2")
RESCALED_GRN = P.real_div(x=_g, y=P.add(x=P.reduce_mean(x=_g, axes=CHANNELS, keep_dims=True),
                                        y=P.real_div(x=EPS, y=_sample)), name="response")

_u, _s = scaled(X)
RESCALED_NORM = P.mul(x=_norm(_u), y=either(("", _s), ("", P.squeeze(x=_s))), name="scaled_norm")
_u2, _s2 = scaled(X)
_eps_over_s = P.real_div(x=EPS, y=_s2, name="eps_over_scale")
RESCALED_NORMALIZE = P.real_div(x=_u2, y=P.maximum(x=_norm(_u2), y=_eps_over_s), name="normalized")


def rescale_norm(match, emit):
    """||x|| = s·||x/s||, the norm op's own axes and keep_dims."""
    op = match.named_ops["l2"]
    x, axes = op.inputs["x"], axes_of(match)
    s = row_scale(emit, x, axes, fp16.MIN_SUBNORMAL)
    keep = keep_dims(op)
    norm = emit.reduce_l2_norm(x=emit.real_div(x=x, y=s), axes=axes, keep_dims=keep)
    return emit.mul(x=norm, y=s if keep else emit.squeeze(x=s, axes=axes))


def rescale_normalize(match, emit):
    """x / max(||x||, eps) = u / max(||u||, eps/s)."""
    x, axes = match.bindings["x"], axes_of(match)
    eps = eps_value(match)
    s = row_scale(emit, x, axes, fp16.MIN_SUBNORMAL)
    u = emit.real_div(x=x, y=s)
    norm = emit.reduce_l2_norm(x=u, axes=axes, keep_dims=True)
    return emit.real_div(x=u, y=emit.maximum(x=norm, y=emit.real_div(x=emit.const(eps), y=s)))


def rescale_grn(match, emit):
    """Nx = g / (mean(g) + eps/S), g = ||x/S|| over the spatial axes, S one scale per sample."""
    x, axes = match.bindings["x"], axes_of(match)
    channels = axes_of(match, "channel_axes")
    sample = sorted({a % x.rank for a in axes + channels})
    s = row_scale(emit, x, sample, fp16.MIN_SUBNORMAL)
    g = emit.reduce_l2_norm(x=emit.real_div(x=x, y=s), axes=axes, keep_dims=True)
    eps = eps_value(match)
    mean = emit.reduce_mean(x=g, axes=channels, keep_dims=True)
    return emit.real_div(x=g, y=emit.add(x=mean, y=emit.real_div(x=emit.const(eps), y=s)))


def risk(match, evidence) -> str | None:
    """The sum of squares inside the norm is ||x||²: past 65504 once the norm passes 255.9."""
    norm = evidence.interval(match.named_ops["l2"].outputs[0])
    if not math.isfinite(norm.maxabs):
        return f"||x|| is {evidence.bound(norm)} ({evidence.describe()})"
    if norm.maxabs > fp16.SQUARE_LIMIT:
        return f"sum(x²) may reach {norm.maxabs ** 2:.4g} > 65504 (||x|| <= {norm.maxabs:.4g}) ({evidence.describe()})"
    return None


FAMILY = Family(
    "l2_norm", "L2 norm",
    "sqrt(sum(x²)); the sum of squares overflows fp16 once ||x|| > 255.9",
    members=(
        Member(Rule("l2_norm.rescaled", RESCALED_NORM, benefit=14), safe=True),
        Member(Rule("l2_norm.rescaled_normalize", RESCALED_NORMALIZE, benefit=15), safe=True),
        Member(Rule("l2_norm.normalize", NORMALIZE, benefit=12, rewrite=rescale_normalize), rescale_passes=3),
        Member(Rule("l2_norm.rescaled_grn", RESCALED_GRN, benefit=13), safe=True),
        Member(Rule("l2_norm.grn", GRN, benefit=11, rewrite=rescale_grn), rescale_passes=3),
        Member(Rule("l2_norm.reduce", _norm(X), rewrite=rescale_norm), native=True, rescale_passes=3),
    ),
    risk=risk,
)
