"""RMSNorm: y = w * x / sqrt(mean(x^2) + eps)   (LLaMA, T5, Mistral, ...; Gemma uses (1 + w)).

fp16 hazard: x^2 overflows 65504 once |x| > 256, so mean(x^2) is inf and y is silently 0; LLM
hidden states carry "massive activations" of 1e3..1e4 in a few channels. eps (1e-6) underflows too.
Covers x * rsqrt(.), x / sqrt(.) and x * pow(., -0.5); the square as pow/square/mul(x, x); the
``.to(float32)`` casts around the norm; a weight, Gemma's (1 + w) or none; and coremltools' own
translation of torch.nn.RMSNorm, which rescales by m = max|x| first:
    y = w * x / (sqrt(mean((x / m)^2) + eps) * m)
"""
from __future__ import annotations

from milguard.pattern import Bind, P, Rule, either, maybe_cast

from ._common import AXES, EPS, GAMMA, X, last_or_channel_axis, mean, normalize, square


def _weighted(normed):
    """The weight tail: w * y, (1 + w) * y, or none; with the cast back to the input dtype."""
    out = maybe_cast(normed)
    return either(("weight", P.mul(x=out, y=GAMMA)),
                  ("gemma", P.mul(x=out, y=P.add(x=1.0, y=Bind("w")))),
                  ("no_weight", out), axis="weight")


_x = maybe_cast(X)
_mean_square = P.add(x=mean(square(_x), "var"), y=EPS, name="add_eps")
DECOMPOSED = _weighted(normalize(_x, _mean_square))

_max_abs = P.reduce_max(x=P.abs(x=X), axes=AXES, keep_dims=True, name="max_abs")
_rescaled_ms = P.add(x=mean(square(P.real_div(x=X, y=_max_abs)), "var"), y=EPS, name="add_eps")
_rms = P.mul(x=P.sqrt(x=_rescaled_ms, name="inv_std"), y=_max_abs, name="rms")
MAX_ABS_RESCALED = _weighted(P.real_div(x=X, y=_rms))

RULES = [
    Rule("rms_norm", "rms_norm.max_abs_rescaled", MAX_ABS_RESCALED, check=last_or_channel_axis,
         benefit=20, core=("square", "var", "add_eps", "inv_std", "rms")),
    Rule("rms_norm", "rms_norm.decomposed", DECOMPOSED, check=last_or_channel_axis, benefit=10,
         core=("square", "var", "add_eps", "inv_std")),
]
