"""What the default ``remedy="auto"`` decides inside ct.convert, and from which evidence.

A region stays fp16 when the evidence shows it safe (the program then equals the default conversion
op for op); a region at risk gets the cheapest remedy that removes the risk for the target compute
units; ``remedy="rescale"`` and ``remedy="fp32"`` force one. Programs typed fp16 from the start are
remedied on the first run. Additive masks of finfo(float32).min are saturated.
"""
from __future__ import annotations

import numpy as np
import pytest
import coremltools as ct

import milguard
import programs as P
from programs import signature
from milguard.actions.decide import remembered
from milguard.mil import PassPipelineManager, dtype_name, iter_ops, mb, types

H = np.float16


def convert(prog, target=ct.target.iOS17, **opts):
    return ct.convert(prog, convert_to="milinternal", minimum_deployment_target=target,
                      pass_pipeline=milguard.pipeline(**opts))


def default(prog, target=ct.target.iOS17):
    return ct.convert(prog, convert_to="milinternal", minimum_deployment_target=target,
                      pass_pipeline=ct.PassPipeline.DEFAULT)


def rms():
    return P.program(P.RANK3, P.rms_norm)


def big_rms():
    """A 64x512 @ 512x512 matmul before an RMSNorm: enough work (3.4e7 FLOPs x 8) that the fp16
    program is expected on the Neural Engine (size floor S1: 2e8 FLOPs)."""
    w = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32) / 23

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 512))], opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(8):
            x = mb.linear(x=x, weight=w)
        return mb.tanh(x=_rms512(x))
    return prog


def _rms512(x):
    ms = mb.add(x=mb.reduce_mean(x=mb.pow(x=x, y=2.0), axes=[-1], keep_dims=True), y=1e-6)
    return mb.mul(x=x, y=mb.rsqrt(x=ms))


def decisions(prog):
    return [(d.family, d.remedy) for d in remembered(prog)]


def test_a_region_the_ranges_show_safe_is_left_exactly_as_the_default_conversion():
    guarded = convert(rms(), input_ranges="x=-1:1")
    assert signature(guarded) == signature(default(rms()))
    assert decisions(guarded) == [("rms_norm", "none")]
    (d,) = remembered(guarded)
    assert d.verdict == "safe in fp16" and d.risk is None and "x=-1:1" in d.evidence


def test_a_region_without_a_range_is_at_risk_and_rescaled():
    guarded = convert(rms())
    (d,) = remembered(guarded)
    assert d.remedy == "rescale" and "x² is unbounded" in d.risk and "no range for x" in d.risk
    ops = [op for op, _ in signature(guarded)]
    assert "pow" not in ops and {"abs", "reduce_max", "maximum", "real_div"} <= set(ops)
    assert {dt for op, dt in signature(guarded) if op != "cast"} == {"fp16"}


def test_on_the_neural_engine_the_rescale_is_cheaper_than_an_island():
    guarded = convert(big_rms())
    (d,) = remembered(guarded)
    assert d.remedy == "rescale" and "on ALL (ane)" in d.why
    assert d.considered["rescale"].transitions == 0 and d.considered["fp32"].transitions == 2
    assert d.considered["rescale"].relative < d.considered["fp32"].relative


@pytest.mark.parametrize("units", ["CPU_AND_GPU", "CPU_ONLY"])
def test_off_the_neural_engine_an_island_costs_no_transition(units):
    guarded = convert(big_rms(), compute_units=units)
    (d,) = remembered(guarded)
    assert d.considered["fp32"].transitions == 0 == d.considered["rescale"].transitions
    on_ane = remembered(convert(big_rms()))[0]
    assert d.considered["fp32"].relative < on_ane.considered["fp32"].relative
    assert d.remedy == min(d.considered, key=lambda r: d.considered[r].relative)


def test_calibration_data_decides(tmp_path):
    tame = {"x": np.random.default_rng(0).standard_normal(P.RANK3).astype(np.float32)}
    planted = {"x": tame["x"] * 1000}
    assert decisions(convert(rms(), calibration=tame)) == [("rms_norm", "none")]
    np.savez(tmp_path / "planted.npz", **planted)
    (d,) = remembered(convert(rms(), calibration=str(tmp_path / "planted.npz")))
    assert d.remedy == "rescale" and d.evidence == "calibration (1 sample)" and "may reach" in d.risk


def test_remedy_rescale_rewrites_a_safe_region_and_fp32_islands_it():
    assert decisions(convert(rms(), input_ranges="x=-1:1", remedy="rescale")) == [("rms_norm", "rescale")]
    islanded = convert(rms(), input_ranges="x=-1:1", remedy="fp32")
    assert decisions(islanded) == [("rms_norm", "fp32")]
    assert "fp32" in {dt for _, dt in signature(islanded)}


def test_float32_conversion_is_a_clean_no_op_under_the_default_remedy():
    ours = ct.convert(rms(), convert_to="milinternal", minimum_deployment_target=ct.target.iOS17,
                      pass_pipeline=milguard.pipeline(), compute_precision=ct.precision.FLOAT32)
    plain = ct.convert(rms(), convert_to="milinternal", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    assert signature(ours) == signature(plain) and remembered(ours) == []


def fp16_rms():
    @mb.program(input_specs=[mb.TensorSpec(shape=P.RANK3, dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        ms = mb.add(x=mb.reduce_mean(x=mb.pow(x=mb.relu(x=x), y=H(2.0)), axes=[-1], keep_dims=True), y=H(1e-6))
        return mb.tanh(x=mb.mul(x=mb.mul(x=mb.relu(x=x), y=mb.rsqrt(x=ms)), y=P.GAMMA3.astype(H)))
    return prog


@pytest.mark.parametrize("remedy", ["auto", "fp32"])
def test_a_program_typed_fp16_is_remedied_on_the_first_run(remedy):
    """An RMSNorm of a program typed fp16 from its inputs on (no cast for add_fp16_cast to add):
    its output at |x| = 300 is finite on the first run, and a second run changes nothing."""
    x = np.full(P.RANK3, 300, np.float16)
    assert np.all(next(iter(milguard.run(default(fp16_rms()), {"x": x}).values())) == 0)   # the hazard
    once = convert(fp16_rms(), remedy=remedy)
    out = next(iter(milguard.run(once, {"x": x}).values()))
    assert np.isfinite(out).all() and np.abs(out).max() > 0.5
    before = [(op.op_type, op.name, dtype_name(op.outputs[0])) for op in iter_ops(once.functions["main"])]
    again = ct.PassPipeline([p for p in milguard.pipeline().passes if p.startswith("milguard::")],
                            pipeline_name="again")
    PassPipelineManager.apply_pipeline(once, again)
    assert [(op.op_type, op.name, dtype_name(op.outputs[0])) for op in iter_ops(once.functions["main"])] == before


def test_a_finfo_min_mask_is_saturated_and_a_fully_masked_row_is_no_longer_nan():
    body = lambda x: P.masked(x)  # noqa: E731
    x = np.random.default_rng(0).standard_normal(P.RANK3).astype(np.float32)
    plain = next(iter(milguard.run(default(P.program(P.RANK3, body)), {"x": x}).values()))
    assert np.isnan(plain[:, 0]).all()                                      # row 0 is masked entirely
    guarded = convert(P.program(P.RANK3, body))
    assert decisions(guarded) == [("mask", "rescale"), ("softmax", "none")]
    (mask_decision, _) = remembered(guarded)
    assert mask_decision.risk.startswith("the mask constant holds -3.4e+38, beyond fp16's ±65504")
    out = next(iter(milguard.run(guarded, {"x": x}).values()))
    assert np.isfinite(out).all()
    add = next(op for op in iter_ops(guarded.functions["main"]) if op.op_type == "add")
    mask = next(v.val for v in add.inputs.values() if v.val is not None)
    assert mask.dtype == np.float16 and mask.min() == -32752.0


def test_the_audit_of_a_converted_program_reports_what_the_pipeline_did():
    guarded = convert(P.program(P.RANK3, lambda x: P.softmax(P.rms_norm(x), form="naive")))
    report = milguard.audit(guarded).to_dict()
    # the naive softmax became the max-shifted one, which is safe in fp16 by its own structure
    assert [(p["kind"], p["verdict"]) for p in report["patterns"]] == [("rms_norm", "rescaled"),
                                                                       ("softmax", "safe in fp16")]
    assert report["summary"]["decisions"]["fixable"] == 0
    assert [f for f in report["findings"] if f["severity"] in ("error", "warning")] == []


@pytest.mark.slow
@pytest.mark.parametrize("remedy", ["auto", "fp32"])
def test_fp16_typed_torch_inputs_are_remedied_on_the_first_run(remedy):
    """ct.TensorType(dtype=np.float16) inputs: the RMSNorm of a traced LLaMA norm stays finite at
    |x| = 300 on the first conversion."""
    import torch
    from milguard.zoo.layers import LlamaRMSNorm

    norm = LlamaRMSNorm(64, torch.Generator().manual_seed(0)).eval()
    x = torch.full((1, 8, 64), 300.0)
    traced = torch.jit.trace(norm, x)
    ml = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float16)],
                    minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
                    pass_pipeline=milguard.pipeline(remedy=remedy))
    out = np.asarray(next(iter(milguard.run(ml, {"x": x.numpy().astype(np.float16)}).values())), np.float64)
    with torch.no_grad():
        ref = norm(x).numpy()
    assert np.isfinite(out).all() and np.abs(out - ref).max() <= 4e-3 * np.abs(ref).max()
