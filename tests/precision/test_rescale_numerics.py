"""Every rescale rewrite, numerically: exact against torch in fp32, finite and accurate in fp16.

* **fp32**: the rewritten program, run in fp32 by the reference executor, equals torch's fp32 result
  within 1e-5 of the output's magnitude: the rescaled forms are the same math (eps carried as
  (sqrt(eps)/s)², not inflated as in coremltools' max-abs RMSNorm, whose own form misses by far
  more on the same input).
* **fp16**: converted with ``milguard.pipeline(remedy="rescale")`` (no fp32 op anywhere), fed values
  up to 60000 (fp16 holds them; their squares and exponentials it does not), every output is finite
  and within 4e-3 of the output's magnitude of torch's fp32 result on the same (fp16) input: a few
  fp16 roundings (u = 2^-11 = 4.9e-4) between input and output. The default fp16 conversion of the
  same program misses by far more, or is not finite, in one of the executor's accumulation modes
  (native norms overflow inside the op only when it accumulates in fp16): the comparison bites.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import coremltools as ct

import milguard
import programs as P
from milguard.mil import dtype_name, iter_ops, mb

FP32_TOL = 1e-5
FP16_TOL = 4e-3


def _t(x):
    return torch.from_numpy(np.asarray(x, np.float32))


def rms(x, axes=(-1,), eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(axes, keepdim=True) + eps)


def ln(x, axes=(-1,), eps=1e-5):
    d = x - x.mean(axes, keepdim=True)
    return d * torch.rsqrt(d.pow(2).mean(axes, keepdim=True) + eps)


MASK = np.zeros(P.RANK3[1:], np.float32)
MASK[np.triu_indices(P.RANK3[1], 1, P.RANK3[2])] = np.finfo(np.float32).min
MASK[0, :] = np.finfo(np.float32).min


CASES = {
    # name: (shape, program body, torch reference of x)
    "rms_norm": (P.RANK3, P.rms_norm, lambda x: _t(P.GAMMA3) * rms(x)),
    "rms_norm no weight": (P.RANK3, lambda x: P.rms_norm(x, weight="no_weight", sq="mul", inv="sqrt_div"),
                           lambda x: rms(x)),
    "rms_norm max_abs": (P.RANK3, P.rms_norm_max_abs, lambda x: _t(P.GAMMA3) * rms(x)),
    "layer_norm": (P.RANK3, P.layer_norm, lambda x: ln(x) * _t(P.GAMMA3) + _t(P.BETA3)),
    "layer_norm channel": (P.RANK4, lambda x: P.layer_norm(x, axes=(1,), gamma=P.GAMMA4, beta=P.BETA4, inv="sqrt_div"),
                           lambda x: ln(x, axes=(1,)) * _t(P.GAMMA4) + _t(P.BETA4)),
    "layer_norm native": (P.RANK3, lambda x: mb.layer_norm(x=x, axes=[-1], gamma=P.GAMMA3, beta=P.BETA3, epsilon=1e-5),
                          lambda x: F.layer_norm(x, (16,), _t(P.GAMMA3), _t(P.BETA3), 1e-5)),
    "group_norm": (P.RANK4, P.group_norm,
                   lambda x: F.group_norm(x, 2, eps=1e-5) * _t(P.GAMMA4) + _t(P.BETA4)),
    "l2 reduce": (P.RANK3, P.l2_reduce, lambda x: torch.linalg.vector_norm(x, dim=-1, keepdim=True)),
    "l2 reduce flat": (P.RANK3, lambda x: P.l2_reduce(x, keep_dims=False),
                       lambda x: torch.linalg.vector_norm(x, dim=-1)),
    "l2 normalize": (P.RANK3, P.l2_normalize, lambda x: F.normalize(x, dim=-1)),
    "grn": (P.RANK4, P.grn, lambda x: x * (lambda g: g / (g.mean(-1, keepdim=True) + 1e-6))(
        torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)) + x),
    "softmax naive": (P.RANK3, lambda x: P.softmax(x, form="naive"), lambda x: torch.softmax(x, -1)),
    "log_softmax naive": (P.RANK3, lambda x: P.softmax(x, form="log_softmax_naive"),
                          lambda x: torch.log_softmax(x, -1)),
    "log of softmax": (P.RANK3, lambda x: P.softmax(x, form="log_of_softmax"), lambda x: torch.log_softmax(x, -1)),
    "logsumexp": (P.RANK3, lambda x: P.softmax(x, form="native_log_sum_exp"),
                  lambda x: torch.logsumexp(x, -1, keepdim=True)),
    "additive mask": (P.RANK3, lambda x: mb.softmax(x=mb.add(x=x, y=MASK), axis=-1),
                      lambda x: torch.softmax(x + _t(MASK), -1)),
}


# Native ops whose fp16 hazard the reference executor does not model: its reduce_log_sum_exp kernel
# is the stable (max-shifted) form, while the Neural Engine lowers it without the shift (coremltools
# #2690). The rewrite is still checked for exactness and accuracy; only "the default fails" is not.
UNMODELLED = {"logsumexp"}

# The saturated mask (-32752) stays below every unmasked logit while the logits span less than
# 32752 - 16 (exp(-16) already rounds to a negligible share); logits of 60000 need more than fp16 holds.
PEAK = {"additive mask": 16000.0}


def program(case, dtype=ct.converters.mil.mil.types.fp32):
    """The region alone (no relu in front, which would hide negative inputs)."""
    shape, body, _ = CASES[case]
    return mb.program(input_specs=[mb.TensorSpec(shape=shape, dtype=dtype)], opset_version=ct.target.iOS17)(body)


def inputs(shape, peak, seed=0):
    """Rows of N(0, 1), rows scaled to ``peak``, a row with a spike of ``peak`` among small values,
    a constant row, a zero row and a row with a large common offset: the rows norms break on."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float64)
    rows = x.reshape(-1, shape[-1])
    rows[1] *= peak / np.abs(rows[1]).max()
    rows[2, 3] = peak
    if len(rows) > 3:
        rows[3] = peak / 2
    if len(rows) > 4:
        rows[4] = 0.0
    if len(rows) > 5:
        rows[5] = peak / 2 + rows[5]
    return np.clip(x, -60000, 60000).astype(np.float16).astype(np.float32)


def reference(case, x):
    with torch.no_grad():
        return CASES[case][2](_t(x)).double().numpy()


def rewritten(case):
    return P.rescaled(program(case))


def run_one(prog, x):
    (out,) = milguard.run(prog, {"x": x}).values()
    return np.asarray(out, np.float64)


def error(out, ref):
    """max |out - ref| over the values fp16 can hold, relative to the largest of them."""
    held = np.isfinite(ref) & (np.abs(ref) <= 65504)
    return float(np.max(np.abs(out[held] - ref[held])) / max(np.max(np.abs(ref[held])), 1e-30))


def finite_where_held(out, ref):
    """Finite wherever the exact result fits in fp16 (a log-probability of -120000 or a norm of 1e5
    is ±inf in fp16 however it is computed)."""
    return bool(np.isfinite(out[np.abs(ref) <= 65504]).all())


@pytest.mark.parametrize("case", sorted(CASES))
def test_rescaled_form_is_exact_in_fp32(case):
    """(The saturated mask: fp32 keeps the logits' differences next to -32752 where it absorbed them
    next to -3.4e38, so a row with no unmasked entry, which has no meaningful distribution, is
    compared in fp16 only, where -32752 absorbs them as well.)"""
    x = inputs(CASES[case][0], peak=3000.0)
    prog = rewritten(case)
    out, ref = run_one(prog, x), reference(case, x)
    if case == "additive mask":
        valid = ~np.all(MASK < -1e30, axis=-1)
        out, ref = out[:, valid], ref[:, valid]
    assert np.isfinite(out).all() and np.array_equal(np.isfinite(out), np.isfinite(ref))
    assert error(out, ref) <= FP32_TOL


def test_coremltools_max_abs_form_is_not_exact_where_the_rescaled_one_is():
    """The same input through coremltools' own max-abs RMSNorm (eps inflated by max|x|²): the
    fp32 comparison above would catch a rewrite that repeated it."""
    x = inputs(P.RANK3, peak=3000.0)
    with np.errstate(all="ignore"):
        original = run_one(program("rms_norm max_abs"), x)
    ref = reference("rms_norm max_abs", x)
    assert not np.isfinite(original).all() or error(original, ref) > 100 * FP32_TOL


def converted(case, pipeline):
    return ct.convert(program(case), convert_to="milinternal", minimum_deployment_target=ct.target.iOS17,
                      pass_pipeline=pipeline)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rescaled_form_is_finite_and_accurate_in_fp16(case):
    x = inputs(CASES[case][0], peak=PEAK.get(case, 60000.0))
    ref = reference(case, x)
    prog = converted(case, milguard.pipeline(remedy="rescale"))
    ops = [op for op in iter_ops(prog.functions["main"]) if op.op_type not in ("const", "cast")]
    assert {dtype_name(op.outputs[0]) for op in ops} == {"fp16"}             # no fp32 op anywhere
    for accumulate in ("fp32", "fp16"):
        (out,) = milguard.run(prog, {"x": x}, accumulate=accumulate).values()
        out = np.asarray(out, np.float64)
        assert finite_where_held(out, ref), accumulate
        assert error(out, ref) <= FP16_TOL, accumulate
    if case in UNMODELLED:
        return
    default = converted(case, ct.PassPipeline.DEFAULT)
    with np.errstate(all="ignore"):
        plain = [np.asarray(next(iter(milguard.run(default, {"x": x}, accumulate=a).values())), np.float64)
                 for a in ("fp32", "fp16")]
    assert any(not finite_where_held(p, ref) or error(p, ref) > 10 * FP16_TOL for p in plain)


@pytest.mark.parametrize("case", ["rms_norm", "layer_norm", "l2 normalize", "softmax naive", "additive mask"])
def test_fix_rescales_an_fp16_package_the_same_way(case, tmp_path):
    """keep_fp32 on the default fp16 conversion: the rewrite is built in fp16 from fp16 constants."""
    x = inputs(CASES[case][0], peak=PEAK.get(case, 60000.0))
    ref = reference(case, x)
    plain = ct.convert(program(case), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       skip_model_load=True)
    fixed = milguard.keep_fp32(plain, remedy="rescale")
    out = np.asarray(next(iter(milguard.run(fixed, {"x": x}).values())), np.float64)
    assert finite_where_held(out, ref) and error(out, ref) <= FP16_TOL
