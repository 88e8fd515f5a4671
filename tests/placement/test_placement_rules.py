"""One positive and one near-miss negative case per placement rule, on tiny programs built with mb.

Each case names the op under test "t". The positive program must make rule R decide "t"; the
negative one differs in one fact (dtype, chip, a constant, a size) and must not.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import coremltools as ct
import numpy as np
import pytest

from milguard.errors import MilguardError
from milguard.mil import mb, types
from milguard.placement import RULES, PlacementOptions, predict
from milguard.placement.rules import RULES_BY_ID

iOS17, iOS18 = ct.target.iOS17, ct.target.iOS18
f16 = np.float16
# Rule tests look at one op at a time: no size floor, no small-segment demotion.
ISOLATED = PlacementOptions(size_floor_flops=0, min_ane_segment_flops=0)


def _p(shapes, build, dtype=types.fp16, opset=iOS17):
    """A program with one input per entry of ``shapes`` (a shape or a TensorSpec)."""
    specs = [s if not isinstance(s, tuple) else mb.TensorSpec(shape=s, dtype=dtype)
             for s in shapes]
    return mb.program(input_specs=specs, opset_version=opset)(build)


def place(prog, *, options=ISOLATED, **kwargs):
    return predict(prog, options=options, **kwargs)


def weight(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float16)


# --------------------------------------------------------------------------- programs
def linear(n=64, k=64):
    return _p([(1, n, k)], lambda x: mb.linear(x=x, weight=weight(k, k), name="t"))


def relu(shape=(1, 64, 64), dtype=types.fp16):
    return _p([shape], lambda x: mb.relu(x=x, name="t"), dtype=dtype)


def cond_program(with_cond: bool):
    def body(x):
        pred = mb.greater(x=mb.reduce_sum(x=x, axes=[0, 1]), y=f16(0), name="pred")
        if not with_cond:
            return mb.select(cond=pred, a=mb.relu(x=x), b=mb.sigmoid(x=x), name="t")
        return mb.cond(pred=pred, _true_fn=lambda: mb.relu(x=x, name="inner_true"),
                       _false_fn=lambda: mb.sigmoid(x=x, name="inner_false"), name="t")
    return _p([(1, 64)], body)


def rnn():
    return _p([(4, 1, 8), (1, 8)], lambda x, h: mb.rnn(
        x=x, initial_h=h, weight_ih=weight(8, 8), weight_hh=weight(8, 8), name="t")[0])


def gather():
    return _p([(1, 64, 32)], lambda x: mb.gather(
        x=x, indices=np.array([0, 3, 5], np.int32), axis=1, name="t"))


def topk(reduce_instead=False):
    if reduce_instead:
        return _p([(1, 64)], lambda x: mb.reduce_max(x=x, axes=[1], name="t"))
    return _p([(1, 64)], lambda x: mb.topk(x=x, k=4, axis=1, name="t")[0])


def unary(op: str, shape=(1, 8, 16, 16), opset=iOS17, **kw):
    return _p([shape], lambda x: getattr(mb, op)(x=x, name="t", **kw), opset=opset)


def runtime_int(kind: str):
    if kind == "cast":
        return _p([(1, 64)], lambda x: mb.cast(x=x, dtype="int32", name="t"))
    if kind == "argmax":
        return _p([(1, 64)], lambda x: mb.reduce_argmax(x=x, axis=1, name="t"))
    return _p([(1, 64)], lambda x: mb.add(x=x, y=x, name="t"), dtype=types.int32)


def dynamic(symbolic: bool):
    from coremltools.converters.mil.mil import get_new_symbol
    shape = (1, get_new_symbol(), 64) if symbolic else (1, 16, 64)
    return relu(shape)


def slice_program(runtime_begin: bool):
    if runtime_begin:
        specs = [mb.TensorSpec(shape=(1, 64, 64), dtype=types.fp16),
                 mb.TensorSpec(shape=(3,), dtype=types.int32)]
        return _p(specs, lambda x, b: mb.slice_by_size(x=x, begin=b, size=[1, 8, 64], name="t"))
    return _p([(1, 64, 64)], lambda x: mb.slice_by_size(x=x, begin=[0, 4, 0], size=[1, 8, 64], name="t"))


def pow_program(const_exponent: bool):
    if const_exponent:
        return _p([(1, 64)], lambda x: mb.pow(x=x, y=f16(2), name="t"))
    return _p([(1, 64), (1, 64)], lambda x, y: mb.pow(x=x, y=y, name="t"))


def casts(internal: bool):
    if internal:
        return _p([(1, 64)], lambda x: mb.cast(x=mb.relu(x=mb.cast(x=mb.relu(x=x), dtype="fp32",
                                                                   name="t")), dtype="fp16"))
    return _p([(1, 64)], lambda x: mb.relu(x=mb.cast(x=x, dtype="fp16", name="t")), dtype=types.fp32)


def conv(kernel: int, const_weight=True):
    if not const_weight:
        return _p([(1, 8, 16, 16), (8, 8, 3, 3)], lambda x, w: mb.conv(x=x, weight=w, name="t"))
    return _p([(1, 8, 16, 32)], lambda x: mb.conv(x=x, weight=weight(8, 8, 1, kernel), name="t"))


def sdpa(seq: int, heads: int = 16, dtype=types.fp16):
    shape = (1, heads, seq, 64)
    return _p([shape] * 3, lambda q, k, v: mb.scaled_dot_product_attention(
        query=q, key=k, value=v, name="t"), dtype=dtype, opset=iOS18)


def pad(mode: str):
    return _p([(1, 8, 16, 16)], lambda x: mb.pad(x=x, pad=[1, 1, 1, 1], mode=mode, name="t"))


def fill_like():
    return _p([(1, 64)], lambda x: mb.fill_like(ref_tensor=x, value=f16(0), name="t"))


# --------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    rule: str
    positive: Callable[[], Any]
    negative: Callable[[], Any]
    pos_kw: dict = None
    neg_kw: dict = None
    device: str | None = None          # expected device of "t" in the positive case


M1, M2, M3, M4 = ({"chip": c} for c in ("M1", "M2", "M3", "M4"))

CASES = [
    Case("units.cpu_only", linear, linear, {"compute_units": "CPU_ONLY"}, {}, "cpu"),
    Case("O5.control_flow", lambda: cond_program(True), lambda: cond_program(False), device="cpu"),
    Case("O1.recurrent", rnn, linear, device="cpu"),
    Case("O3.gather", gather, gather, M2,
         {"chip": "M2", "options": replace(ISOLATED, gather_on_ane=True)}, "cpu"),
    Case("O4.topk", topk, lambda: topk(reduce_instead=True), device="cpu"),
    Case("O6.band_part", lambda: unary("band_part"), lambda: unary("relu"), device="cpu"),
    Case("O8.walled", lambda: unary("cumsum", axis=1), lambda: unary("reduce_sum", axes=[1]),
         device="cpu"),
    Case("S2.dynamic_shape", lambda: dynamic(True), lambda: dynamic(False), device="cpu"),
    Case("O7.dynamic_offset", lambda: slice_program(True), lambda: slice_program(False),
         device="cpu"),
    Case("D7.integer", lambda: runtime_int("cast"), lambda: runtime_int("argmax"), device="cpu"),
    Case("R3.rank", lambda: relu((1, 2, 2, 2, 2, 8)), lambda: relu((1, 2, 2, 2, 8)), device="cpu"),
    Case("O9.pow_exponent", lambda: pow_program(False), lambda: pow_program(True), device="cpu"),
    Case("O8.trig_chip", lambda: unary("sin"), lambda: unary("sin"), M2, M3, "cpu"),
    Case("O16.texture_chip", lambda: unary("upsample_nearest_neighbor", scale_factor_height=2,
                                           scale_factor_width=2),
         lambda: unary("upsample_nearest_neighbor", scale_factor_height=2, scale_factor_width=2),
         M1, M2, "cpu"),
    Case("O12.argmin_chip", lambda: unary("reduce_argmin", axis=1),
         lambda: unary("reduce_argmin", axis=1), M2, M3, "cpu"),
    Case("A3.reflect_pad_chip", lambda: pad("reflect"), lambda: pad("reflect"), M1, M2, "cpu"),
    Case("O17.io_cast", lambda: casts(False), lambda: casts(True), device="ane"),
    Case("O17.cast_boundary", lambda: casts(True), lambda: casts(False), device="cpu"),
    Case("D1.fp32", lambda: relu(dtype=types.fp32), relu, device="cpu"),
    Case("R1.dims", lambda: relu((1, 4, 20000)), lambda: relu((1, 4, 20000)), M3, M4, "cpu"),
    Case("R2.transpose_extent", lambda: unary("transpose", shape=(1, 20000, 2, 8), perm=[1, 0, 2, 3]),
         lambda: unary("transpose", shape=(1, 20000, 2, 8), perm=[1, 0, 2, 3]), M3, M4, "cpu"),
    Case("O14.conv_kernel", lambda: conv(15), lambda: conv(13), device="cpu"),
    Case("O15.sdpa_small", lambda: sdpa(512, heads=8), lambda: sdpa(2048), device="cpu"),
    Case("S1.size_floor", lambda: linear(384, 384), lambda: linear(512, 512),    # Vx#435/436
         {"options": PlacementOptions()}, {"options": PlacementOptions()}, "cpu"),
    Case("A3.eligible", linear, lambda: relu(dtype=types.fp32), device="ane"),
    Case("A3.unlisted", fill_like, relu, device="cpu"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_rule_positive_and_negative(case: Case):
    positive = place(case.positive(), **(case.pos_kw or {}))["t"]
    negative = place(case.negative(), **(case.neg_kw or {}))["t"]
    assert positive.rule == case.rule
    assert positive.certainty == RULES_BY_ID[case.rule].certainty
    assert negative.rule != case.rule
    if case.device:
        assert positive.device == case.device


def test_every_rule_has_a_case():
    # O19: test_const_ops_are_unplaced; P2 and P4: the region tests below
    covered = {c.rule for c in CASES} | {"O19.const", "P2.gpu_region", "P4.small_segment"}
    assert covered == set(RULES_BY_ID)


def test_rules_carry_source_and_certainty():
    for rule in RULES:
        assert rule.source and rule.description
        assert rule.certainty in ("H", "M", "L")
        assert rule.verdict in ("ane", "cpu", "off_ane", "none")
    assert RULES[-1].id == "A3.unlisted"                        # the catch-all comes last


def test_const_ops_are_unplaced():
    prog = linear()
    consts = [op.name for op in prog.functions["main"].operations if op.op_type == "const"]
    result = place(prog)
    assert consts and not set(consts) & set(result)
    assert list(result) == ["t"]


def test_nested_ops_take_the_control_flow_placement():
    result = place(cond_program(True))
    assert result["inner_true"] == result["inner_false"] == result["t"]
    assert result["t"].rule == "O5.control_flow"


def test_gather_on_ane_needs_an_a14_class_chip():
    opts = replace(ISOLATED, gather_on_ane=True)
    assert place(gather(), chip="M1", options=opts)["t"].rule == "O3.gather"
    assert place(gather(), chip="M2", options=opts)["t"].device == "ane"


def test_constant_pad_is_eligible_on_m1():
    assert place(pad("constant"), chip="M1")["t"].rule == "A3.eligible"


def test_conv_with_runtime_weight_is_off_the_neural_engine():
    assert place(conv(3, const_weight=False))["t"].rule == "O14.conv_kernel"


def test_fp32_attention_is_off_the_neural_engine_at_any_size():
    assert place(sdpa(2048, dtype=types.fp32))["t"].rule == "D1.fp32"


# --------------------------------------------------------------------------- region rules
def fp32_chain(n_ops: int):
    """fp16 linear → cast → n fp32 relus → cast → fp16 linear."""
    def body(x):
        y = mb.cast(x=mb.linear(x=x, weight=weight(256, 256), name="head"), dtype="fp32", name="c_in")
        for i in range(n_ops):
            y = mb.relu(x=y, name=f"r{i}")
        return mb.linear(x=mb.cast(x=y, dtype="fp16", name="c_out"), weight=weight(256, 256),
                         name="tail")
    return _p([(1, 128, 256)], body)


def test_p2_large_fp32_run_goes_to_the_gpu_under_all():
    opts = replace(ISOLATED, gpu_region_min_ops=8)
    big, small = place(fp32_chain(6), options=opts), place(fp32_chain(5), options=opts)
    assert {big[n].device for n in ("c_in", "r0", "r5", "c_out")} == {"gpu"}      # 8 ops
    assert {small[n].device for n in ("c_in", "r0", "r4", "c_out")} == {"cpu"}    # 7 ops
    assert big["r0"].rule == small["r0"].rule == "D1.fp32"
    assert big["head"].device == big["tail"].device == "ane"


def test_p2_flop_threshold_also_sends_a_run_to_the_gpu():
    opts = replace(ISOLATED, gpu_region_min_flops=128 * 256 * 3)      # 3 relus' worth
    assert place(fp32_chain(3), options=opts)["r0"].device == "gpu"
    assert place(fp32_chain(2), options=opts)["r0"].device == "cpu"


def test_cpu_and_ne_never_uses_the_gpu_and_cpu_and_gpu_never_the_ane():
    opts = replace(ISOLATED, gpu_region_min_ops=1)
    ne = place(fp32_chain(40), compute_units="CPU_AND_NE", options=opts)
    gpu = place(fp32_chain(40), compute_units=ct.ComputeUnit.CPU_AND_GPU, options=opts)
    assert {p.device for p in ne.values()} == {"ane", "cpu"}
    assert {p.device for p in gpu.values()} == {"gpu"}
    assert gpu["head"].rule == "A3.eligible"


def test_p4_small_ane_segment_moves_to_its_neighbour():
    def body(x):                                   # ANE head, fp32 island, tiny ANE relu, island
        y = mb.linear(x=x, weight=weight(256, 256), name="head")
        y = mb.cast(x=mb.relu(x=mb.cast(x=y, dtype="fp32")), dtype="fp16")
        y = mb.relu(x=y, name="t")
        return mb.cast(x=mb.relu(x=mb.cast(x=y, dtype="fp32")), dtype="fp16")
    prog = _p([(1, 128, 256)], body)
    demoted = predict(prog, options=PlacementOptions(size_floor_flops=0))
    kept = predict(prog, options=PlacementOptions(size_floor_flops=0,
                                                  min_ane_segment_flops=128 * 256))
    assert (demoted["t"].device, demoted["t"].rule, demoted["t"].certainty) == ("cpu", "P4.small_segment", "L")
    assert demoted["head"].device == "ane"                          # 16.8 MFLOPs: above the floor
    assert (kept["t"].device, kept["t"].rule) == ("ane", "A3.eligible")


def test_p4_a_whole_tiny_model_runs_on_the_cpu():
    result = predict(linear(8, 8), options=PlacementOptions(size_floor_flops=0))
    assert (result["t"].device, result["t"].rule) == ("cpu", "P4.small_segment")


def test_s1_counts_the_whole_function_and_keeps_small_ops_in_big_regions():
    def body(x):
        y = mb.linear(x=x, weight=weight(512, 512), name="big")         # 2.7e8 FLOPs
        return mb.relu(x=y, name="t")
    result = predict(_p([(1, 512, 512)], body))
    assert result["t"].device == result["big"].device == "ane"
    small = predict(_p([(1, 384, 384)], lambda x: mb.relu(x=mb.linear(
        x=x, weight=weight(384, 384), name="big"), name="t")))
    assert {(p.device, p.rule) for p in small.values()} == {("cpu", "S1.size_floor")}


def test_s1_does_not_apply_without_the_neural_engine():
    assert predict(linear(8, 8), compute_units="CPU_AND_GPU")["t"].device == "gpu"


# --------------------------------------------------------------------------- inputs
def test_predict_accepts_program_function_and_saved_model(tmp_path):
    prog = linear(128, 256)
    by_program = predict(prog)
    assert predict(prog.functions["main"]) == by_program
    mlmodel = ct.convert(prog, convert_to="mlprogram", skip_model_load=True,
                         minimum_deployment_target=iOS17, pass_pipeline=ct.PassPipeline.EMPTY)
    mlmodel.save(str(tmp_path / "m.mlpackage"))
    assert predict(tmp_path / "m.mlpackage") == by_program


def test_chip_aliases_and_bad_options():
    prog = unary("sin")
    assert predict(prog, chip="A15", options=ISOLATED)["t"].rule == "A3.eligible"
    assert predict(prog, chip="m5", options=ISOLATED)["t"].rule == "A3.eligible"
    with pytest.raises(MilguardError, match="unknown chip family 'M9'"):
        predict(prog, chip="M9")
    with pytest.raises(MilguardError, match="unknown compute units 'NE_ONLY'"):
        predict(prog, compute_units="NE_ONLY")
    with pytest.raises(MilguardError, match="no function 'decode'"):
        from milguard.placement.predict import as_function
        as_function(prog, "decode")


def test_cast_of_an_fp16_input_into_an_fp32_island_is_a_boundary_not_io():
    """The fp32 side decides: fp16 input → fp32 is the entry of an island at the model's start."""
    prog = _p([(1, 64)], lambda x: mb.cast(x=mb.relu(x=mb.cast(x=x, dtype="fp32", name="t")),
                                           dtype="fp16", name="back"))
    result = place(prog)
    assert result["t"].rule == "O17.cast_boundary"
    assert result["back"].rule == "O17.cast_boundary"          # fp16 side is the output: boundary


def test_docs_render_the_current_rules_table():
    from pathlib import Path

    from milguard.placement.rules import rules_table_markdown
    docs = Path(__file__).resolve().parents[2] / "docs" / "placement.md"
    assert rules_table_markdown() in docs.read_text(encoding="utf-8")


def test_compressed_weights_count_as_constants():
    """A conv whose weight comes from constexpr_affine_dequantize (a quantized model) is eligible."""
    def body(x):
        w = mb.constexpr_affine_dequantize(
            quantized_data=np.ones((8, 8, 3, 3), np.int8), zero_point=np.int8(0),
            scale=np.float16(0.1), axis=0, name="w")
        return mb.conv(x=x, weight=w, name="t")
    result = place(_p([(1, 8, 16, 16)], body))
    assert "w" not in result                                   # constexpr ops are not placed
    assert result["t"].rule == "A3.eligible"
