"""FLOP estimates, segments, transitions, fp32 islands, FLOP shares and the relative cost model."""
from __future__ import annotations

import json
from dataclasses import replace

import coremltools as ct
import numpy as np
import pytest

from milguard.mil import mb, types
from milguard.placement import CostModel, PlacementOptions, predict, summarize
from milguard.placement.flops import flops

S, D = 128, 256                          # sequence, width
ACT = S * D                              # elements of one activation
OPTS = PlacementOptions(size_floor_flops=0)   # these programs are below the whole-model floor (S1)
LINEAR = 2 * S * D * D + ACT             # FLOPs of one D×D linear with its (default zero) bias


def _prog(build, shape=(1, S, D), dtype=types.fp16, n_inputs=1):
    specs = [mb.TensorSpec(shape=shape, dtype=dtype)] * n_inputs
    return mb.program(input_specs=specs, opset_version=ct.target.iOS17)(build)


def _w(*shape):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float16)


def _op(prog, name):
    return next(op for op in prog.functions["main"].operations if op.name == name)


def island_program(relus: int = 2):
    """linear (ANE) → cast fp32 → relu × n (fp32) → cast fp16 → linear (ANE)."""
    def body(x):
        y = mb.cast(x=mb.linear(x=x, weight=_w(D, D), name="head"), dtype="fp32", name="c_in")
        for i in range(relus):
            y = mb.relu(x=y, name=f"r{i}")
        return mb.linear(x=mb.cast(x=y, dtype="fp16", name="c_out"), weight=_w(D, D), name="tail")
    return _prog(body)


# --------------------------------------------------------------------------- FLOPs
def test_flops_of_matrix_ops():
    def body(x, y):
        a = mb.linear(x=x, weight=_w(64, D), bias=_w(64), name="lin")                 # (1,S,64)
        b = mb.matmul(x=x, y=x, transpose_x=True, name="mm")                           # (1,D,D), K=S
        c = mb.einsum(values=(x, y), equation="chw,whu->chu", name="es")              # (1,S,64), K=D
        return a, b, c
    specs = [mb.TensorSpec(shape=(1, S, D), dtype=types.fp16),
             mb.TensorSpec(shape=(D, S, 64), dtype=types.fp16)]
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS17)(body)
    assert flops(_op(prog, "lin")) == 2 * S * 64 * D + S * 64
    assert flops(_op(prog, "mm")) == 2 * D * D * S
    assert flops(_op(prog, "es")) == 2 * S * 64 * D


def test_flops_of_conv_reductions_elementwise_and_layout():
    def body(x):
        c = mb.conv(x=x, weight=_w(16, 8, 3, 3), pad_type="same", name="cv")          # (1,16,32,32)
        r = mb.reduce_mean(x=c, axes=[1], keep_dims=True, name="rm")
        s = mb.softmax(x=c, axis=1, name="sm")
        e = mb.exp(x=s, name="ex")
        t = mb.transpose(x=e, perm=[0, 2, 3, 1], name="tr")
        return r, t
    prog = _prog(body, shape=(1, 8, 32, 32))
    out = 16 * 32 * 32
    assert flops(_op(prog, "cv")) == 2 * out * 8 * 9
    assert flops(_op(prog, "rm")) == out                 # one op per element read
    assert flops(_op(prog, "sm")) == 5 * out
    assert flops(_op(prog, "ex")) == out
    assert flops(_op(prog, "tr")) == 0


def test_flops_of_fused_attention():
    spec = mb.TensorSpec(shape=(1, 4, 128, 64), dtype=types.fp16)
    prog = mb.program(input_specs=[spec] * 3, opset_version=ct.target.iOS18)(
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v, name="sdpa"))
    scores = 4 * 128 * 128
    assert flops(_op(prog, "sdpa")) == 4 * scores * 64 + 5 * scores


# --------------------------------------------------------------------------- segments
def test_island_gives_three_segments_two_transitions_one_island():
    prog = island_program()
    summary = summarize(prog, predict(prog, options=OPTS))
    assert [(s.device, s.ops) for s in summary.segments] == [
        ("ane", ("head",)), ("cpu", ("c_in", "r0", "r1", "c_out")), ("ane", ("tail",))]
    assert summary.transitions == 2
    assert summary.transitions_by_pair == {"ane->cpu": 1, "cpu->ane": 1}
    assert summary.fp32_islands == 1
    assert summary.op_counts == {"ane": 2, "gpu": 0, "cpu": 4}
    assert summary.flops == {"ane": 2 * LINEAR, "gpu": 0.0, "cpu": 2 * ACT}
    assert summary.flops_share["ane"] == pytest.approx(2 * LINEAR / (2 * LINEAR + 2 * ACT))
    assert summary.crossings == 2 and summary.crossing_bytes == 2 * ACT * 2      # two fp16 values


def test_relative_cost_matches_the_hand_derivation():
    summary = summarize(island_program(), predict(island_program(), options=OPTS))
    # dispatch: two ANE segments × 100 µs (the CPU floor is 0); switches: 2 × 200 µs.
    # compute, every op bandwidth bound:
    #   ANE linear: x 2·ACT + weight 2·D·D + bias 2·D + out 2·ACT = 262656 B at 50 GB/s = 5.25312 µs
    #   CPU cast: 2·ACT + 4·ACT bytes = 1.96608 µs; fp32 relu: 8·ACT bytes = 2.62144 µs (100 GB/s)
    # copy: two fp16 crossings of 2·ACT bytes, both fp16↔fp32 (κ = 1), at 10 GB/s.
    assert summary.cost_breakdown == pytest.approx(
        {"dispatch": 200.0, "switch": 400.0,
         "compute": 2 * 5.25312 + 2 * 1.96608 + 2 * 2.62144, "copy": 2 * 6.5536})
    assert summary.relative_cost == pytest.approx(632.78848)


def test_cost_model_constants_are_overridable():
    prog = island_program()
    placements = predict(prog, options=OPTS)
    base = summarize(prog, placements)
    slow_switch = summarize(prog, placements, cost_model=replace(
        CostModel(), switch_cost={"ane|cpu": 1e-3, "ane|gpu": 2e-3, "cpu|gpu": 1e-3}))
    fast_copy = summarize(prog, placements, cost_model=replace(CostModel(), copy_bandwidth=20e9))
    assert slow_switch.cost_breakdown["switch"] == pytest.approx(2000.0)
    assert slow_switch.relative_cost - base.relative_cost == pytest.approx(1600.0)
    assert fast_copy.cost_breakdown["copy"] == pytest.approx(base.cost_breakdown["copy"] / 2)


def test_more_islands_cost_more():
    one = island_program()

    def two_islands(x):
        y = mb.linear(x=x, weight=_w(D, D), name="a")
        y = mb.cast(x=mb.relu(x=mb.cast(x=y, dtype="fp32")), dtype="fp16")
        y = mb.linear(x=y, weight=_w(D, D), name="b")
        y = mb.cast(x=mb.relu(x=mb.cast(x=y, dtype="fp32")), dtype="fp16")
        return mb.linear(x=y, weight=_w(D, D), name="c")
    two = _prog(two_islands)
    s1, s2 = summarize(one, predict(one, options=OPTS)), summarize(two, predict(two, options=OPTS))
    assert (s2.fp32_islands, s2.transitions, len(s2.segments)) == (2, 4, 5)
    assert s2.relative_cost > s1.relative_cost + 2 * 200 + 100      # 2 more switches, 1 more floor


def test_model_io_casts_are_not_islands():
    prog = _prog(lambda x: mb.cast(x=mb.linear(x=mb.cast(x=x, dtype="fp16"), weight=_w(D, D)),
                                   dtype="fp32"), dtype=types.fp32)
    placements = predict(prog, options=OPTS)
    summary = summarize(prog, placements)
    assert summary.fp32_islands == 0
    assert [s.device for s in summary.segments] == ["ane"]
    assert {p.rule for p in placements.values()} == {"O17.io_cast", "A3.eligible"}


def test_all_fp32_program_is_one_island_on_the_gpu_under_all():
    def body(x):
        for _ in range(6):
            x = mb.relu(x=mb.linear(x=x, weight=_w(D, D).astype(np.float32)))
        return x
    prog = _prog(body, dtype=types.fp32)
    summary = summarize(prog, predict(prog, options=OPTS))
    assert summary.fp32_islands == 1
    few_flops = PlacementOptions(size_floor_flops=0, gpu_region_min_flops=2e8)
    assert summarize(prog, predict(prog, options=few_flops)).segments[0].device == "cpu"  # 12 ops
    assert [s.device for s in summary.segments] == ["gpu"]         # 6 linears: 1.007e8 FLOPs >= 1e8
    assert summary.transitions == 0 and summary.flops_share["gpu"] == 1.0


def test_ops_without_placement_are_skipped_and_dict_is_json():
    prog = island_program()
    placements = predict(prog, options=OPTS)
    partial = {k: v for k, v in placements.items() if k not in ("c_in", "r0", "r1", "c_out")}
    summary = summarize(prog, partial)
    assert [s.device for s in summary.segments] == ["ane"] and summary.fp32_islands == 0
    data = json.loads(json.dumps(summarize(prog, placements).to_dict()))
    assert data["segment_count"] == 3 and data["relative_cost_unit"].startswith("relative")
    assert data["cost_model"]["switch_cost"]["ane|cpu"] == 200e-6


def test_summarize_is_linear_in_program_size():
    """Twice the ops must not take much more than twice the work (counted in op visits)."""
    from milguard.placement import segments as seg_module
    calls = {"n": 0}
    original = seg_module.op_facts

    def counting(op):
        calls["n"] += 1
        return original(op)
    seg_module.op_facts, small_calls = counting, None
    try:
        for n in (4, 8):
            calls["n"] = 0
            prog = island_program(relus=n)
            summarize(prog, predict(prog, options=OPTS))
            small_calls = small_calls or calls["n"]
        assert calls["n"] == small_calls + 4                        # one visit per added op
    finally:
        seg_module.op_facts = original


def test_summary_invariants_hold_for_any_device_assignment():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from milguard.placement import Placement

    prog = island_program(relus=3)
    names = list(predict(prog, options=OPTS))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.sampled_from(["ane", "gpu", "cpu"]), min_size=len(names),
                    max_size=len(names)))
    def check(devices):
        placements = {n: Placement(d, "X", "M") for n, d in zip(names, devices)}
        s = summarize(prog, placements)
        assert [op for seg in s.segments for op in seg.ops] == names          # a partition, in order
        assert all(a.device != b.device for a, b in zip(s.segments, s.segments[1:]))
        assert s.transitions == len(s.segments) - 1 == sum(s.transitions_by_pair.values())
        assert sum(s.op_counts.values()) == len(names)
        assert sum(s.flops_share.values()) == pytest.approx(1.0)
        expected_dispatch = sum(100.0 for seg in s.segments if seg.device in ("ane", "gpu"))
        assert s.cost_breakdown["dispatch"] == pytest.approx(expected_dispatch)
        assert s.relative_cost == pytest.approx(sum(s.cost_breakdown.values()))
        assert (s.crossings == 0) == (len(s.segments) == 1)
    check()
