"""Whole converted models: the LLaMA decoder layer of the zoo fed LLaMA2-7B massive activations
(Sun et al., COLM 2024: ~2.6e3 on two residual channels), converted by ct.convert with the
default fp16 pipeline and with milguard's pipeline."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import milguard  # noqa: E402
from milguard.executor import run  # noqa: E402
from milguard.report.audit import audit  # noqa: E402

RISK = {"overflow", "nan", "nonfinite"}


@pytest.fixture(scope="module")
def converted():
    from milguard.zoo import MODELS, convert

    entry = MODELS["llama_decoder"]
    planted = entry.planted_inputs(0)
    sample = {name: t.numpy().astype(np.float32) for name, t in zip(entry.input_names, planted)}
    fp16 = convert(entry)
    guarded = convert(entry, pass_pipeline=milguard.pipeline())
    return entry, sample, fp16, guarded


@pytest.mark.slow
def test_default_fp16_conversion_flags_every_nonfinite_op_with_its_module(converted):
    entry, sample, fp16, _ = converted
    prog = fp16._mil_program                      # in memory: ops still carry their torch scopes
    rep = audit(prog, calibration=sample)
    with np.errstate(all="ignore"):
        trace = run(prog, sample, trace=True)
    fn = prog.functions["main"]
    producer = {v.name: op.name for op in fn.operations for v in op.outputs}
    nonfinite = {producer[k] for k, v in trace.items()
                 if k in producer and np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()}
    assert nonfinite, "the planted magnitudes must overflow the default fp16 conversion"
    cal = [f for f in rep.findings if f.source == "calibration"]
    # a constant is reported once, by the static analysis (exact for constants)
    flagged = {f.op for f in rep.findings if f.kind in RISK and (f.source == "calibration" or f.op_type == "const")}
    assert nonfinite <= flagged
    assert len(flagged - nonfinite) <= 2
    roots = [f for f in cal if f.severity == "error" and f.kind == "overflow"]
    # pow, reduce_mean and add of the three RMSNorms (input, post-attention, final)
    assert len(roots) == 9 and {f.op_type for f in roots} == {"pow", "reduce_mean", "add"}
    assert all(f.covered_by == "milguard::keep_fp32_rms_norm" for f in roots)
    assert {f.module for f in roots} == {"input_layernorm", "post_attention_layernorm", "norm"}
    # coremltools 9.0 casts the finfo(float32).min causal mask to -inf: reported once, as an
    # additive mask that leaves every softmax row a finite entry (info: it masks exactly)
    mask = [f for f in rep.findings if f.op_type == "const"]
    assert [(f.severity, f.source) for f in mask] == [("info", "static")]
    assert "every row" in mask[0].message
    ranged = audit(prog, {"hidden_states": (-3000.0, 3000.0)})
    assert {f.op for f in roots} <= {f.op for f in ranged.findings if f.kind in RISK}


@pytest.mark.slow
@pytest.mark.parametrize("remedy,verdict", [("auto", "rescaled"), ("fp32", "fp32")])
def test_findings_disappear_once_milguard_remedies_the_norms(converted, remedy, verdict):
    entry, sample = converted[:2]
    guarded = converted[3] if remedy == "auto" else convert_with(entry, remedy=remedy)
    rep = audit(guarded._mil_program, calibration=sample, remedy=remedy)
    cal = [f for f in rep.findings if f.source == "calibration" and f.kind in RISK]
    assert not [f for f in cal if f.covered_by or f.severity == "error"], [(f.op, f.kind) for f in cal]
    # the default remedy also saturates the finfo(float32).min mask; the fp32 islands leave it -inf
    assert {f.module for f in cal} <= (set() if remedy == "auto" else {"self_attn"})
    patterns = rep.to_dict()["patterns"]
    assert [p["verdict"] for p in patterns if p["kind"] == "rms_norm"] == [verdict] * 3


def convert_with(entry, **opts):
    from milguard.zoo import convert
    return convert(entry, pass_pipeline=milguard.pipeline(**opts))


@pytest.mark.slow
def test_check_pass_inside_the_default_and_the_milguard_pipelines(converted, tmp_path):
    import coremltools as ct

    from milguard.analysis import check_pass
    from milguard.report.audit import attach
    from milguard.zoo import convert

    entry = converted[0]
    ranges = {"hidden_states": (-3000.0, 3000.0)}
    plain = convert(entry, pass_pipeline=check_pass.install(ct.PassPipeline.DEFAULT, input_ranges=ranges))
    guarded = convert(entry, pass_pipeline=check_pass.install(milguard.pipeline(), input_ranges=ranges))
    in_plain, in_guarded = attach(plain)["main"], attach(guarded)["main"]
    # the first x² overflows; the later norms receive its inf through the residual stream
    squares = [f for f in in_plain if f.op_type == "pow" and f.kind in RISK]
    assert [f.kind for f in squares] == ["overflow", "nonfinite", "nonfinite"]
    assert all(f.covered_by == "milguard::keep_fp32_rms_norm" for f in squares)
    assert {f.module for f in squares} == {"input_layernorm", "post_attention_layernorm", "norm"}
    # inside the rescaled norms nothing overflows any more; the static worst case of q·kᵀ may
    # still send inf downstream (kind "nonfinite"), but the first norm sees none of it
    assert not [f for f in in_guarded if f.op_type in ("pow", "reduce_mean") and f.kind == "overflow"]
    assert not [f for f in in_guarded if f.module == "input_layernorm" and f.kind in RISK]
    saved = {op.name for op in guarded._mil_program.functions["main"].operations}
    origins = {f.message.rsplit("from ", 1)[1] for f in in_guarded if f.kind == "nonfinite"}
    assert origins and origins <= saved                      # messages name the saved ops
    path = tmp_path / "guarded.mlpackage"
    guarded.save(str(path))
    again = [f for f in audit(path).to_dict()["findings"] if f["source"] == "pass"]
    assert sorted(f["op"] for f in again) == sorted(f.op for f in in_guarded)
