"""Soundness of static range propagation against the reference executor, on random programs.

Hypothesis draws a small fp32 (and fp16) DAG (elementwise, reductions, matmul/linear, softmax, layer_norm)
over a (4, 4) input, an input range, and inputs inside that range; every var the executor
computes must lie inside its propagated interval (NaN only where the interval admits NaN).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milguard.analysis.interval import Interval
from milguard.analysis.ranges import propagate
from milguard.analysis.transfer import TRANSFER
from milguard.executor import SUPPORTED_OPS, run
from milguard.mil import Function, Program, mb, types

N = 4
UNARY = ["exp", "abs", "square", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu", "silu",
         "log", "sin", "softplus", "erf", "inverse", "floor", "sign", "relu6"]
BINARY = ["add", "sub", "mul", "real_div", "maximum", "minimum"]
REDUCE = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_sum_square",
          "reduce_l2_norm", "reduce_log_sum_exp", "reduce_l1_norm"]
OTHER = ["pow", "clip", "softmax", "layer_norm", "matmul_const", "matmul_var", "linear",
         "concat_slice", "transpose", "attention", "reshape"]
KINDS = [k for k in UNARY + BINARY + REDUCE if k in SUPPORTED_OPS] + OTHER   # what the executor runs


def _floats(lo=-4.0, hi=4.0):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32)


DT = {"fp32": (np.float32, types.fp32), "fp16": (np.float16, types.fp16)}


def _const(data, shape, dt=np.float32):
    return np.asarray(data.draw(st.lists(_floats(), min_size=int(np.prod(shape)),
                                         max_size=int(np.prod(shape)))), np.float32).reshape(shape).astype(dt)


def _build(data, steps: int, dtype: str = "fp32") -> Program:
    """A random program typed ``dtype``; every var is (N, N) or broadcastable to it."""
    npt, mlt = DT[dtype]
    prog = Program()
    with Function({"x": mb.placeholder(shape=(N, N), dtype=mlt)}) as fn:
        full = [fn.inputs["x"]]
        pool = [fn.inputs["x"]]
        for i in range(steps):
            kind = data.draw(st.sampled_from(KINDS))
            a = data.draw(st.sampled_from(pool))
            square = [v for v in pool if tuple(v.shape) == (N, N)]
            sq = data.draw(st.sampled_from(square))
            name = f"op{i}_{kind}"
            if kind in UNARY:
                out = getattr(mb, kind)(x=a, name=name)
            elif kind in BINARY:
                b = data.draw(st.sampled_from(pool + [None]))
                b = _const(data, (1, N), npt) if b is None else b
                out = getattr(mb, kind)(x=a, y=b, name=name)
            elif kind in REDUCE:
                axis = data.draw(st.sampled_from([0, 1]))
                out = getattr(mb, kind)(x=sq, axes=[axis], keep_dims=True, name=name)
            elif kind == "pow":
                p = data.draw(st.sampled_from([2.0, 3.0, 0.5, -1.0, -0.5, 1.5]))
                out = mb.pow(x=a, y=npt(p), name=name)
            elif kind == "clip":
                lo = data.draw(_floats(-3, 0))
                out = mb.clip(x=a, alpha=npt(lo), beta=npt(lo + 2.0), name=name)
            elif kind == "softmax":
                out = mb.softmax(x=sq, axis=data.draw(st.sampled_from([0, -1])), name=name)
            elif kind == "layer_norm":
                out = mb.layer_norm(x=sq, axes=[-1], gamma=_const(data, (N,), npt), beta=_const(data, (N,), npt),
                                    epsilon=npt(1e-5), name=name)
            elif kind == "matmul_const":
                out = mb.matmul(x=sq, y=_const(data, (N, N), npt), name=name)
            elif kind == "matmul_var":
                out = mb.matmul(x=sq, y=data.draw(st.sampled_from(square)), transpose_y=True, name=name)
            elif kind == "linear":
                out = mb.linear(x=sq, weight=_const(data, (N, N), npt), bias=_const(data, (N,), npt), name=name)
            elif kind == "attention":
                probs = mb.softmax(x=sq, axis=-1, name=name + "_probs")
                out = mb.matmul(x=probs, y=data.draw(st.sampled_from(square)), name=name)
            elif kind == "reshape":             # split the last axis, then merge it back
                split = mb.reshape(x=sq, shape=[N, 2, N // 2], name=name + "_split")
                out = mb.reshape(x=mb.relu(x=split, name=name + "_relu"), shape=[N, N], name=name)
            elif kind == "concat_slice":
                cat = mb.concat(values=[sq, a if tuple(a.shape) == (N, N) else sq], axis=0, name=name + "_cat")
                out = mb.slice_by_size(x=cat, begin=[N // 2, 0], size=[N, N], name=name)
            else:
                out = mb.transpose(x=sq, perm=[1, 0], name=name)
            pool.append(out)
            if tuple(out.shape) == (N, N):
                full.append(out)
        fn.set_outputs([full[-1]])
    prog.add_function("main", fn)
    return prog


@pytest.mark.parametrize("dtype,accumulate", [("fp32", "fp32"), ("fp16", "fp32"), ("fp16", "fp16")])
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_executed_value_lies_in_its_interval(dtype, accumulate, data):
    steps = data.draw(st.integers(1, 6))
    prog = _build(data, steps, dtype)
    lo = data.draw(_floats(-8, 8))
    hi = lo + data.draw(_floats(0, 8))
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).uniform(lo, hi, size=(N, N)).astype(np.float32)
    x.flat[0], x.flat[-1] = np.float32(lo), np.float32(hi)
    x = np.clip(x, np.float32(lo), np.float32(hi)).astype(DT[dtype][0])
    ranges = propagate(prog, {"x": (float(x.min()), float(x.max()))}, accumulate=accumulate)
    with np.errstate(all="ignore"):
        trace = run(prog, {"x": x}, trace=True, accumulate=accumulate)
    checked = 0
    for name, value in trace.items():
        if name not in ranges or np.asarray(value).dtype.kind != "f":
            continue
        got = Interval.of(value)
        assert got.subset_of(ranges[name]), f"{name}: executed {got} outside {ranges[name]}"
        checked += 1
    assert checked >= steps


@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_fp16_rms_chain_is_sound_and_overflows_at_300(scale):
    """The fp16 typed path: propagation rounds to fp16 like the executor, inf included."""
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2, 64), dtype=types.fp16)}) as fn:
        x = fn.inputs["x"]
        p = mb.pow(x=x, y=np.float16(2.0), name="pow")
        m = mb.reduce_mean(x=p, axes=[-1], keep_dims=True, name="mean")
        r = mb.rsqrt(x=mb.add(x=m, y=np.float16(1e-5), name="add_eps"), name="rsqrt")
        fn.set_outputs([mb.mul(x=x, y=r, name="norm")])
    prog.add_function("main", fn)
    x = (np.random.default_rng(0).uniform(-1, 1, (2, 64)) * scale).astype(np.float16)
    ranges = propagate(prog, {"x": (-scale, scale)})
    with np.errstate(all="ignore"):
        trace = run(prog, {"x": x}, trace=True)
    for name in ("pow", "mean", "add_eps", "rsqrt", "norm"):
        assert Interval.of(trace[name]).subset_of(ranges[name]), name
    assert (ranges.wanted["pow"].hi > 65504) == (scale == 300.0)


def test_every_executor_op_has_a_transfer_function():
    assert sorted(set(SUPPORTED_OPS) - set(TRANSFER)) == []
