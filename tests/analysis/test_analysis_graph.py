"""The networkx view: nodes, attributes, multi-edges, inputs and nested blocks."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from milguard.analysis.graph import to_networkx
from milguard.errors import ModelError
from milguard.mil import Function, Program, mb, types


def _rms() -> Program:
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2, 64), dtype=types.fp16)}) as fn:
        x = fn.inputs["x"]
        sq = mb.mul(x=x, y=x, name="square")
        m = mb.reduce_mean(x=sq, axes=[-1], keep_dims=True, name="variance")
        r = mb.rsqrt(x=mb.add(x=m, y=np.float16(1e-5), name="add_eps"), name="rsqrt")
        fn.set_outputs([mb.mul(x=x, y=r, name="normed")])
    prog.add_function("main", fn)
    return prog


def test_nodes_carry_op_type_dtypes_shapes_and_pattern():
    g = to_networkx(_rms())
    assert isinstance(g, nx.MultiDiGraph) and nx.is_directed_acyclic_graph(g)
    assert g.nodes["x"]["op_type"] == "input" and g.nodes["x"]["dtypes"] == ["fp16"]
    node = g.nodes["variance"]
    assert node["op_type"] == "reduce_mean" and node["dtypes"] == ["fp16"] and node["shapes"] == [(2, 1)]
    assert node["pattern"]["kind"] == "rms_norm"
    assert node["device"] in ("ane", "gpu", "cpu") and node["placement_rule"]
    axes = next(n for n in g.predecessors("variance") if n.startswith("variance_axes"))   # suffix: a global count
    assert g.nodes[axes]["op_type"] == "const" and g.nodes[axes]["device"] is None
    assert g.graph["outputs"] == ["normed"]


def test_edges_run_producer_to_consumer_keyed_by_parameter():
    g = to_networkx(_rms())
    # mul(x, x) is two edges between the same pair of nodes
    assert set(g["x"]["square"]) == {"x", "y"}
    e = g.edges["rsqrt", "normed", "y"]
    assert e == {"param": "y", "var": "rsqrt", "dtype": "fp16", "shape": (2, 1)}
    assert list(nx.topological_sort(g)).index("square") < list(nx.topological_sort(g)).index("normed")


def test_without_pattern_and_placement():
    g = to_networkx(_rms(), patterns=False, placement=False)
    assert g.nodes["variance"]["pattern"] is None and g.nodes["variance"]["device"] is None


def test_nested_block_ops_and_links():
    prog = Program()
    with Function({"x": mb.placeholder(shape=(3,), dtype=types.fp32),
                   "p": mb.placeholder(shape=(1,), dtype=types.bool)}) as fn:
        x = fn.inputs["x"]
        out = mb.cond(pred=mb.squeeze(x=fn.inputs["p"], name="pred"), _true_fn=lambda: mb.exp(x=x, name="then_exp"),
                      _false_fn=lambda: mb.relu(x=x, name="else_relu"), name="branch")
        fn.set_outputs([mb.add(x=out, y=1.0, name="after")])
    prog.add_function("main", fn)
    g = to_networkx(prog, placement=False)
    assert g.nodes["then_exp"]["block"] == "branch" and g.nodes["after"]["block"] is None
    assert g.has_edge("x", "then_exp")                       # outer value used inside
    outs = [d for _, _, d in g.in_edges("branch", data=True) if d["param"].startswith("block_output")]
    assert {d["var"] for d in outs} == {"then_exp", "else_relu"}
    assert g.has_edge("branch", "after")


def test_unknown_function_is_a_one_line_error():
    with pytest.raises(ModelError, match="no function 'decoder'"):
        to_networkx(_rms(), function="decoder")


def test_ranges_through_a_cond_are_the_hull_of_both_branches():
    from milguard.analysis.ranges import propagate

    prog = Program()
    with Function({"x": mb.placeholder(shape=(3,), dtype=types.fp32),
                   "p": mb.placeholder(shape=(1,), dtype=types.bool)}) as fn:
        x = fn.inputs["x"]
        out = mb.cond(pred=mb.squeeze(x=fn.inputs["p"], name="pred"),
                      _true_fn=lambda: mb.exp(x=x, name="then_exp"),
                      _false_fn=lambda: mb.relu(x=x, name="else_relu"), name="branch")
        fn.set_outputs([out])
    prog.add_function("main", fn)
    r = propagate(prog, {"x": (-1.0, 1.0)})["branch"]
    assert r.lo == 0.0 and r.hi == pytest.approx(np.e, rel=1e-5) and not r.may_nan
