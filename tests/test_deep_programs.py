"""Programs deeper than Python's recursion limit: nothing in milguard recurses along the graph.

The chain (``programs.deep_chain``) has about 3,000 ops one after another; a walk that spends a
Python frame per op (``copy.deepcopy`` of the program did, once several frames per op) fails on it
with RecursionError, as ``milguard fix`` did on a 2-layer HF LLaMA.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import milguard
from milguard.actions.repair import METADATA_KEY
from milguard.analysis import propagate
from milguard.cli import main
from milguard.mil import Loaded, iter_ops, save
from programs import deep_chain

X = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16)).astype(np.float16)


def test_the_chain_is_deeper_than_the_recursion_limit(deep_program):
    assert sum(1 for _ in iter_ops(deep_program.functions["main"])) > 3 * sys.getrecursionlimit()


def test_find_patterns_on_a_deep_program(deep_program):
    kinds = sorted(m.kind for m in milguard.find_patterns(deep_program))
    assert kinds == ["rms_norm", "softmax"]


def test_propagate_bounds_every_var_of_a_deep_program(deep_program):
    rm = propagate(deep_program)
    assert not rm.unknown_ops
    assert rm["probs"].lo >= 0 and rm["probs"].hi <= 1.001
    assert rm.row_norm("probs") is not None


def test_run_and_graph_of_a_deep_program(deep_program):
    out = milguard.run(deep_program, {"x": X})["probs"]
    assert out.shape == (2, 3, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out.astype(np.float32).sum(-1), 1.0, atol=2e-3)
    g = milguard.to_networkx(deep_program)
    assert g.number_of_nodes() == sum(1 for _ in iter_ops(deep_program.functions["main"])) + 1


def test_keep_fp32_on_a_program_deeper_than_deepcopy_reaches():
    prog = deep_chain(600)               # copy.deepcopy already fails at a few hundred chained ops
    fixed = milguard.keep_fp32(prog)
    assert isinstance(json.loads(fixed.user_defined_metadata[METADATA_KEY]), list)
    out = milguard.run(fixed, {"x": X})["probs"]
    np.testing.assert_allclose(out.astype(np.float32), milguard.run(prog, {"x": X})["probs"].astype(np.float32),
                               atol=2e-3)


@pytest.mark.slow
def test_audit_and_keep_fp32_on_a_deep_program(deep_program):
    report = milguard.audit(deep_program, calibration={"x": X}).to_dict()
    assert {p["kind"] for p in report["patterns"]} >= {"rms_norm", "softmax"}
    ops = lambda: [(op.name, op.op_type, [str(v.sym_type) for v in op.outputs])  # noqa: E731
                   for op in iter_ops(deep_program.functions["main"])]
    before = ops()
    fixed = milguard.keep_fp32(deep_program)
    assert ops() == before                                                 # the input is untouched
    assert np.isfinite(milguard.run(fixed, {"x": X})["probs"]).all()


@pytest.mark.slow
def test_cli_fix_of_a_deep_package(tmp_path, capsys):
    model = tmp_path / "deep.mlpackage"
    save(Loaded(program=deep_chain(600)), path=model)
    np.savez(tmp_path / "x.npz", x=X)
    code = main(["fix", str(model), "-o", str(tmp_path / "fixed.mlpackage"), "--calibration", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "fixed.mlpackage").is_dir()
