"""Property tests: conv, conv_transpose and pooling against torch over random geometries."""
from __future__ import annotations

import coremltools as ct
import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from milguard.executor import run
from milguard.mil import Function, Program, mb, types


def _program(build, shape):
    prog = Program()
    with Function({"x": mb.placeholder(shape=shape, dtype=types.fp32)}, opset_version=ct.target.iOS17) as fn:
        fn.set_outputs([build(fn.inputs["x"])])
        prog.add_function("main", fn)
    return prog


def _run(prog, x):
    return list(run(prog, {"x": x}).values())[0]


geometry = st.fixed_dictionaries({
    "groups": st.sampled_from([1, 2]), "cin_per_group": st.integers(1, 3), "cout_per_group": st.integers(1, 3),
    "kh": st.integers(1, 4), "kw": st.integers(1, 4), "sh": st.integers(1, 3), "sw": st.integers(1, 3),
    "dh": st.integers(1, 2), "dw": st.integers(1, 2), "pads": st.lists(st.integers(0, 2), min_size=4, max_size=4),
    "h": st.integers(6, 10), "w": st.integers(6, 10),
})


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(g=geometry)
def test_conv2d_matches_torch(g):
    rng = np.random.default_rng(0)
    cin, cout = g["groups"] * g["cin_per_group"], g["groups"] * g["cout_per_group"]
    x = rng.normal(size=(2, cin, g["h"], g["w"])).astype(np.float32)
    w = rng.normal(size=(cout, g["cin_per_group"], g["kh"], g["kw"])).astype(np.float32)
    top, bottom, left, right = g["pads"]
    assume(g["h"] + top + bottom >= (g["kh"] - 1) * g["dh"] + 1 and g["w"] + left + right >= (g["kw"] - 1) * g["dw"] + 1)
    prog = _program(lambda v: mb.conv(x=v, weight=w, strides=[g["sh"], g["sw"]], dilations=[g["dh"], g["dw"]],
                                      pad_type="custom", pad=[top, bottom, left, right], groups=g["groups"]), x.shape)
    want = F.conv2d(F.pad(torch.from_numpy(x), (left, right, top, bottom)), torch.from_numpy(w),
                    stride=(g["sh"], g["sw"]), dilation=(g["dh"], g["dw"]), groups=g["groups"]).numpy()
    np.testing.assert_allclose(_run(prog, x), want, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(g=geometry)
def test_conv_transpose2d_matches_torch(g):
    rng = np.random.default_rng(1)
    cin, cout = g["groups"] * g["cin_per_group"], g["groups"] * g["cout_per_group"]
    x = rng.normal(size=(1, cin, g["h"] // 2, g["w"] // 2)).astype(np.float32)
    w = rng.normal(size=(cin, g["cout_per_group"], g["kh"], g["kw"])).astype(np.float32)
    ph, pw = min(g["pads"][0], (g["kh"] - 1) * g["dh"]), min(g["pads"][2], (g["kw"] - 1) * g["dw"])
    prog = _program(lambda v: mb.conv_transpose(x=v, weight=w, strides=[g["sh"], g["sw"]], dilations=[g["dh"], g["dw"]],
                                                pad_type="custom", pad=[ph, ph, pw, pw], groups=g["groups"]), x.shape)
    want = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=(g["sh"], g["sw"]), padding=(ph, pw),
                              dilation=(g["dh"], g["dw"]), groups=g["groups"]).numpy()
    np.testing.assert_allclose(_run(prog, x), want, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(), h=st.integers(5, 9),
       kind=st.sampled_from(["max", "avg_incl", "avg_excl"]))
def test_pool2d_matches_torch(k, s, p, ceil, h, kind):
    p = min(p, k // 2)                                   # torch: padding at most half the kernel
    s = min(s, k) if ceil else s    # kernel < stride with ceil_mode: coremltools declares one more window than torch
    x = np.random.default_rng(2).normal(size=(1, 2, h, h + 1)).astype(np.float32)
    common = dict(kernel_sizes=[k, k], strides=[s, s], pad_type="custom", pad=[p, p, p, p], ceil_mode=ceil)
    t = torch.from_numpy(x)
    if kind == "max":
        prog = _program(lambda v: mb.max_pool(x=v, **common), x.shape)
        want = F.max_pool2d(t, k, s, p, ceil_mode=ceil).numpy()
    else:
        excl = kind == "avg_excl"
        prog = _program(lambda v: mb.avg_pool(x=v, exclude_padding_from_average=excl, **common), x.shape)
        want = F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=not excl).numpy()
    got = _run(prog, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
