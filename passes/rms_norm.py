"""RMSNorm: y = w * x / sqrt(mean(x^2) + eps)   (LLaMA, T5, Mistral, ...; Gemma uses (1 + w)).

fp16 hazard: x^2 overflows 65504 once |x| > 255.9, so mean(x^2) is inf and y is silently 0; LLM
hidden states carry "massive activations" of 1e3..1e4 in a few channels. eps (1e-6) underflows too.
Covers x * rsqrt(.), x / sqrt(.) and x * pow(., -0.5); the square as pow/square/mul(x, x); the
``.to(float32)`` casts around the norm; a weight, Gemma's (1 + w) or none; and coremltools' own
translation of torch.nn.RMSNorm, which rescales by m = max|x| first but adds eps after rescaling:
    y = w * x / (sqrt(mean((x / m)^2) + eps) * m)       (effective eps = eps·m², coremltools #2821)

Rescale (no fp32 op): with s = max(max|x|, f) per row and u = x/s,
    x / sqrt(mean(x²) + eps) = u / sqrt(mean(u²) + (sqrt(eps)/s)²)                  exactly;
bounds in fp16: |u| <= 1, u² <= 1, mean(u²) <= 1, (sqrt(eps)/s)² <= 2^14, |y / w| <= sqrt(n).
The weight tail is kept as it was.
"""
from __future__ import annotations

import math

from milguard import fp16
from milguard.families import Family, Member
from milguard.pattern import Bind, P, Rule, either, maybe_cast

from ._common import (AXES, EPS, GAMMA, X, axes_of, eps_value, last_or_channel_axis, mean, normalize, numerator,
                      rescaled_normalize, rescaled_rms, scaled, square, square_risk)


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
MAX_ABS_RESCALED = _weighted(P.real_div(x=X, y=_rms, name="normalized"))

_u, _s = scaled(maybe_cast(X))
RESCALED = _weighted(rescaled_normalize(_u, _s))


def rescale(match, emit):
    """Rewrite: the normalised value, rescaled (module docstring); the weight tail reads it as before."""
    return rescaled_rms(emit, numerator(match), axes_of(match), eps_value(match))


def inflated_eps_risk(match, evidence) -> str | None:
    """coremltools' max-abs form adds eps to mean((x/m)²): the effective eps is eps·m². It matters once
    eps·m² passes fp16's rounding of a unit mean square (2^-11), i.e. m > sqrt(2^-11 / eps)."""
    m = evidence.interval(match.named_ops["max_abs"].outputs[0])
    limit = math.sqrt(fp16.UNIT_ROUNDOFF / eps_value(match))
    if not math.isfinite(m.maxabs):
        return f"eps is inflated by max|x|², and max|x| is {evidence.bound(m)} ({evidence.describe()})"
    if m.maxabs > limit:
        return (f"eps is inflated by max|x|² up to {eps_value(match) * m.maxabs ** 2:.3g} "
                f"(max|x| may reach {m.maxabs:.4g}; coremltools #2821) ({evidence.describe()})")
    return None


FAMILY = Family(
    "rms_norm", "RMSNorm",
    "w·x/sqrt(mean(x²) + eps); x² overflows fp16 once |x| > 255.9",
    members=(
        Member(Rule("rms_norm.rescaled", RESCALED, check=last_or_channel_axis, benefit=25), safe=True),
        Member(Rule("rms_norm.max_abs_rescaled", MAX_ABS_RESCALED, check=last_or_channel_axis, benefit=20,
                    rewrite=rescale, replaces="normalized"),
               core=("square", "var", "add_eps", "inv_std", "rms"), rescale_passes=0, risk=inflated_eps_risk),
        Member(Rule("rms_norm.decomposed", DECOMPOSED, check=last_or_channel_axis, benefit=10,
                    rewrite=rescale, replaces="normalized"),
               core=("square", "var", "add_eps", "inv_std"), rescale_passes=3),
    ),
    risk=square_risk,
)
