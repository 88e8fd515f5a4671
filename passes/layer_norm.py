"""LayerNorm: y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, var(x) = mean((x - mean(x))^2).

fp16 hazard: (x - mean)^2 overflows 65504 once |x - mean| > 255.9, so var becomes inf and y becomes 0
(or NaN through inf/inf); a small eps (1e-6, 1e-12) underflows to 0 in fp16.
Covers the mean over the last axis and over the channel axis 1 (LayerNorm2d of SAM and ConvNeXt),
the square as pow/square/mul(d, d), the inverse std as rsqrt+mul, sqrt+real_div or pow(-0.5), and the
affine tail as mul-then-add, add-then-mul, batch_norm (coremltools' fusion of a rank-4 channel
affine), scale or shift only, or absent. The native ``layer_norm`` op is a one-op member.

Rescale (no fp32 op): centre first, in the input's own scale, then rescale the deviations. The mean
is taken of x · 2^-k (2^k >= n, an exact scaling) so that its sum cannot overflow either. With
d = x - mean(x), s = max(max|d|, f) per row and u = d/s,
    (x - mean(x)) / sqrt(var(x) + eps) = u / sqrt(mean(u²) + (sqrt(eps)/s)²)        exactly;
bounds in fp16: |d| <= 2·max|x| (the input's own range), |u| <= 1, u² <= 1, mean(u²) <= 1 (and
>= 1/n unless the whole row deviates by less than f), (sqrt(eps)/s)² <= 2^14, |y| <= sqrt(n).
Centring before scaling keeps the deviations of a row with a large common offset exact (x - mean(x)
is exact when both are close), and a constant row gives d = 0, s = f and y = 0, as in fp32.
The affine tail is kept as it was.
"""
from __future__ import annotations

from milguard.families import Family, Member
from milguard.pattern import P, Rule, either

from ._common import (BETA, EPS, GAMMA, X, axes_of, eps_value, last_or_channel_axis, mean, mean_of_scaled,
                      mean_scaled, normalize, op_axes, rescaled_normalize, rescaled_rms, scaled, spread_risk, square,
                      square_risk)


def tails(normed):
    """The affine tails converters leave after the normalisation."""
    return either(
        ("affine", P.add(x=P.mul(x=normed, y=GAMMA), y=BETA)),
        ("affine_shift_first", P.mul(x=P.add(x=normed, y=BETA), y=GAMMA)),
        ("batch_norm", P.batch_norm(x=normed)),
        ("scale", P.mul(x=normed, y=GAMMA)),
        ("shift", P.add(x=normed, y=BETA)),
        ("no_affine", normed),
        axis="affine",
    )


def chain(v):
    """(v - mean(v)) / sqrt(mean((v - mean(v))²) + eps) in its spellings, over AXES."""
    centred = P.sub(x=v, y=mean(v, "mean"), name="centered")
    variance = mean(square(centred), "var")
    return normalize(centred, P.add(x=variance, y=EPS, name="add_eps"))


def rescaled_chain(v):
    """The rescaled form of ``chain`` as ``rescaled`` builds it."""
    u, s = scaled(P.sub(x=v, y=mean_scaled(v, "mean"), name="centered"))
    return rescaled_normalize(u, s)


def rescaled(emit, x, axes: list[int], eps: float):
    """u · rsqrt(mean(u²) + (sqrt(eps)/s)²) with d = x - mean(x), u = d/s (module docstring)."""
    return rescaled_rms(emit, emit.sub(x=x, y=mean_of_scaled(emit, x, axes)), axes, eps)


def rescale_chain(match, emit):
    """Rewrite of a decomposed chain: the normalised value, rescaled; the tail reads it as before."""
    return rescaled(emit, match.named_ops["centered"].inputs["x"], axes_of(match), eps_value(match))


def rescale_native(match, emit):
    """Rewrite of a native layer_norm over its trailing axes: the rescaled chain, then gamma, beta."""
    op = match.root
    y = rescaled(emit, op.inputs["x"], op_axes(op), float(op.inputs["epsilon"].val))
    if op.inputs.get("gamma") is not None:
        y = emit.mul(x=y, y=op.inputs["gamma"])
    if op.inputs.get("beta") is not None:
        y = emit.add(x=y, y=op.inputs["beta"])
    return y


def trailing_axes(match) -> str | None:
    """Check of the native member's rewrite: gamma and beta broadcast only over trailing axes."""
    op = match.root
    axes = sorted(op_axes(op))
    if axes != list(range(op.inputs["x"].rank - len(axes), op.inputs["x"].rank)):
        return f"normalises axes {axes}, not the trailing ones gamma and beta broadcast over"
    return None


def risk(match, evidence) -> str | None:
    """(x - mean)² may leave fp16: the square of the chain, or the spread of a native op's input."""
    if "square" in match.named_ops:
        return square_risk(match, evidence, "(x - mean)²")
    return spread_risk(evidence.interval(match.bindings["x"]), evidence)


FAMILY = Family(
    "layer_norm", "LayerNorm",
    "gamma·(x − mean)/sqrt(var + eps) + beta; (x − mean)² overflows fp16 once |x − mean| > 255.9",
    members=(
        Member(Rule("layer_norm.rescaled", tails(rescaled_chain(X)), check=last_or_channel_axis, benefit=16),
               safe=True),
        Member(Rule("layer_norm.decomposed", tails(chain(X)), check=last_or_channel_axis, benefit=15,
                    rewrite=rescale_chain, replaces="normalized"),
               core=("square", "var", "add_eps", "inv_std"), rescale_passes=3),
        Member(Rule("layer_norm.native", P.layer_norm(x=X), rewrite=rescale_native),
               native=True, rescale_passes=8, rescalable=trailing_axes),
    ),
    risk=risk,
)
