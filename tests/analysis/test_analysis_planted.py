"""Planted activations: static and calibrated findings against what the fp16 executor run does.

Three fp16 programs built with the builder, each with an fp32-island twin (the fragile region
cast to fp32 and back, as milguard's passes produce it):

* LLaMA RMSNorm ``x * rsqrt(mean(x²) + eps) * w`` on a residual stream with two outlier channels
  at |x| = 300 on token 0 (massive activations: Sun et al., "Massive Activations in Large Language
  Models", COLM 2024 — LLaMA2 outliers reach ~2.6e3; 300 is the smallest round value past
  sqrt(65504) = 255.9, so x² overflows);
* a masked softmax whose mask uses ``finfo(float32).min`` (HF eager attention) with one fully
  masked row: cast to fp16 the mask is -inf and that row becomes NaN;
* a SAM/ConvNeXt LayerNorm2d (mean over channels, ``sqrt`` + ``real_div``) with channel values of
  ±1000 (activations beyond 256 make the squared deviation overflow).
"""
from __future__ import annotations

import numpy as np
import pytest

from milguard.analysis.calibrate import calibrate
from milguard.analysis.findings import calibrated_findings, static_findings
from milguard.analysis.graph import pattern_index
from milguard.analysis.ranges import propagate
from milguard.executor import run
from milguard.mil import Function, Program, mb, types

F32_MIN = float(np.finfo(np.float32).min)
RISK = {"overflow", "nan", "nonfinite"}


def _program(shape, body, island: bool) -> Program:
    """fp16 input ``x``; ``body(x, dt)`` builds the fragile region in dtype ``dt``."""
    prog = Program()
    with Function({"x": mb.placeholder(shape=shape, dtype=types.fp16)}) as fn:
        x = fn.inputs["x"]
        if island:
            out = mb.cast(x=body(mb.cast(x=x, dtype="fp32", name="to_fp32"), np.float32),
                          dtype="fp16", name="to_fp16")
        else:
            out = body(x, np.float16)
        fn.set_outputs([mb.relu(x=out, name="after")])
    prog.add_function("main", fn)
    return prog


def rms_norm(x, dt):
    w = np.linspace(0.5, 1.5, 64).astype(dt)
    p = mb.pow(x=x, y=dt(2.0), name="pow")
    m = mb.reduce_mean(x=p, axes=[-1], keep_dims=True, name="variance")
    r = mb.rsqrt(x=mb.add(x=m, y=dt(1e-5), name="add_eps"), name="rsqrt")
    return mb.mul(x=mb.mul(x=x, y=r, name="normed"), y=w, name="scaled")


MASK = np.zeros((4, 4), np.float32)
MASK[0, :] = F32_MIN
MASK[1:, 2:] = F32_MIN


def masked_softmax(x, dt):
    with np.errstate(over="ignore"):
        mask = MASK.astype(dt)
    return mb.softmax(x=mb.add(x=x, y=mask, name="masked"), axis=-1, name="probs")


def layer_norm_2d(x, dt):
    c = 16
    u = mb.reduce_mean(x=x, axes=[1], keep_dims=True, name="mean")
    d = mb.sub(x=x, y=u, name="centered")
    s = mb.reduce_mean(x=mb.pow(x=d, y=dt(2.0), name="sq"), axes=[1], keep_dims=True, name="var")
    y = mb.real_div(x=d, y=mb.sqrt(x=mb.add(x=s, y=dt(1e-6), name="add_eps"), name="std"), name="normed")
    w = np.linspace(0.5, 1.5, c).astype(dt).reshape(1, c, 1, 1)
    b = np.linspace(-0.1, 0.1, c).astype(dt).reshape(1, c, 1, 1)
    return mb.add(x=mb.mul(x=y, y=w, name="scale"), y=b, name="shift")


def _rms_inputs():
    x = np.random.default_rng(0).normal(0, 1, (1, 8, 64)).astype(np.float32)
    x[0, 0, [3, 17]] = [300.0, -300.0]
    return x, (-300.0, 300.0)


def _softmax_inputs():
    return np.random.default_rng(1).normal(0, 1, (4, 4)).astype(np.float32), (-4.0, 4.0)


def _ln2d_inputs():
    x = np.random.default_rng(2).normal(0, 1, (1, 16, 4, 4)).astype(np.float32)
    x[0, 2], x[0, 9] = 1000.0, -1000.0
    return x, (-1000.0, 1000.0)


CASES = {
    "rms_norm": ((1, 8, 64), rms_norm, _rms_inputs),
    "masked_softmax": ((4, 4), masked_softmax, _softmax_inputs),
    "layer_norm_2d": ((1, 16, 4, 4), layer_norm_2d, _ln2d_inputs),
}


def analyse(name: str, island: bool):
    shape, body, inputs = CASES[name]
    prog = _program(shape, body, island)
    x, rng = inputs()
    fn = prog.functions["main"]
    matches = pattern_index(prog, "main")
    static = static_findings(fn, propagate(prog, {"x": rng}), matches)
    calibrated = calibrated_findings(fn, calibrate(prog, {"x": x}), matches)
    with np.errstate(all="ignore"):
        trace = run(prog, {"x": x}, trace=True)
    producer = {v.name: op.name for op in fn.operations for v in op.outputs}
    nonfinite = {producer[k] for k, v in trace.items()
                 if k in producer and np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()}
    return prog, static, calibrated, nonfinite


def _flagged(findings, kinds=RISK):
    return {f.op for f in findings if f.kind in kinds}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fp16_run_goes_nonfinite(name):
    assert analyse(name, island=False)[3], "the planted magnitudes must break the fp16 run"


@pytest.mark.parametrize("name", sorted(CASES))
def test_calibrated_flags_every_nonfinite_op(name):
    _, _, calibrated, nonfinite = analyse(name, island=False)
    flagged = _flagged(calibrated)
    assert nonfinite <= flagged, f"false negatives: {sorted(nonfinite - flagged)}"
    false_positives = flagged - nonfinite
    assert len(false_positives) <= 1, sorted(false_positives)


@pytest.mark.parametrize("name,origin", [("rms_norm", "pow"), ("masked_softmax", "probs"),
                                         ("layer_norm_2d", "sq")])
def test_static_flags_the_ops_that_overflow(name, origin):
    _, static, calibrated, nonfinite = analyse(name, island=False)
    errors = {f.op for f in calibrated if f.severity == "error" and f.kind in ("overflow", "nan")}
    assert origin in errors
    assert errors <= _flagged(static)
    assert origin in _flagged(static)
    assert nonfinite <= _flagged(static), "static analysis is sound: every non-finite op is flagged"


@pytest.mark.parametrize("name", sorted(CASES))
def test_findings_disappear_in_the_fp32_island(name):
    prog, static, calibrated, nonfinite = analyse(name, island=True)
    assert not nonfinite
    assert not _flagged(static) and not _flagged(calibrated)


def test_rms_norm_findings_name_the_covering_pass():
    _, static, calibrated, _ = analyse("rms_norm", island=False)
    pow_finding = next(f for f in calibrated if f.op == "pow")
    assert pow_finding.covered_by == "milguard::keep_fp32_rms_norm"
    assert pow_finding.magnitude == pytest.approx(90000.0, rel=1e-3)
    assert pow_finding.limit == 65504.0 and pow_finding.severity == "error"


def test_static_rms_norm_output_is_bounded_by_sqrt_n():
    """The relational bound |x|/sqrt(mean(x²)+eps) <= sqrt(64) keeps the norm output finite."""
    shape, body, inputs = CASES["rms_norm"]
    ranges = propagate(_program(shape, body, True), {"x": (-300.0, 300.0)})
    assert ranges["normed"].maxabs <= 8.0 * 1.01 + 1e-3
