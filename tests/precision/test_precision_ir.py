"""What milguard.pipeline() does to a program inside ct.convert: dtypes, exact constants, casts.

The fp32 islands are tested with ``remedy="fp32"`` (every decomposed region becomes an island);
what the default ``remedy="auto"`` decides is tested in ``test_precision_decisions.py``."""
from __future__ import annotations

import numpy as np
import pytest
import coremltools as ct

import milguard
import programs as P
from milguard.mil import PassPipelineManager, const_value, dtype_name, iter_ops, mb

FAMILY_PASSES = ["milguard::keep_fp32_group_norm", "milguard::keep_fp32_l2_norm", "milguard::keep_fp32_layer_norm",
                 "milguard::keep_fp32_mask", "milguard::keep_fp32_rms_norm", "milguard::keep_fp32_softmax"]


def convert(prog, precision=None, pipeline="milguard", target=ct.target.iOS17, **opts):
    kwargs = {} if precision is None else {"compute_precision": precision}
    opts.setdefault("remedy", "fp32")
    pp = milguard.pipeline(**opts) if pipeline == "milguard" else pipeline
    return ct.convert(prog, convert_to="milinternal", minimum_deployment_target=target,
                      pass_pipeline=pp, **kwargs)


def compute_ops(prog):
    return [op for op in iter_ops(prog.functions["main"]) if op.op_type not in ("const", "cast")]


def casts(prog):
    return [(dtype_name(op.inputs["x"]), dtype_name(op.outputs[0])) for op in iter_ops(prog.functions["main"])
            if op.op_type == "cast"]


def const_inputs(op):
    return {k: const_value(v) for k, v in op.inputs.items()
            if not isinstance(v, (list, tuple)) and v.op is not None and v.op.op_type == "const"}


def rms_program(eps=1e-12):
    return P.program(P.RANK3, lambda x: P.rms_norm(x, eps=eps))


def test_install_places_the_passes_around_add_fp16_cast():
    passes = milguard.pipeline().passes
    i = passes.index("common::add_fp16_cast")
    assert passes[i - 6:i] == FAMILY_PASSES
    assert passes[i + 1] == "milguard::apply_fp32_islands"
    assert passes[i - 7] == "common::dedup_op_and_var_names"


def test_install_is_idempotent_and_pipeline_leaves_its_base_alone():
    base = ct.PassPipeline.DEFAULT
    once = milguard.pipeline(base)
    twice = milguard.install(milguard.pipeline(base))
    assert once.passes == twice.passes and len(base.passes) == len(ct.PassPipeline.DEFAULT.passes)
    assert milguard.install(once, families="softmax").passes.count("milguard::keep_fp32_softmax") == 1
    assert "milguard::keep_fp32_rms_norm" not in once.passes


def test_bad_options_are_refused():
    with pytest.raises(milguard.MilguardError, match="scope must be one of region, core"):
        milguard.pipeline(scope="all")
    with pytest.raises(milguard.MilguardError, match=r"unknown pattern families \['gelu'\]"):
        milguard.pipeline(families="gelu")
    with pytest.raises(milguard.MilguardError, match=r"unknown milguard options \['speed'\]"):
        milguard.pipeline(speed="fast")
    with pytest.raises(milguard.MilguardError, match="remedy must be one of auto, rescale, fp32"):
        milguard.pipeline(remedy="bf16")
    with pytest.raises(milguard.MilguardError, match="unknown compute units 'NPU'"):
        milguard.pipeline(compute_units="NPU")


def test_rms_norm_region_is_fp32_with_exact_constants_and_one_cast_each_way():
    prog = convert(rms_program(eps=1e-12))
    ops = compute_ops(prog)
    assert [(op.op_type, dtype_name(op.outputs[0])) for op in ops] == [
        ("relu", "fp16"), ("pow", "fp32"), ("reduce_mean", "fp32"), ("add", "fp32"), ("rsqrt", "fp32"),
        ("mul", "fp32"), ("mul", "fp32"), ("tanh", "fp16")]
    add = next(op for op in ops if op.op_type == "add")
    assert const_inputs(add)["y"].dtype == np.float32 and const_inputs(add)["y"] == np.float32(1e-12)
    gamma = next(v for op in ops if op.op_type == "mul" for v in const_inputs(op).values())
    np.testing.assert_array_equal(gamma, P.GAMMA3)
    # input fp32 -> cast fp16 (model I/O), relu fp16, cast to fp32 (entry), cast to fp16 (exit), output cast
    assert casts(prog) == [("fp32", "fp16"), ("fp16", "fp32"), ("fp32", "fp16"), ("fp16", "fp32")]
    prog.validate()


def test_without_milguard_the_same_program_is_all_fp16_and_eps_is_lost():
    prog = convert(rms_program(eps=1e-12), pipeline=ct.PassPipeline.DEFAULT)
    assert {dtype_name(op.outputs[0]) for op in compute_ops(prog)} == {"fp16"}
    add = next(op for op in compute_ops(prog) if op.op_type == "add")
    assert const_inputs(add)["y"].dtype == np.float16


def test_adjacent_regions_merge_without_round_trips():
    prog = convert(P.program(P.RANK3, lambda x: P.softmax(P.rms_norm(P.layer_norm(x)))))
    ops = compute_ops(prog)
    assert [dtype_name(op.outputs[0]) for op in ops[1:-1]] == ["fp32"] * (len(ops) - 2)
    assert len(casts(prog)) == 4                 # model input, region entry, region exit, model output


@pytest.mark.parametrize("target", [ct.target.iOS15, ct.target.iOS16, ct.target.iOS17, ct.target.iOS18])
def test_every_deployment_target(target):
    prog = convert(P.program(P.RANK3, lambda x: P.layer_norm(x, eps=1e-6), opset=target), target=target)
    ln = [op for op in compute_ops(prog) if op.op_type not in ("relu", "tanh")]
    assert len(ln) == 9 and {dtype_name(op.outputs[0]) for op in ln} == {"fp32"}
    prog.validate()


def test_float32_precision_is_a_clean_no_op():
    src = lambda: P.program(P.RANK3, lambda x: P.softmax(P.layer_norm(x)))  # noqa: E731
    ours = convert(src(), precision=ct.precision.FLOAT32)
    plain = convert(src(), precision=ct.precision.FLOAT32, pipeline=ct.PassPipeline.DEFAULT)
    sig = lambda p: [(op.op_type, dtype_name(op.outputs[0])) for op in iter_ops(p.functions["main"])]  # noqa: E731
    assert sig(ours) == sig(plain)
    assert "fp16" not in {d for _, d in sig(ours)}


def test_a_user_op_selector_combines_with_milguard():
    """ct.convert overwrites add_fp16_cast's options with the user's selector; the islands survive."""
    sel = ct.transform.FP16ComputePrecision(op_selector=lambda op: op.op_type != "tanh")
    prog = convert(rms_program(), precision=sel)
    types_ = {op.op_type: dtype_name(op.outputs[0]) for op in compute_ops(prog)}
    assert types_["tanh"] == "fp32" and types_["relu"] == "fp16"
    assert types_["pow"] == types_["rsqrt"] == "fp32"


def test_core_scope_keeps_only_the_overflow_prone_chain():
    prog = convert(P.program(P.RANK3, lambda x: P.layer_norm(x, inv="sqrt_div")), scope="core")
    dt = [(op.op_type, dtype_name(op.outputs[0])) for op in compute_ops(prog)]
    assert dt == [("relu", "fp16"), ("reduce_mean", "fp16"), ("sub", "fp16"), ("pow", "fp32"),
                  ("reduce_mean", "fp32"), ("add", "fp32"), ("sqrt", "fp32"), ("real_div", "fp16"),
                  ("mul", "fp16"), ("add", "fp16"), ("tanh", "fp16")]


def test_families_and_exclusions():
    body = lambda x: P.softmax(mb.relu(x=P.rms_norm(x)))  # noqa: E731
    only_softmax = convert(P.program(P.RANK3, body), families="softmax")
    assert {op.op_type for op in compute_ops(only_softmax) if dtype_name(op.outputs[0]) == "fp32"} == \
        {"reduce_max", "sub", "exp", "reduce_sum", "real_div"}
    prog = P.program(P.RANK3, body)
    pow_name = next(op.name for op in iter_ops(prog.functions["main"]) if op.op_type == "pow")
    excluded = convert(prog, exclude=pow_name)
    assert {op.op_type for op in compute_ops(excluded) if dtype_name(op.outputs[0]) == "fp32"} == \
        {"reduce_max", "sub", "exp", "reduce_sum", "real_div"}


def test_native_ops_stay_fp16_by_default_and_when_asked_always_fp32():
    body = lambda x: mb.softmax(x=mb.layer_norm(x=x, axes=[-1], epsilon=1e-5), axis=-1)  # noqa: E731
    default = convert(P.program(P.RANK3, body), input_ranges="x=-1:1")
    assert {dtype_name(op.outputs[0]) for op in compute_ops(default)} == {"fp16"}
    unbounded = convert(P.program(P.RANK3, body))           # no range: the layer_norm may be at risk
    assert {op.op_type for op in compute_ops(unbounded) if dtype_name(op.outputs[0]) == "fp32"} == {"layer_norm"}
    always = convert(P.program(P.RANK3, body), keep_native="always", remedy="auto")
    assert {op.op_type: dtype_name(op.outputs[0]) for op in compute_ops(always)} == {
        "relu": "fp16", "layer_norm": "fp32", "softmax": "fp32", "tanh": "fp16"}
    ln = next(op for op in compute_ops(always) if op.op_type == "layer_norm")
    assert const_inputs(ln)["epsilon"] == np.float32(1e-5)


@pytest.mark.parametrize("remedy", ["fp32", "auto", "rescale"])
def test_applying_the_passes_again_changes_nothing(remedy):
    prog = convert(P.program(P.RANK3, lambda x: P.softmax(P.rms_norm(P.layer_norm(x)))), remedy=remedy)
    before = [(op.op_type, op.name, dtype_name(op.outputs[0])) for op in iter_ops(prog.functions["main"])]
    again = ct.PassPipeline(FAMILY_PASSES + ["milguard::apply_fp32_islands"], pipeline_name="again")
    PassPipelineManager.apply_pipeline(prog, again)
    after = [(op.op_type, op.name, dtype_name(op.outputs[0])) for op in iter_ops(prog.functions["main"])]
    assert after == before
    prog.validate()


def test_decisions_are_kept_for_the_program():
    from milguard.actions.decide import remembered
    prog = convert(P.program(P.RANK3, lambda x: P.softmax(P.rms_norm(x))))
    assert [(d.family, d.variant, d.remedy) for d in remembered(prog)] == [
        ("rms_norm", "decomposed/weight/rsqrt/pow/last_axis", "fp32"), ("softmax", "decomposed/max_shifted", "fp32")]


def test_converted_program_saves_and_reloads(tmp_path):
    prog = P.program(P.RANK3, lambda x: P.rms_norm(x, eps=1e-12))
    ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                    pass_pipeline=milguard.pipeline(remedy="fp32"), skip_model_load=True)
    ml.save(str(tmp_path / "m.mlpackage"))
    loaded = milguard.mil.load(tmp_path / "m.mlpackage").program
    fp32 = [op.op_type for op in compute_ops(loaded) if dtype_name(op.outputs[0]) == "fp32"]
    assert fp32 == ["pow", "reduce_mean", "add", "rsqrt", "mul", "mul"]
    add = next(op for op in compute_ops(loaded) if op.op_type == "add")
    assert const_inputs(add)["y"] == np.float32(1e-12)


@pytest.mark.parametrize("body,input_range,kept", [
    (lambda x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5), "x=-300:300", {"layer_norm"}),
    (lambda x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5), "x=-100:100", set()),
    (lambda x: mb.softmax(x=mb.reshape(x=x, shape=[1, 96]), axis=-1), "x=-1e4:1e4", set()),
    (lambda x: mb.softmax(x=mb.tile(x=mb.reshape(x=x, shape=[1, 96]), reps=[1, 700]), axis=-1), "x=-1:1",
     {"softmax"}),                                   # a row of 67200 > 65504 exponentials
    # 16 unshifted exponentials: at risk past ln(65504 / 16) = 8.32
    (lambda x: mb.reduce_log_sum_exp(x=x, axes=[-1], keep_dims=True), "x=-1:9", {"reduce_log_sum_exp"}),
    (lambda x: mb.reduce_log_sum_exp(x=x, axes=[-1], keep_dims=True), "x=-1:8", set()),
])
def test_native_ops_at_risk_are_kept_fp32(body, input_range, kept):
    prog = convert(P.program(P.RANK3, body), input_ranges=input_range, remedy="fp32")
    assert {op.op_type for op in compute_ops(prog) if dtype_name(op.outputs[0]) == "fp32"} == kept


def test_bad_input_ranges_are_refused():
    with pytest.raises(milguard.MilguardError, match="bad input range 'x=1': expected NAME=LO:HI"):
        milguard.pipeline(input_ranges="x=1")
    with pytest.raises(milguard.MilguardError, match="bad input range for 'x': 2.0 > 1.0"):
        milguard.pipeline(input_ranges={"x": (2.0, 1.0)})
