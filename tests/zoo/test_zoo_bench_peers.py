"""The peer benchmark's ONNX helpers: FLOPs per node, fp16 shares, identity casts, the strict oracle and
the capped search. Needs the benchmark-only ``peers`` extra (onnx, onnxruntime, onnxconverter-common)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the peers extra is not installed")
pytest.importorskip("onnxruntime", reason="the peers extra is not installed")
pytest.importorskip("onnxconverter_common", reason="the peers extra is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench_modules import load_bench_module  # noqa: E402

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
peers = load_bench_module("bench_peers")


def model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                              initializer=[numpy_helper.from_array(v, n) for n, v in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", peers.OPSET)])


def test_node_flops_follow_milguards_table():
    shapes = {"a": (1, 16, 128), "w": (128, 64), "y": (1, 16, 64), "x": (1, 8, 10, 10), "k": (16, 4, 3, 3),
              "b": (16,), "c": (1, 16, 8, 8), "s": (1, 16, 1)}
    node = helper.make_node
    assert peers.node_flops(node("MatMul", ["a", "w"], ["y"]), shapes) == 2 * 16 * 64 * 128
    assert peers.node_flops(node("Conv", ["x", "k", "b"], ["c"], group=2), shapes) == 2 * 16 * 64 * 4 * 9 + 16 * 64
    assert peers.node_flops(node("Conv", ["x", "k"], ["c"], group=2), shapes) == 2 * 16 * 64 * 4 * 9
    assert peers.node_flops(node("Softmax", ["a"], ["y"]), shapes) == 5 * 16 * 64
    assert peers.node_flops(node("ReduceMean", ["a"], ["s"]), shapes) == 16 * 128      # one per element read
    assert peers.node_flops(node("Pow", ["a", "b"], ["a"]), shapes) == 16 * 128
    assert peers.node_flops(node("Reshape", ["a", "b"], ["y"]), shapes) == 0
    assert peers.node_flops(node("Gemm", ["s", "w"], ["y"], transA=0), {**shapes, "s": (16, 128)}) == 2 * 16 * 64 * 128


def test_precision_stats_count_fp16_flops_and_leave_casts_out():
    w = np.ones((4, 4), np.float16)
    m = model([helper.make_node("MatMul", ["x", "w"], ["h"]),
               helper.make_node("Cast", ["h"], ["h32"], to=F32),
               helper.make_node("Add", ["h32", "h32"], ["y"])],
              [("x", F16, [1, 4])], [("y", F32)], [("w", w)])
    values = peers.evaluate_all(m, {"x": np.ones((1, 4), np.float16)})
    stats = peers.onnx_precision_stats(m, values)
    assert stats["casts"] == 1 and stats["fp32_ops"] == 1
    assert stats["flops_total"] == 2 * 4 * 4 + 4
    assert stats["flops_fp16_share"] == 32 / 36


def identity_cast_model(*tail):
    """x -> Cast(fp32 -> fp32) read by two nodes (what the peer's converter crashes on), then ``tail``."""
    return model([helper.make_node("Cast", ["x"], ["c"], to=F32, name="cast"),
                  helper.make_node("Mul", ["c", "c"], ["m"], name="mul"),
                  helper.make_node("Add", ["c", "m"], ["a" if tail else "y"], name="add"), *tail],
                 [("x", F32, [2])], [("y", F32)])


def test_drop_identity_casts_rewires_readers_and_keeps_real_and_output_casts():
    original = identity_cast_model(helper.make_node("Cast", ["a"], ["h"], to=F16),
                                   helper.make_node("Cast", ["h"], ["y"], to=F32))
    cleaned, dropped = peers.drop_identity_casts(original)
    assert dropped == 1
    assert [n.op_type for n in cleaned.graph.node] == ["Mul", "Add", "Cast", "Cast"]
    assert list(cleaned.graph.node[0].input) == ["x", "x"] and list(cleaned.graph.node[1].input) == ["x", "m"]
    feed = {"x": np.array([1.5, -3.0], np.float32)}
    assert np.array_equal(peers.strict_run(cleaned, feed)[0], peers.strict_run(original, feed)[0])
    assert len(original.graph.node) == 5                                      # the input is not modified


def test_oracle_keeps_fp16_per_node():
    check = peers.oracle_self_check()
    assert check["square_300"] == np.inf and check["square_dtype"] == "float16"
    assert check["sum_60000_60000_-60000"] == 60000.0


def test_oracle_reports_no_upcast_on_an_fp16_graph():
    m = model([helper.make_node("Mul", ["x", "x"], ["y"])], [("x", F16, [2])], [("y", F16)])
    values = peers.evaluate_all(m, {"x": np.array([1.0, 2.0], np.float16)})
    assert peers.oracle_upcasts(m, values) == []


def fragile_model():
    """y = x / sqrt(mean(x^2)): overflows in fp16 for |x| > 256, fine in fp32."""
    return model([helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
                  helper.make_node("ReduceMean", ["sq"], ["ms"], keepdims=1, name="mean"),
                  helper.make_node("Sqrt", ["ms"], ["r"], name="sqrt"),
                  helper.make_node("Div", ["x", "r"], ["y"], name="div")],
                 [("x", F32, [1, 8])], [("y", F32)])


FEED = {"x": np.array([[300.0, 1, 2, 3, 4, 5, 6, 7]], np.float32)}


@pytest.mark.slow
def test_search_keeps_the_overflowing_nodes_fp32_only_under_the_strict_oracle():
    on_ort = peers.search(fragile_model(), FEED, "ort")
    strict = peers.search(fragile_model(), FEED, "strict")
    assert on_ort["kept_fp32"] == []                     # ORT CPU computes the fp16 square in fp32
    assert "square" in strict["kept_fp32"]
    assert strict["attempts"] > on_ort["attempts"] >= 1 and strict["search_s"] > 0
    out = peers.strict_run(strict["model"], FEED)[0]
    assert np.isfinite(out).all() and peers.strict_run(on_ort["model"], FEED)[0][0, 0] == 0.0


@pytest.mark.slow
def test_search_records_the_peers_crash_and_the_cap(monkeypatch):
    crashed = peers.search(identity_cast_model(), {"x": np.array([1.0, 2.0], np.float32)}, "ort")
    assert "AttributeError" in crashed["error"] and "model" not in crashed
    monkeypatch.setattr(peers, "SEARCH_CAP_S", 0.01)
    capped = peers.search(fragile_model(), FEED, "ort")
    assert capped["capped"] and "0 s cap" in capped["error"] and capped["search_s"] == 0.01
