"""Additive masks: y = x + mask, with masked positions set to a huge negative constant.

Hugging Face's eager attention masks with ``torch.finfo(torch.float32).min`` (-3.4e38). coremltools
9.0 casts that constant to fp16 as -inf (its fix, PR #2669, came after 9.0), and a row whose every
logit is masked then gives softmax(-inf, ..., -inf) = NaN where fp32 gives a uniform row.

Members: an ``add`` of a constant holding finite values beyond ±65504 (an fp32 program), or ±inf in
an fp16 constant (a saved fp16 package, where the cast already happened).

Rescale (no fp32 op): saturate the constant to ±32752, half of fp16's largest value, so that adding
it to any logit fp16 holds below 32752 in magnitude stays finite (coremltools' later fix saturates to
±65504, where a logit of -16 already pushes the sum to -inf). A masked logit stays thousands below
every unmasked one, so exp gives exactly 0 for it either way, and a fully masked row becomes uniform,
as in fp32.
"""
from __future__ import annotations

import numpy as np

from milguard import fp16
from milguard.families import Family, Member
from milguard.pattern import Bind, Const, P, Rule


def _beyond_fp16(v: np.ndarray) -> bool:
    v = np.asarray(v)
    if v.dtype.kind != "f" or v.size < 2:
        return False
    finite = v[np.isfinite(v)]
    beyond = bool(np.any(np.abs(finite) > fp16.MAX))
    return beyond or (v.dtype == np.float16 and bool(np.any(np.isinf(v))))


SATURATION = fp16.MAX / 2
def _saturated(v: np.ndarray) -> bool:
    v = np.asarray(v)
    return v.dtype.kind == "f" and v.size >= 2 and bool(np.any(np.abs(v) == SATURATION)) and \
        bool(np.all(np.abs(v) <= SATURATION))


MASK = Const("mask", _beyond_fp16, "a tensor constant holding values fp16 cannot (beyond ±65504)")
ADDITIVE = P.add(x=Bind("x"), y=MASK, name="masked")
SATURATED = P.add(x=Bind("x"), y=Const("mask", _saturated, "a tensor constant saturated at ±32752"),
                  name="masked")


def saturate(match, emit):
    """x + clip(mask, -32752, 32752)."""
    mask = np.asarray(match.bindings["mask"].val, dtype=np.float64)
    return emit.add(x=match.bindings["x"], y=emit.const(np.clip(mask, -SATURATION, SATURATION)))


def risk(match, evidence) -> str | None:
    mask = np.asarray(match.bindings["mask"].val, dtype=np.float64).reshape(-1)
    worst = float(mask[np.argmax(np.abs(mask))])
    return (f"the mask constant holds {worst:.3g}, beyond fp16's ±65504: it is ±inf in fp16 and a fully "
            f"masked softmax row becomes NaN")


FAMILY = Family(
    "mask", "additive mask",
    "x + mask with finfo(float32).min entries; they become -inf in fp16 and NaN in a masked softmax row",
    members=(Member(Rule("mask.saturated", SATURATED, benefit=1), safe=True),
             Member(Rule("mask.additive", ADDITIVE, rewrite=saturate))),
    risk=risk,
    remedies=("rescale",),
)
