"""Row-norm bounds: attention logits after a LayerNorm stay bounded by Cauchy-Schwarz."""
from __future__ import annotations

import numpy as np
import pytest

from milguard.analysis.interval import Interval
from milguard.analysis.norms import spectral
from milguard.analysis.ranges import propagate
from milguard.executor import run
from milguard.mil import Function, Program, mb, types

S, D, H = 8, 64, 4


def _attention(k_transposed_by_op: bool) -> Program:
    rng = np.random.default_rng(0)
    w = [(rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32) for _ in range(2)]
    prog = Program()
    with Function({"x": mb.placeholder(shape=(1, S, D), dtype=types.fp32)}) as fn:
        h = mb.layer_norm(x=fn.inputs["x"], axes=[-1], gamma=np.full(D, 2.0, np.float32),
                          beta=np.zeros(D, np.float32), epsilon=np.float32(1e-5), name="ln")
        q = mb.transpose(x=mb.reshape(x=mb.linear(x=h, weight=w[0], name="q"), shape=[1, S, H, D // H]),
                         perm=[0, 2, 1, 3], name="q_heads")
        k = mb.reshape(x=mb.linear(x=h, weight=w[1], name="k"), shape=[1, S, H, D // H], name="k_split")
        if k_transposed_by_op:
            kt = mb.transpose(x=k, perm=[0, 2, 3, 1], name="k_t")           # (1, H, D/H, S)
            logits = mb.matmul(x=q, y=kt, name="logits")
        else:
            kh = mb.transpose(x=k, perm=[0, 2, 1, 3], name="k_heads")
            logits = mb.matmul(x=q, y=kh, transpose_y=True, name="logits")
        fn.set_outputs([mb.softmax(x=logits, axis=-1, name="probs")])
    prog.add_function("main", fn)
    return prog


@pytest.mark.parametrize("k_transposed_by_op", [False, True])
def test_logits_bounded_by_the_product_of_row_norms(k_transposed_by_op):
    prog = _attention(k_transposed_by_op)
    plain = propagate(prog, {"x": (-100.0, 100.0)}, norms=False)
    tight = propagate(prog, {"x": (-100.0, 100.0)})
    w = [op for op in prog.functions["main"].operations if op.op_type == "linear"]
    sq, sk = (spectral(np.asarray(op.weight.val))[0] for op in w)
    expected = (2.0 * np.sqrt(D)) ** 2 * sq * sk            # N(ln) = |gamma|·sqrt(D)
    assert tight["logits"].maxabs <= expected * 1.01
    assert tight["logits"].maxabs < plain["logits"].maxabs / 2
    x = np.random.default_rng(1).uniform(-100, 100, (1, S, D)).astype(np.float32)
    trace = run(prog, {"x": x}, trace=True)
    for name in ("ln", "q", "q_heads", "logits", "probs"):
        assert Interval.of(trace[name]).subset_of(tight[name]), name


def test_norms_are_recorded_only_for_finite_vars():
    prog = _attention(False)
    rm = propagate(prog, {"x": (-1.0, 1.0)})
    assert rm.row_norm("ln") == pytest.approx(2.0 * np.sqrt(D), rel=1e-3)
    assert rm.row_norm("probs") <= 1.01
    assert rm.row_norm("logits") is not None and rm.row_norm("x") is None


def _layer_norm_then_relus(length: int) -> Program:
    """layer_norm, ``length`` relus (each keeps the row norm), then q·kᵀ of the result with itself."""
    prog = Program()
    with Function({"x": mb.placeholder(shape=(1, S, D), dtype=types.fp32)}) as fn:
        v = mb.layer_norm(x=fn.inputs["x"], axes=[-1], epsilon=np.float32(1e-5), name="ln")
        for _ in range(length):
            v = mb.relu(x=v)
        fn.set_outputs([mb.matmul(x=v, y=v, transpose_y=True, name="logits")])
    prog.add_function("main", fn)
    return prog


def test_row_norm_bound_does_not_depend_on_the_depth_of_the_chain_it_reads():
    """The lazy bounds are evaluated without recursion: behind 3,000 relus the q·kᵀ bound is the one
    found behind 5 (the relus' rounding slack aside), not the plain interval's."""
    shallow, deep = (propagate(_layer_norm_then_relus(n), {"x": (-100.0, 100.0)}) for n in (5, 3000))
    assert shallow["logits"].maxabs == pytest.approx(D * 1.0, rel=0.02)        # N(ln)² = (sqrt(D))²
    assert deep["logits"].maxabs <= shallow["logits"].maxabs * 1.1
    plain = propagate(_layer_norm_then_relus(5), {"x": (-100.0, 100.0)}, norms=False)
    assert deep["logits"].maxabs < plain["logits"].maxabs / 4
