"""audit(): the report schema, calibration forms, unknown ops, the pass and its round trip."""
from __future__ import annotations

import json
import re
import sys
import types as pytypes

import coremltools as ct
import numpy as np
import pytest

from milguard import fp16

import milguard
from milguard.analysis import check_pass, transfer
from milguard.analysis.ranges import propagate
from milguard.errors import MilguardError, ModelError
from milguard.mil import Function, Program, load, mb, program_state, types
from milguard.report.audit import METADATA_KEY, attach, audit


def _rms(dtype=types.fp16, opset=None) -> Program:
    np_t = np.float16 if dtype == types.fp16 else np.float32
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2, 64), dtype=dtype)}, opset_version=opset) as fn:
        x = fn.inputs["x"]
        p = mb.pow(x=x, y=np_t(2.0), name="pow")
        m = mb.reduce_mean(x=p, axes=[-1], keep_dims=True, name="variance")
        r = mb.rsqrt(x=mb.add(x=m, y=np_t(1e-5), name="add_eps"), name="rsqrt")
        y = mb.mul(x=mb.mul(x=x, y=r, name="normed"), y=np.linspace(0.5, 1.5, 64).astype(np_t), name="scaled")
        fn.set_outputs([mb.relu(x=y, name="out")])
    prog.add_function("main", fn)
    return prog


def _sample(scale=300.0):
    x = np.random.default_rng(0).normal(0, 1, (2, 64)).astype(np.float32)
    x[0, 5] = scale
    return {"x": x}


def test_report_schema_and_strict_json():
    rep = audit(_rms(), {"x": (-300, 300)})
    d = rep.to_dict()
    assert {"format", "model", "function", "options", "summary", "patterns", "findings", "ranges",
            "placement", "unknown_ops"} <= set(d)
    assert d["model"] == "<Program>" and d["function"] == "main"
    assert d["summary"]["ops"] == 7 and d["summary"]["fp16_ops"] == 7 and d["summary"]["fp32_ops"] == 0
    assert d["patterns"][0]["kind"] == "rms_norm" and d["patterns"][0]["precision"] == "fp16"
    assert d["patterns"][0]["covered_by"] == "milguard::keep_fp32_rms_norm"
    pow_f = next(f for f in d["findings"] if f["op"] == "pow")
    assert pow_f["kind"] == "overflow" and pow_f["source"] == "static" and pow_f["limit"] == 65504.0
    assert d["summary"]["findings"]["by_kind"]["overflow"] >= 1
    assert [r["var"] for r in d["ranges"]][:3] == ["x", "pow", "variance"]
    assert d["placement"]["summary"]["transitions"] >= 0 and "pow" in d["placement"]["ops"]
    def reject(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    json.loads(rep.to_json(), parse_constant=reject)      # strict JSON: no bare Infinity/NaN
    assert next(r for r in d["ranges"] if r["var"] == "pow")["hi"] == pytest.approx(90000.3, rel=1e-4)


def test_default_float_range_finds_no_overflow():
    d = audit(_rms()).to_dict()
    assert d["options"]["input_ranges"] == {"x": [-1.0, 1.0]}
    assert not [f for f in d["findings"] if f["kind"] in ("overflow", "nan", "nonfinite")]


@pytest.mark.parametrize("form", ["dict", "list", "npz"])
def test_calibration_forms(form, tmp_path):
    sample = _sample()
    if form == "list":
        cal = [sample, _sample(1.0)]
    elif form == "npz":
        cal = tmp_path / "cal.npz"
        np.savez(cal, **sample)
    else:
        cal = sample
    d = audit(_rms(), calibration=cal).to_dict()
    assert d["options"]["calibration_samples"] == (2 if form == "list" else 1)
    cal = [f for f in d["findings"] if f["source"] == "calibration"]
    assert {f["op"] for f in cal if f["severity"] == "error"} == {"pow"}    # x² = 90000
    # the mean of one 90000 and 63 small squares fits fp16, but receives the inf: propagation
    assert {f["op"] for f in cal if f["kind"] == "nonfinite"} == {"variance", "add_eps"}
    row = next(r for r in d["ranges"] if r["var"] == "pow")
    assert row["reference_hi"] == pytest.approx(90000.0, rel=1e-3) and row["observed_hi"] == "inf"


def test_bad_calibration_and_ranges_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="no such calibration file"):
        audit(_rms(), calibration=tmp_path / "missing.npz")
    with pytest.raises(ModelError, match=r"unknown input\(s\) \['y'\]"):
        audit(_rms(), {"y": (0, 1)})


def test_op_without_transfer_function_is_unbounded_and_listed(monkeypatch):
    monkeypatch.delitem(transfer.TRANSFER, "rsqrt")
    ranges = propagate(_rms(), {"x": (-1, 1)})
    assert ranges.unknown_ops == [("rsqrt", "rsqrt")]
    assert ranges["rsqrt"].hi == float("inf") and ranges["rsqrt"].may_nan
    d = audit(_rms()).to_dict()
    assert d["unknown_ops"] == [{"op": "rsqrt", "op_type": "rsqrt"}]
    assert any(f["op"] == "rsqrt" and f["kind"] == "nan" for f in d["findings"])   # never safe


def test_ane_limits_add_the_matmul_cliff():
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2, 8), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.linear(x=fn.inputs["x"], weight=np.full((4, 8), 100.0, np.float16), name="proj")])
    prog.add_function("main", fn)
    plain = audit(prog, {"x": (-50, 50)}).findings
    ane = audit(prog, {"x": (-50, 50)}, ane_limits=True).findings
    assert not plain                                             # 40000 < 65504
    f = next(f for f in ane if f.op == "proj")
    assert f.limit == 32752.0 and "ANEForge" in f.message and f.magnitude == pytest.approx(40000, rel=1e-3)


def test_ane_limits_flag_a_fused_layer_norm_fed_large_values():
    prog = Program()
    with Function({"x": mb.placeholder(shape=(1, 8, 64), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.layer_norm(x=fn.inputs["x"], axes=[-1], epsilon=np.float16(1e-5), name="ln")])
    prog.add_function("main", fn)
    def overflow(**kw):
        return [f for f in audit(prog, **kw).findings if f.kind == "overflow"]

    assert not overflow(input_ranges={"x": (-1000, 1000)})          # the op itself stays bounded
    f = overflow(input_ranges={"x": (-1000, 1000)}, ane_limits=True)[0]
    assert f.op == "ln" and f.limit == fp16.SQUARE_LIMIT and "(x - mean)²" in f.message
    assert not overflow(input_ranges={"x": (-100, 100)}, ane_limits=True)


def test_accumulation_over_many_fp16_elements():
    prog = Program()
    with Function({"x": mb.placeholder(shape=(1, 4096), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.reduce_sum(x=fn.inputs["x"], axes=[-1], name="total")])
    prog.add_function("main", fn)
    f = next(f for f in audit(prog, {"x": (0, 1e-3)}).findings if f.kind == "accumulation")
    assert f.op == "total" and f.magnitude == 4096 and f.limit == 2048


def test_log_of_small_probabilities_is_an_underflow():
    prog = Program()
    with Function({"x": mb.placeholder(shape=(1, 8), dtype=types.fp16)}) as fn:
        p = mb.softmax(x=fn.inputs["x"], axis=-1, name="probs")
        fn.set_outputs([mb.log(x=p, name="logp")])
    prog.add_function("main", fn)
    assert not [f for f in audit(prog, {"x": (-1, 1)}).findings if f.kind == "underflow"]
    f = next(f for f in audit(prog, {"x": (-10, 10)}).findings if f.kind == "underflow")
    assert f.op == "logp" and f.magnitude < 6.1e-5


def test_to_html_delegates_to_the_html_renderer(monkeypatch):
    fake = pytypes.ModuleType("milguard.report.html")
    fake.render = lambda d: f"<html>{d['function']}</html>"
    monkeypatch.setitem(sys.modules, "milguard.report.html", fake)
    assert audit(_rms()).to_html() == "<html>main</html>"


def test_check_pass_round_trip_through_a_saved_package(tmp_path):
    assert check_pass.PASS_NAME in milguard.mil.PASS_REGISTRY
    pipe = check_pass.install(ct.PassPipeline.DEFAULT, input_ranges={"x": (-300, 300)})
    assert check_pass.install(pipe).passes.count(check_pass.PASS_NAME) == 1
    check_pass.install(pipe, input_ranges={"x": (-300, 300)})
    ml = ct.convert(_rms(types.fp32, ct.target.iOS17), convert_to="mlprogram", pass_pipeline=pipe,
                    minimum_deployment_target=ct.target.iOS17, skip_model_load=True)
    recorded = attach(ml)["main"]
    assert any(f.kind == "overflow" and f.op_type == "pow" for f in recorded)
    path = tmp_path / "m.mlpackage"
    ml.save(str(path))
    meta = json.loads(ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata[METADATA_KEY])
    assert meta["format"] == "milguard.findings/1"
    d = audit(path).to_dict()
    from_pass = [f for f in d["findings"] if f["source"] == "pass"]
    assert {f["op"] for f in from_pass} == {f.op for f in recorded}
    saved_ops = {op.name for op in load(path).program.functions["main"].operations}
    assert {f["op"] for f in from_pass} <= saved_ops         # keyed by the names in the package
    assert d["model"] == str(path)


def test_attach_without_the_pass_is_an_error():
    ml = ct.convert(_rms(types.fp32, ct.target.iOS17), convert_to="mlprogram",
                    minimum_deployment_target=ct.target.iOS17, skip_model_load=True)
    with pytest.raises(MilguardError, match="carries no findings"):
        attach(ml)


@pytest.mark.parametrize("text,says", [
    ("{x: 1", "bad input ranges: not JSON"),
    ('{"x": [2, 1]}', "bad input range for 'x': 2.0 > 1.0"),
    ("x=1", "bad input range 'x=1': expected NAME=LO:HI"),
])
def test_pass_rejects_bad_input_ranges(text, says):
    check = check_pass.CheckFp16Overflow()
    check.input_ranges = text
    with pytest.raises(MilguardError, match=f"^{check_pass.PASS_NAME}: {re.escape(says)}"):
        check.apply(_rms())


def test_pass_reads_input_ranges_in_either_string_form():
    for text in ('{"x": [-300, 300]}', "x=-300:300"):
        check = check_pass.CheckFp16Overflow()
        check.input_ranges = text
        prog = _rms()
        check.apply(prog)
        assert program_state(prog)["findings"]["options"]["input_ranges"] == {"x": (-300.0, 300.0)}
