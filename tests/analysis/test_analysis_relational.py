"""The relational bounds (milguard.analysis.relational) are sound: on the fp16-safe forms the
rewrites build, every value the reference executor computes lies inside its propagated interval,
for inputs up to 6e4 in magnitude with the rows norms break on (zero, constant, a large common
offset, one spike), in fp32 and fp16, under both accumulation modes. And they bite: the rescaled
norm's output stays bounded (no "may overflow" downstream) where plain intervals are unbounded.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import coremltools as ct

import programs as P
from traces import check_within
from milguard.analysis.ranges import propagate
from milguard.executor import run
from milguard.mil import mb, types

FORMS = {
    "rms_norm": (P.RANK3, P.rms_norm),
    "layer_norm": (P.RANK3, P.layer_norm),
    "layer_norm channel": (P.RANK4, lambda x: P.layer_norm(x, axes=(1,), gamma=P.GAMMA4, beta=P.BETA4)),
    "group_norm": (P.RANK4, P.group_norm),
    "l2 reduce": (P.RANK3, P.l2_reduce),
    "l2 normalize": (P.RANK3, P.l2_normalize),
    "grn": (P.RANK4, P.grn),
    "softmax": (P.RANK3, lambda x: P.softmax(x, form="naive")),
}


def rescaled(form: str, dtype: str):
    """The form's region rewritten by the rescale remedy, in a program typed ``dtype``."""
    shape, body = FORMS[form]
    if dtype == "fp16":           # an fp16-typed program: its constants are fp16 too (ct.convert does that)
        prog = ct.convert(mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS17)(body),
                          convert_to="milinternal", minimum_deployment_target=ct.target.iOS17)
    else:
        prog = mb.program(input_specs=[mb.TensorSpec(shape=shape, dtype=types.fp32)],
                          opset_version=ct.target.iOS17)(body)
    return P.rescaled(prog, casting=dtype == "fp32")         # an fp32 program is decided as before the cast


PROGRAMS = {(f, d): rescaled(f, d) for f in FORMS for d in ("fp32", "fp16")}


def rows(data, shape):
    """Rows of N(0, s) at a drawn scale, each possibly replaced by zeros, a constant, a large
    common offset with noise, or one spike; magnitudes up to 6e4."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * data.draw(st.sampled_from([1e-3, 1.0, 30.0, 300.0, 6e3]))
    flat = x.reshape(-1, shape[-1])
    for r in range(flat.shape[0]):
        kind = data.draw(st.sampled_from(["keep", "zero", "constant", "offset", "spike"]))
        peak = data.draw(st.floats(1e-3, 6e4))
        if kind == "zero":
            flat[r] = 0
        elif kind == "constant":
            flat[r] = peak
        elif kind == "offset":
            flat[r] = peak + flat[r] * 1e-3
        elif kind == "spike":
            flat[r, rng.integers(shape[-1])] = peak
    return np.clip(x, -6e4, 6e4)


@pytest.mark.parametrize("dtype,accumulate", [("fp32", "fp32"), ("fp16", "fp32"), ("fp16", "fp16")])
@pytest.mark.parametrize("form", sorted(FORMS))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_value_of_a_rescaled_form_lies_in_its_interval(form, dtype, accumulate, data):
    prog = PROGRAMS[(form, dtype)]
    shape = FORMS[form][0]
    x = rows(data, shape).astype(np.float16 if dtype == "fp16" else np.float32)
    hull = (float(x.min()), float(x.max()))
    ranges = propagate(prog, {"x": hull}, accumulate=accumulate)
    with np.errstate(all="ignore"):
        trace = run(prog, {"x": x}, trace=True, accumulate=accumulate)
    assert check_within(ranges, trace) >= 5


@pytest.mark.parametrize("form", ["rms_norm", "layer_norm", "layer_norm channel", "group_norm", "l2 normalize",
                                  "softmax"])
def test_a_scale_free_rescaled_output_is_bounded_for_any_input(form):
    """With any fp16 input whose deviations from a mean fp16 still holds (|x| <= 32752: x - mean(x)
    is at most 65504), the output of a norm, a normalisation or a softmax rewritten by the rescale
    is bounded by its structure, without NaN (plain intervals give ±inf for the squares, and every
    op after them a "may overflow" finding)."""
    prog = PROGRAMS[(form, "fp16")]
    ranges = propagate(prog, {"x": (-32752.0, 32752.0)})
    out = ranges[prog.functions["main"].outputs[0].name]
    assert math.isfinite(out.maxabs) and not out.may_nan, out
