"""LayerNorm: y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, var(x) = mean((x - mean(x))^2).

fp16 hazard: (x - mean)^2 overflows 65504 once |x - mean| > 256, so var becomes inf and y becomes 0
(or NaN through inf/inf); a small eps (1e-6, 1e-12) underflows to 0 in fp16.
Covers the mean over the last axis and over the channel axis 1 (LayerNorm2d of SAM and ConvNeXt),
the square as pow/square/mul(d, d), the inverse std as rsqrt+mul, sqrt+real_div or pow(-0.5), and the
affine tail as mul-then-add, add-then-mul, batch_norm (coremltools' fusion of a rank-4 channel
affine), scale or shift only, or absent. The native ``layer_norm`` op is a one-op member.
"""
from __future__ import annotations

from milguard.pattern import P, Rule, either

from ._common import (BETA, EPS, GAMMA, X, centred_square_overflows, last_or_channel_axis, mean, normalize,
                      square)

_centered = P.sub(x=X, y=mean(X, "mean"), name="centered")
_variance = mean(square(_centered), "var")
_normed = normalize(_centered, P.add(x=_variance, y=EPS, name="add_eps"))

DECOMPOSED = either(
    ("affine", P.add(x=P.mul(x=_normed, y=GAMMA), y=BETA)),
    ("affine_shift_first", P.mul(x=P.add(x=_normed, y=BETA), y=GAMMA)),
    ("batch_norm", P.batch_norm(x=_normed)),
    ("scale", P.mul(x=_normed, y=GAMMA)),
    ("shift", P.add(x=_normed, y=BETA)),
    ("no_affine", _normed),
    axis="affine",
)

RULES = [
    Rule("layer_norm", "layer_norm.decomposed", DECOMPOSED, check=last_or_channel_axis, benefit=15,
         core=("square", "var", "add_eps", "inv_std")),
    Rule("layer_norm", "layer_norm.native", P.layer_norm(x=X), keep_fp32=False, risk=centred_square_overflows),
]


