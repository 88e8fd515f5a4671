"""Soundness of static range propagation against the reference executor, on random programs.

Hypothesis draws a small fp32 (and fp16) DAG (elementwise, reductions, matmul/linear, softmax, layer_norm)
over an (R, C) input, an input range, and inputs inside that range; every var the executor
computes must lie inside its propagated interval (NaN only where the interval admits NaN).

Magnitudes reach fp16's range: constants and input bounds are drawn up to 6e4 (squares, exps and
products overflow fp16 at once), and shapes up to (8, 256) make reductions of moderate values
overflow an fp16 running sum (256 * 256 = 65536 > 65504), so the property is exercised where the
analysis has to say "inf" and "NaN", not only on tame values.
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
from milguard.fp16 import MAX as FP16_MAX
from milguard.mil import Function, Program, mb, types
from traces import check_within

SHAPES = [(4, 4), (2, 64), (8, 256), (3, 6)]
SCALES = [1.0, 16.0, 300.0, 6e4]          # tame, fp16-safe squares, squares overflow, near fp16's max
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


def _magnitude(data) -> float:
    return data.draw(st.sampled_from(SCALES))


DT = {"fp32": (np.float32, types.fp32), "fp16": (np.float16, types.fp16)}


def _const(data, shape, dt=np.float32):
    """A constant of the drawn magnitude (uniform in [-scale, scale], seeded by the draw)."""
    scale = _magnitude(data)
    seed = data.draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).uniform(-scale, scale, size=shape).astype(np.float32).astype(dt)


def _build(data, steps: int, shape: tuple[int, int], dtype: str = "fp32") -> Program:
    """A random program typed ``dtype``; every var is ``shape`` or broadcastable to it."""
    npt, mlt = DT[dtype]
    rows, cols = shape
    prog = Program()
    with Function({"x": mb.placeholder(shape=shape, dtype=mlt)}) as fn:
        full = [fn.inputs["x"]]
        pool = [fn.inputs["x"]]
        for i in range(steps):
            kind = data.draw(st.sampled_from(KINDS))
            a = data.draw(st.sampled_from(pool))
            sq = data.draw(st.sampled_from(full))
            name = f"op{i}_{kind}"
            if kind in UNARY:
                out = getattr(mb, kind)(x=a, name=name)
            elif kind in BINARY:
                b = data.draw(st.sampled_from(pool + [None]))
                b = _const(data, (1, cols), npt) if b is None else b
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
                out = mb.layer_norm(x=sq, axes=[-1], gamma=_const(data, (cols,), npt),
                                    beta=_const(data, (cols,), npt), epsilon=npt(1e-5), name=name)
            elif kind == "matmul_const":
                out = mb.matmul(x=sq, y=_const(data, (cols, cols), npt), name=name)
            elif kind == "matmul_var":          # (R, C) @ (R, C)^T @ (R, C): two data-dependent products
                scores = mb.matmul(x=sq, y=data.draw(st.sampled_from(full)), transpose_y=True, name=name + "_qk")
                out = mb.matmul(x=scores, y=data.draw(st.sampled_from(full)), name=name)
            elif kind == "linear":
                out = mb.linear(x=sq, weight=_const(data, (cols, cols), npt), bias=_const(data, (cols,), npt),
                                name=name)
            elif kind == "attention":
                scores = mb.matmul(x=sq, y=data.draw(st.sampled_from(full)), transpose_y=True, name=name + "_qk")
                probs = mb.softmax(x=scores, axis=-1, name=name + "_probs")
                out = mb.matmul(x=probs, y=data.draw(st.sampled_from(full)), name=name)
            elif kind == "reshape":             # split the last axis, then merge it back
                split = mb.reshape(x=sq, shape=[rows, 2, cols // 2], name=name + "_split")
                out = mb.reshape(x=mb.relu(x=split, name=name + "_relu"), shape=[rows, cols], name=name)
            elif kind == "concat_slice":
                other = a if tuple(a.shape) == shape else sq
                cat = mb.concat(values=[sq, other], axis=0, name=name + "_cat")
                out = mb.slice_by_size(x=cat, begin=[rows // 2, 0], size=[rows, cols], name=name)
            else:
                t = mb.transpose(x=sq, perm=[1, 0], name=name + "_t")
                out = mb.transpose(x=mb.sqrt(x=t, name=name + "_sqrt"), perm=[1, 0], name=name)
            pool.append(out)
            if tuple(out.shape) == shape:
                full.append(out)
        fn.set_outputs([full[-1]])
    prog.add_function("main", fn)
    return prog


def _input(data, shape, np_dtype) -> tuple[np.ndarray, float, float]:
    """Inputs spanning a drawn [lo, hi] inside fp16's finite range, both ends attained."""
    scale = _magnitude(data)
    lo = data.draw(_floats(-scale, scale))
    hi = min(lo + data.draw(_floats(0, scale)), 6e4)
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)
    x.flat[0], x.flat[-1] = np.float32(lo), np.float32(hi)
    x = np.clip(x, np.float32(lo), np.float32(hi)).astype(np_dtype)
    return x, float(x.min()), float(x.max())


@pytest.mark.parametrize("dtype,accumulate", [("fp32", "fp32"), ("fp16", "fp32"), ("fp16", "fp16")])
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_executed_value_lies_in_its_interval(dtype, accumulate, data):
    shape = data.draw(st.sampled_from(SHAPES))
    steps = data.draw(st.integers(1, 6))
    prog = _build(data, steps, shape, dtype)
    x, lo, hi = _input(data, shape, DT[dtype][0])
    ranges = propagate(prog, {"x": (lo, hi)}, accumulate=accumulate)
    with np.errstate(all="ignore"):
        trace = run(prog, {"x": x}, trace=True, accumulate=accumulate)
    assert check_within(ranges, trace) >= steps


def test_the_drawn_programs_reach_fp16_overflow():
    """The property above is only as strong as its draws: these reach inf in an fp16 reduction."""
    prog = Program()
    with Function({"x": mb.placeholder(shape=(8, 256), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.reduce_sum(x=fn.inputs["x"], axes=[1], keep_dims=True, name="s")])
    prog.add_function("main", fn)
    x = np.full((8, 256), 300.0, np.float16)
    with np.errstate(all="ignore"):
        out = run(prog, {"x": x}, accumulate="fp16")["s"]
    ranges = propagate(prog, {"x": (300.0, 300.0)}, accumulate="fp16")
    assert np.isinf(out).all() and 256 * 300.0 > FP16_MAX
    assert Interval.of(out).subset_of(ranges["s"])


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
