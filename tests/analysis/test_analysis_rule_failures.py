"""A rule of the range analysis that raises is a finding of its own (kind ``analysis``), naming the
op and the exception, instead of an unbounded op logged at debug level."""
from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest

from milguard.analysis import norms, transfer
from milguard.analysis.ranges import propagate
from milguard.mil import Function, Program, mb, types
from milguard.report.audit import audit
from milguard.testing import failing


def _rms() -> Program:
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2, 64), dtype=types.fp16)}) as fn:
        x = fn.inputs["x"]
        m = mb.reduce_mean(x=mb.mul(x=x, y=x, name="sq"), axes=[-1], keep_dims=True, name="variance")
        r = mb.rsqrt(x=mb.add(x=m, y=np.float16(1e-3), name="add_eps"), name="rsqrt")
        fn.set_outputs([mb.mul(x=x, y=r, name="normed")])
    prog.add_function("main", fn)
    return prog


def _broken(*_):
    raise ValueError("boom in the rule")


def _analysis(d):
    return [f for f in d["findings"] if f["kind"] == "analysis"]


def test_a_transfer_function_that_raises_is_a_finding(monkeypatch):
    monkeypatch.setitem(transfer.TRANSFER, "rsqrt", _broken)
    ranges = propagate(_rms())
    assert [(f.op, f.op_type, f.rule, f.error) for f in ranges.failures] == [
        ("rsqrt", "rsqrt", "range", "ValueError: boom in the rule")]
    assert ranges.unknown_ops == []                          # the op has a rule: it failed
    assert ranges["rsqrt"].hi == float("inf") and ranges["rsqrt"].may_nan     # never safe
    d = audit(_rms()).to_dict()
    [f] = _analysis(d)
    assert (f["op"], f["op_type"], f["severity"], f["source"]) == ("rsqrt", "rsqrt", "warning", "static")
    assert "range rule of rsqrt raised ValueError: boom in the rule" in f["message"]
    assert "unbounded" in f["message"]


def test_without_a_failure_there_is_no_analysis_finding():
    assert propagate(_rms()).failures == [] and _analysis(audit(_rms()).to_dict()) == []


def test_analysis_findings_gate_on_any_not_on_overflow(monkeypatch):
    monkeypatch.setitem(transfer.TRANSFER, "reduce_mean", _broken)
    d = audit(_rms(), calibration={"x": np.ones((2, 64), np.float16)}).to_dict()
    [f] = _analysis(d)
    assert f in failing(d["findings"], "any")
    assert f not in failing(d["findings"], "overflow")
    assert f["superseded_by"] is None                        # calibration does not hide a bug
    assert audit(_rms(), ignore=["analysis"]).to_dict()["summary"]["findings"]["ignored"] == 1


def _attention() -> Program:
    prog = Program()
    spec = {n: mb.placeholder(shape=(1, 8, 16), dtype=types.fp16) for n in ("q", "k")}
    with Function(spec) as fn:
        q, k = mb.relu(x=fn.inputs["q"], name="q_act"), mb.relu(x=fn.inputs["k"], name="k_act")
        fn.set_outputs([mb.matmul(x=q, y=k, transpose_y=True, name="logits")])
    prog.add_function("main", fn)
    return prog


def test_a_row_norm_rule_that_raises_is_a_finding(monkeypatch):
    monkeypatch.setitem(norms.NORM, "relu", _broken)
    ranges = propagate(_attention())
    assert {(f.op, f.rule) for f in ranges.failures} == {("q_act", "row-norm"), ("k_act", "row-norm")}
    found = {(f["op"], f["message"].split(";")[0]) for f in _analysis(audit(_attention()).to_dict())}
    assert ("q_act", "the row-norm rule of relu raised ValueError: boom in the rule") in found


def test_a_constexpr_that_cannot_materialise_is_a_finding(monkeypatch):
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_affine_dequantize

    def build():
        prog = Program()
        with Function({"x": mb.placeholder(shape=(2, 4), dtype=types.fp16)},
                      opset_version=ct.target.iOS16) as fn:
            w = mb.constexpr_affine_dequantize(quantized_data=np.arange(8, dtype=np.uint8).reshape(2, 4),
                                               zero_point=np.uint8(0), scale=np.float16(0.5), axis=0,
                                               name="weights")
            fn.set_outputs([mb.add(x=fn.inputs["x"], y=w, name="out")])
        prog.add_function("main", fn)
        return prog

    assert propagate(build()).failures == []
    monkeypatch.setattr(constexpr_affine_dequantize, "materialized_val_inference", _broken)
    [f] = _analysis(audit(build()).to_dict())
    assert f["op"] == "weights" and "ValueError: boom in the rule" in f["message"]


@pytest.mark.parametrize("error,text", [(ValueError(""), "ValueError"),
                                        (KeyError("axis"), "KeyError: 'axis'"),
                                        (RuntimeError("two\nlines"), "RuntimeError: two lines")])
def test_the_reason_is_one_line(monkeypatch, error, text):
    def raising(*_):
        raise error
    monkeypatch.setitem(transfer.TRANSFER, "rsqrt", raising)
    assert propagate(_rms()).failures[0].error == text
