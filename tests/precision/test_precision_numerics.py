"""fp32 reference vs naive fp16 vs milguard, through the reference executor, on the model zoo fed
activation magnitudes from the literature (each zoo entry names its source: ``entry.source``).

Tolerance: everything outside the islands still runs in fp16, whose unit roundoff is
u = 2**-11 = 4.9e-4. A handful of roundings between the islands and the output give a few u of
relative error, so milguard must reach max|y - y_torch| <= 2e-3 * max|y_torch| (about 4 u) and an
SNR of at least 55 dB (an error power 3e-6 of the signal's, i.e. an RMS error of about 4 u).
The FLOAT32 conversion is the reference and must match torch within 1e-4 relative error.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import coremltools as ct

import milguard
from milguard import zoo
from milguard.executor import first_nonfinite, run
from milguard.mil import dtype_name, iter_ops

pytestmark = pytest.mark.slow

FAILING = ["llama_decoder", "t5_encoder", "gemma_decoder", "sam_neck", "convnext_block", "vit_block"]


def snr_db(ref, out):
    if not np.all(np.isfinite(out)):
        return float("-inf")
    noise = np.sum((out - ref) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref ** 2) / noise))


def torch_reference(entry, inputs):
    with torch.no_grad():
        out = entry.build(0)(*inputs)
    return (out[0] if isinstance(out, tuple) else out).double().numpy()


def executed(mlmodel, entry, inputs):
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    return run(mlmodel, feeds)[entry.output_names[0]].astype(np.float64)


@pytest.fixture(scope="module", params=FAILING)
def case(request):
    entry = zoo.MODELS[request.param]
    inputs = entry.planted_inputs(0)
    return entry, inputs, torch_reference(entry, inputs)


def test_float32_conversion_is_the_reference(case):
    entry, inputs, ref = case
    out = executed(zoo.convert(entry, inputs, compute_precision=ct.precision.FLOAT32), entry, inputs)
    assert np.max(np.abs(out - ref)) <= 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("remedy", ["auto", "fp32"])
def test_default_fp16_breaks_and_milguard_fixes_it(case, remedy):
    entry, inputs, ref = case
    scale = np.max(np.abs(ref))
    naive = executed(zoo.convert(entry, inputs), entry, inputs)
    assert snr_db(ref, naive) < 25 or not np.all(np.isfinite(naive)), entry.source
    assert np.max(np.abs(naive - ref)) > 0.1 * scale

    guarded = executed(zoo.convert(entry, inputs, pass_pipeline=milguard.pipeline(remedy=remedy)), entry, inputs)
    assert np.all(np.isfinite(guarded))
    assert np.max(np.abs(guarded - ref)) <= 2e-3 * scale
    assert snr_db(ref, guarded) >= 55


def test_the_default_remedy_holds_under_fp16_accumulation(case):
    """The rescaled forms keep every partial sum of a reduction below 65504: the executor's
    pessimistic fp16 accumulation changes the SNR by rounding only."""
    entry, inputs, ref = case
    ml = zoo.convert(entry, inputs, pass_pipeline=milguard.pipeline())
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    out = run(ml, feeds, accumulate="fp16")[entry.output_names[0]].astype(np.float64)
    assert np.all(np.isfinite(out)) and snr_db(ref, out) >= 50


def test_the_executor_names_where_fp16_first_breaks():
    """LLaMA RMSNorm at |x| ~ 300 (squares 9e4 > 65504): the first non-finite value is the pow."""
    entry = zoo.MODELS["llama_decoder"]
    inputs = entry.planted_inputs(0)
    ml = zoo.convert(entry, inputs)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    op_name, op_type, _ = first_nonfinite(ml, run(ml, feeds, trace=True))
    assert op_type == "pow"


def test_fp32_remedy_keeps_only_the_norms_fp32():
    ml = zoo.convert("llama_decoder", pass_pipeline=milguard.pipeline(remedy="fp32"))
    ops = [op for op in iter_ops(ml._mil_program.functions["main"]) if op.op_type not in ("const", "cast")]
    fp32 = [op for op in ops if dtype_name(op.outputs[0]) == "fp32"]
    assert {op.op_type for op in fp32} == {"pow", "reduce_mean", "add", "rsqrt", "mul"}
    assert len(fp32) == 3 * 6          # three RMSNorms of six ops each


def test_default_remedy_adds_no_fp32_op():
    ml = zoo.convert("llama_decoder", pass_pipeline=milguard.pipeline())
    ops = [op for op in iter_ops(ml._mil_program.functions["main"]) if op.op_type not in ("const", "cast")]
    assert {dtype_name(op.outputs[0]) for op in ops} == {"fp16"}
    assert "pow" not in {op.op_type for op in ops}              # the three squares were rescaled


@pytest.mark.parametrize("name", ["llama_decoder", "sam_neck"])
def test_keep_fp32_repairs_a_saved_default_fp16_package(tmp_path, name):
    entry = zoo.MODELS[name]
    inputs = entry.planted_inputs(0)
    ref = torch_reference(entry, inputs)
    src = tmp_path / "default.mlpackage"
    naive = zoo.convert(entry, inputs)
    naive.user_defined_metadata["owner"] = "tests"
    naive.save(str(src))
    before = sorted((p.relative_to(src), p.read_bytes()) for p in src.rglob("*") if p.is_file())

    fixed = milguard.keep_fp32(src, output=tmp_path / "fixed.mlpackage")

    after = sorted((p.relative_to(src), p.read_bytes()) for p in src.rglob("*") if p.is_file())
    assert after == before                                            # the input is untouched
    out = executed(tmp_path / "fixed.mlpackage", entry, inputs)
    assert np.all(np.isfinite(out))
    assert snr_db(ref, out) >= 55 > snr_db(ref, executed(src, entry, inputs))
    spec, orig = fixed.get_spec(), naive.get_spec()
    assert spec.description.input == orig.description.input
    assert spec.description.output == orig.description.output
    assert fixed.user_defined_metadata["owner"] == "tests"
    assert entry.patterns[0] in fixed.user_defined_metadata["milguard.remedies"]
    with pytest.raises(milguard.ModelError, match="already exists"):
        milguard.keep_fp32(src, output=tmp_path / "fixed.mlpackage")
    again = milguard.keep_fp32(tmp_path / "fixed.mlpackage")        # idempotent on its own output
    sig = lambda p: [(op.op_type, dtype_name(op.outputs[0])) for op in iter_ops(p.functions["main"])]  # noqa: E731
    assert sig(milguard.mil.load(again).program) == sig(milguard.mil.load(fixed).program)
    shutil.rmtree(tmp_path / "fixed.mlpackage")
