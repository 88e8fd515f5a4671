"""Ground-truth hook: MLComputePlan dumps (fixtures written from published dumps) against predict().

Each fixture names its source. The programs below rebuild the dumped models with the dumps'
output names, so ops join by name.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import coremltools as ct
import numpy as np
import pytest

from milguard.errors import ModelError
from milguard.mil import mb, types
from milguard.placement import Placement, predict
from milguard.placement import ground_truth as gt

FIXTURES = Path(__file__).parent / "fixtures"


def _w(*shape):
    return np.random.default_rng(3).standard_normal(shape).astype(np.float16)


def vx_matmul(n: int):
    """Vx#435/#436: fp32 inputs a, b → cast fp16 → matmul → cast fp32."""
    spec = mb.TensorSpec(shape=(n, n), dtype=types.fp32)

    def body(a, b):
        c = mb.matmul(x=mb.cast(x=a, dtype="fp16", name="a_fp16"),
                      y=mb.cast(x=b, dtype="fp16", name="b_fp16"), name="c_fp16")
        return mb.cast(x=c, dtype="fp32", name="c")
    return mb.program(input_specs=[spec, spec], opset_version=ct.target.iOS17)(body)


def vx_sdpa(shape, dtype):
    spec = mb.TensorSpec(shape=shape, dtype=dtype)
    return mb.program(input_specs=[spec] * 3, opset_version=ct.target.iOS18)(
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v, name="attn"))


def voxcpm_rmsnorm_conv():
    """VoxCPMANE#15: fp16 x·rsqrt(mean(x²) + eps) on (1, C, 1, S), then a 1×1 conv projection."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1024, 1, 128), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x):
        sq = mb.mul(x=x, y=x, name="var_20_cast_fp16")
        ms = mb.reduce_mean(x=sq, axes=[1], keep_dims=True, name="_inversed_mean_square_1_cast_fp16")
        r = mb.rsqrt(x=mb.add(x=ms, y=np.float16(1e-6), name="var_26_cast_fp16"),
                     epsilon=np.float16(1e-12), name="var_27_cast_fp16")
        n = mb.mul(x=x, y=r, name="normalized_1_cast_fp16")
        k = mb.conv(x=n, weight=_w(1024, 1024, 1, 1), bias=_w(1024), name="var_72_cast_fp16")
        return mb.reshape(x=k, shape=[1, 16, 64, 128], name="var_78_cast_fp16")
    return prog


def rfdetr_query_selection():
    """RF-DETR#1495: two-stage topk over class scores, then gathers of boxes and features."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 300, 256), dtype=types.fp16)],
                opset_version=ct.target.iOS17)
    def prog(x):
        act = mb.gelu(x=mb.linear(x=x, weight=_w(1024, 256), name="enc_fc1"), name="enc_act")
        feats = mb.linear(x=act, weight=_w(256, 1024), name="enc_fc2")
        cls = mb.linear(x=feats, weight=_w(91, 256), name="cls_head")
        hidden = mb.relu(x=mb.linear(x=feats, weight=_w(256, 256), name="box_fc1"), name="box_act")
        boxes = mb.sigmoid(x=mb.linear(x=hidden, weight=_w(4, 256), name="box_head"), name="boxes")
        scores = mb.reduce_max(x=cls, axes=[-1], name="scores")
        _, idx = mb.topk(x=scores, k=100, axis=1, name="topk")

        def select(src, width, tag, out):
            i = mb.tile(x=mb.expand_dims(x=idx, axes=[-1], name=f"idx_{tag}"), reps=[1, 1, width],
                        name=f"idx_{tag}_tiled")
            return mb.gather_along_axis(x=src, indices=i, axis=1, name=out)
        sel_boxes = select(boxes, 4, "box", "sel_boxes")
        sel_feats = select(feats, 256, "feat", "sel_feats")
        return (mb.linear(x=sel_feats, weight=_w(256, 256), name="dec_fc"),
                mb.linear(x=sel_boxes, weight=_w(256, 4), name="dec_box"))
    return prog


# fixture -> (program, chip, expected accuracy, expected segment-count error)
CASES = {
    "vx435_matmul_512_fp16.json": (lambda: vx_matmul(512), "M4", 1.0, 0),
    "vx435_matmul_384_fp16.json": (lambda: vx_matmul(384), "M4", 1.0, 0),
    "vx436_matmul_4x4.json": (lambda: vx_matmul(4), "M4", 1.0, 0),
    "vx437_sdpa_1x16x2048x64_fp16.json": (lambda: vx_sdpa((1, 16, 2048, 64), types.fp16), "M4", 1.0, 0),
    "vx437_sdpa_1x8x512x64_fp16.json": (lambda: vx_sdpa((1, 8, 512, 64), types.fp16), "M4", 1.0, 0),
    "vx437_sdpa_1x32x1024x128_fp32.json": (lambda: vx_sdpa((1, 32, 1024, 128), types.fp32), "M4", 1.0, 0),
    "voxcpmane15_rmsnorm_conv.json": (voxcpm_rmsnorm_conv, "M5", 1.0, 0),
    "rfdetr1495_topk_chain.json": (rfdetr_query_selection, "M3", 1.0, 0),
}


def test_every_fixture_has_a_case_and_cites_its_source():
    assert {p.name for p in FIXTURES.glob("*.json")} == set(CASES)
    for name in CASES:
        truth = gt.load(FIXTURES / name)
        assert truth.meta["source"].startswith("https://github.com/")
        assert truth.meta["note"]


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_prediction_agrees_with_published_dump(fixture):
    build, chip, accuracy, seg_error = CASES[fixture]
    truth = gt.load(FIXTURES / fixture)
    prog = build()
    predicted = predict(prog, compute_units=truth.compute_units, chip=chip)
    agreement = gt.compare(predicted, truth, function=prog)
    assert agreement.unmatched == ()
    assert agreement.compared == sum(1 for op in truth.ops() if op.preferred is not None)
    assert agreement.accuracy == accuracy
    assert agreement.segment_count_error == seg_error


def test_rfdetr_fixture_counts_and_confusion():
    truth = gt.load(FIXTURES / "rfdetr1495_topk_chain.json")
    prog = rfdetr_query_selection()
    agreement = gt.compare(predict(prog, compute_units="CPU_AND_NE", chip="M3"), truth, function=prog)
    assert agreement.confusion["cpu"]["cpu"] == 7 and agreement.confusion["ane"]["ane"] == 11
    assert agreement.truth_segments == agreement.predicted_segments == 3


def test_voxcpm_const_entries_are_unreported_and_skipped():
    truth = gt.load(FIXTURES / "voxcpmane15_rmsnorm_conv.json")
    consts = [op for op in truth.ops() if op.operator == "const"]
    assert consts and all(op.preferred is None and op.supported == () for op in consts)
    assert {op.preferred for op in truth.ops() if op.operator != "const"} == {"ane"}


def _truth(*devices, costs=None):
    ops = [{"outputs": [f"v{i}"], "operator": "relu", "preferred": d,
            "cost": None if costs is None else costs[i]} for i, d in enumerate(devices)]
    return gt.parse({"format": gt.FORMAT, "functions": {"main": ops}})


def test_compare_reports_mismatches_confusion_segments_and_cost_share():
    truth = _truth("ane", "cpu", "ane", "ane", costs=[0.4, 0.1, 0.3, 0.2])
    predicted = {f"v{i}": Placement(d, "X", "M") for i, d in enumerate(["ane", "ane", "cpu", "ane"])}
    predicted["v9"] = Placement("cpu", "X", "M")                      # not in the dump: ignored
    a = gt.compare(predicted, truth)
    assert (a.compared, a.correct, a.accuracy) == (4, 2, 0.5)
    assert a.mismatches == (("v1", "cpu", "ane"), ("v2", "ane", "cpu"))
    assert (a.truth_segments, a.predicted_segments, a.segment_count_error) == (3, 3, 0)
    assert a.confusion["cpu"]["ane"] == 1 and a.confusion["ane"]["cpu"] == 1
    assert a.truth_ane_cost_share == pytest.approx(0.9)
    assert a.predicted_ane_cost_share == pytest.approx(0.7)
    assert json.loads(json.dumps(a.to_dict()))["accuracy"] == 0.5


def test_compare_lists_unmatched_ops_and_handles_no_costs():
    a = gt.compare({"v0": Placement("ane", "X", "M")}, _truth("ane", "gpu"))
    assert a.unmatched == ("v1",) and a.accuracy == 1.0
    assert a.truth_ane_cost_share is None
    assert gt.compare({}, _truth("ane")).accuracy is None


def test_load_rejects_bad_dumps(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"format": "other", "functions": {}}))
    with pytest.raises(ModelError, match="not a milguard compute-plan dump"):
        gt.load(bad)
    bad.write_text(json.dumps({"format": gt.FORMAT, "functions": {"main": [
        {"outputs": ["x"], "operator": "relu", "preferred": "TPU"}]}}))
    with pytest.raises(ModelError, match="unknown device 'TPU'"):
        gt.load(bad)
    with pytest.raises(ModelError, match="cannot read"):
        gt.load(tmp_path / "missing.json")


def test_record_from_plan_follows_the_coremltools_api():
    """A stand-in with the attribute names of ct.models.compute_plan (MLComputePlan needs macOS)."""
    class MLNeuralEngineComputeDevice:
        pass

    class MLCPUComputeDevice:
        pass
    ops = [SimpleNamespace(operator_name="const", outputs=[SimpleNamespace(name="w")]),
           SimpleNamespace(operator_name="ios18.linear", outputs=[SimpleNamespace(name="y")])]
    usage = {"y": SimpleNamespace(preferred_compute_device=MLNeuralEngineComputeDevice(),
                                  supported_compute_devices=[MLCPUComputeDevice(),
                                                             MLNeuralEngineComputeDevice()])}
    plan = SimpleNamespace(
        model_structure=SimpleNamespace(program=SimpleNamespace(functions={
            "main": SimpleNamespace(block=SimpleNamespace(operations=ops))})),
        get_compute_device_usage_for_mlprogram_operation=lambda op: usage.get(op.outputs[0].name),
        get_estimated_cost_for_mlprogram_operation=lambda op: (
            SimpleNamespace(weight=1.0) if op.outputs[0].name == "y" else None))
    record = gt.record_from_plan(plan, compute_units="CPU_AND_NE", device="Apple M3")
    truth = gt.parse(json.loads(json.dumps(record)))
    assert truth.compute_units == "CPU_AND_NE" and truth.meta["device"] == "Apple M3"
    const, linear = truth.ops()
    assert (const.preferred, const.cost) == (None, None)
    assert (linear.preferred, linear.supported, linear.cost) == ("ane", ("cpu", "ane"), 1.0)


def test_evaluate_predicts_with_the_dump_compute_units(tmp_path):
    prog = vx_sdpa((1, 32, 1024, 128), types.fp32)
    agreement = gt.evaluate(prog, FIXTURES / "vx437_sdpa_1x32x1024x128_fp32.json", chip="M4")
    assert (agreement.compared, agreement.accuracy) == (1, 1.0)     # CPU_AND_NE: fp32 -> CPU
    under_all = gt.evaluate(prog, FIXTURES / "vx437_sdpa_1x32x1024x128_fp32.json", chip="M4",
                            compute_units="ALL")
    assert under_all.mismatches == (("attn", "cpu", "gpu"),)         # 1.7e10 FLOPs: a GPU region
