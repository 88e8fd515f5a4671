"""Every variant of every pattern family: a program that matches, and near misses with their reason."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import programs as P
from milguard import find_patterns
from milguard.families import explain, member
from milguard.mil import mb
from milguard.pattern import Tracer

SQUARES = ("pow", "square", "mul")
INV_STD = ("rsqrt", "sqrt_div", "pow_-0.5")
LN_TAILS = ("affine", "affine_shift_first", "scale", "shift", "no_affine")
# op count of each part: mean, sub, square, mean, add, inv-std op + its mul/div; tails add 0-2 ops
LN_CORE_OPS = 7
TAIL_OPS = {"affine": 2, "affine_shift_first": 2, "batch_norm": 1, "scale": 1, "shift": 1, "no_affine": 0}


def _only(prog, kind=None):
    matches = find_patterns(prog)
    assert len(matches) == 1, matches
    match = matches[0]
    assert kind is None or match.kind == kind
    # the relu before and the tanh after never belong to a match
    assert {op.op_type for op in match.ops}.isdisjoint({"relu", "tanh"})
    assert [v.op.op_type for v in match.entries] == ["relu"]
    assert [c.op_type for v in match.exits for c in v.child_ops] == ["tanh"]
    return match


def _reason(prog, kind):
    assert [m for m in find_patterns(prog) if m.kind == kind] == []
    return explain(prog, kind)


# ---------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize("sq,inv,tail", itertools.product(SQUARES, INV_STD, LN_TAILS))
def test_layer_norm_last_axis(sq, inv, tail):
    prog = P.program(P.RANK3, lambda x: P.layer_norm(x, sq=sq, inv=inv, tail=tail))
    m = _only(prog, "layer_norm")
    assert m.variant == f"decomposed/{tail}/{inv}/{sq}/last_axis"
    assert len(m.ops) == LN_CORE_OPS + TAIL_OPS[tail]
    assert float(m.bindings["eps"].val) == pytest.approx(1e-5)


@pytest.mark.parametrize("sq,inv,tail", itertools.product(SQUARES, INV_STD, ("affine", "batch_norm", "no_affine")))
def test_layer_norm_channel_axis(sq, inv, tail):
    prog = P.program(P.RANK4, lambda x: P.layer_norm(x, sq=sq, inv=inv, tail=tail, axes=(1,),
                                                      gamma=P.GAMMA4, beta=P.BETA4))
    m = _only(prog, "layer_norm")
    assert m.variant == f"decomposed/{tail}/{inv}/{sq}/channel_axis"
    assert len(m.ops) == LN_CORE_OPS + TAIL_OPS[tail]


def test_layer_norm_native_is_a_member():
    prog = P.program(P.RANK3, lambda x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5))
    m = _only(prog, "layer_norm")
    assert (m.variant, [op.op_type for op in m.ops], member(m).native) == ("native", ["layer_norm"], True)


@pytest.mark.parametrize("kwargs,reason", [
    (dict(axes=(-1,), axes2=(1,)), "'axes' is"),                       # the two means disagree
    (dict(exponent=3.0), "exponent must be exactly 2, got"),
    (dict(eps=0.5), "eps must be a small positive constant (0 < eps <= 1e-2), got"),
    (dict(eps=-1e-5), "eps must be a small positive constant"),
    (dict(axes=(0,)), "reduces over axes [0] of a rank-3 tensor; expected the last axis or the channel axis 1"),
    (dict(axes=(-2, -1)), "reduces over axes [-2, -1] of a rank-3 tensor"),
])
def test_layer_norm_near_misses(kwargs, reason):
    prog = P.program(P.RANK3, lambda x: P.layer_norm(x, **kwargs))
    assert reason in _reason(prog, "layer_norm")


def test_layer_norm_eps_not_constant():
    def body(x, e):
        mean = mb.reduce_mean(x=x, axes=[-1], keep_dims=True)
        d = mb.sub(x=x, y=mean)
        var = mb.reduce_mean(x=mb.square(x=d), axes=[-1], keep_dims=True)
        eps = mb.reduce_min(x=e, axes=[-1], keep_dims=True)
        return mb.mul(x=d, y=mb.rsqrt(x=mb.add(x=var, y=eps)))
    prog = P.program(P.RANK3, body, inputs=2)
    assert "eps must be a small positive constant (0 < eps <= 1e-2), got the computed value" in \
        _reason(prog, "layer_norm")


def test_layer_norm_two_different_centerings_do_not_match():
    """The square must be of the same (x - mean) as the numerator: one sub op, not two."""
    def body(x):
        mean = mb.reduce_mean(x=x, axes=[-1], keep_dims=True)
        d1, d2 = mb.sub(x=x, y=mean), mb.sub(x=x, y=mean)
        var = mb.reduce_mean(x=mb.square(x=d1), axes=[-1], keep_dims=True)
        return mb.mul(x=d2, y=mb.rsqrt(x=mb.add(x=var, y=1e-5)))
    assert "should be the same sub op" in _reason(P.program(P.RANK3, body), "layer_norm")


def test_layer_norm_keep_dims_false_does_not_match():
    def body(x):
        mean = mb.reduce_mean(x=x, axes=[-1], keep_dims=False)
        d = mb.sub(x=x, y=mb.expand_dims(x=mean, axes=[-1]))
        var = mb.reduce_mean(x=mb.square(x=d), axes=[-1], keep_dims=True)
        return mb.mul(x=d, y=mb.rsqrt(x=mb.add(x=var, y=1e-5)))
    assert "expected reduce_mean, got expand_dims" in _reason(P.program(P.RANK3, body), "layer_norm")


# ---------------------------------------------------------------- RMSNorm
@pytest.mark.parametrize("sq,inv,weight,casts", itertools.product(
    SQUARES, INV_STD, ("weight", "gemma", "no_weight"), (False, True)))
def test_rms_norm(sq, inv, weight, casts):
    prog = P.program(P.RANK3, lambda x, w: P.rms_norm(x, sq=sq, inv=inv, weight=weight, casts=casts, w=w),
                     inputs=2)
    matches = find_patterns(prog)
    assert [m.kind for m in matches] == ["rms_norm"]
    m = matches[0]
    assert m.variant == f"decomposed/{weight}/{inv}/{sq}/last_axis"
    n_ops = 5 + {"weight": 1, "gemma": 2, "no_weight": 0}[weight] + (2 if casts else 0)
    assert len(m.ops) == n_ops, [op.op_type for op in m.ops]
    if weight == "gemma":       # the (1 + w) add is in the match, its input w is an entry
        assert "add" in [op.op_type for op in m.ops]


def test_rms_norm_max_abs_rescaled():
    m = _only(P.program(P.RANK3, P.rms_norm_max_abs), "rms_norm")
    assert m.variant == "max_abs_rescaled/weight/square/last_axis"
    assert [op.op_type for op in m.ops] == ["abs", "reduce_max", "real_div", "square", "reduce_mean",
                                            "add", "sqrt", "mul", "real_div", "mul"]
    assert [op.op_type for op in m.named(member(m).core)] == ["square", "reduce_mean", "add", "sqrt", "mul"]


def test_rms_norm_max_abs_different_axes_is_a_near_miss():
    prog = P.program(P.RANK3, lambda x: P.rms_norm_max_abs(x, axes_max=(1,)))
    tracer = Tracer()
    assert [m.rule.name for m in find_patterns(prog, tracer=tracer)] != ["rms_norm.max_abs_rescaled"]
    assert "'axes' is" in tracer.reason("rms_norm.max_abs_rescaled")


@pytest.mark.parametrize("kwargs,reason", [
    (dict(exponent=3.0), "exponent must be exactly 2, got"),
    (dict(eps=2.0), "eps must be a small positive constant"),
])
def test_rms_norm_near_misses(kwargs, reason):
    assert reason in _reason(P.program(P.RANK3, lambda x: P.rms_norm(x, **kwargs)), "rms_norm")


def test_rms_norm_square_of_another_tensor_is_a_near_miss():
    prog = P.program(P.RANK3, lambda x, y: P.rms_norm(x, other=y), inputs=2)
    assert "'x' is" in _reason(prog, "rms_norm") and "in another" in _reason(prog, "rms_norm")


# ---------------------------------------------------------------- softmax
@pytest.mark.parametrize("form,variant,n_ops", [
    ("max_shifted", "decomposed/max_shifted", 5),
    ("naive", "decomposed/naive", 3),
    ("log_softmax", "log_softmax", 6),
    ("log_softmax_naive", "log_softmax_naive", 4),
    ("log_of_softmax", "log_of_softmax", 2),
    ("native", "native", 1),
    ("native_log_sum_exp", "native_log_sum_exp", 1),
])
def test_softmax(form, variant, n_ops):
    m = _only(P.program(P.RANK3, lambda x: P.softmax(x, form=form)), "softmax")
    assert (m.variant, len(m.ops)) == (variant, n_ops)
    assert member(m).native == form.startswith("native")


@pytest.mark.parametrize("form,naive", [("max_shifted", "decomposed/naive"),
                                        ("log_softmax", "log_softmax_naive")])
def test_softmax_max_and_sum_over_other_axes_is_not_max_shifted(form, naive):
    """max over axis -1, sum over axis 1: not a max-shifted softmax. What remains is a naive
    softmax over axis 1 of the shifted tensor, whose exp can overflow: that is what matches."""
    prog = P.program(P.RANK3, lambda x: P.softmax(x, form=form, axes=(-1,), axes_sum=(1,)))
    (match,) = find_patterns(prog)
    assert match.variant == naive
    assert "reduce_max" not in [op.op_type for op in match.ops]
    assert match.entries[0].op.op_type == "sub"


@pytest.mark.parametrize("form", ["naive", "log_softmax_naive"])
def test_softmax_sum_of_another_tensor_is_a_near_miss(form):
    prog = P.program(P.RANK3, lambda x, y: P.softmax(x, form=form, other=y), inputs=2)
    reason = _reason(prog, "softmax")
    assert ("'x' is" in reason and "in another" in reason) or "should be the same exp op" in reason


def test_matches_are_returned_in_program_order_and_never_overlap():
    def body(x):
        a = P.layer_norm(x)
        b = P.softmax(mb.relu(x=a))
        return P.rms_norm(mb.relu(x=b))
    matches = find_patterns(P.program(P.RANK3, body))
    assert [m.kind for m in matches] == ["layer_norm", "softmax", "rms_norm"]
    seen = [op for m in matches for op in m.ops]
    assert len(seen) == len(set(seen))


def test_kinds_filter():
    prog = P.program(P.RANK3, lambda x: P.softmax(P.layer_norm(x)))
    assert [m.kind for m in find_patterns(prog, kinds=["softmax"])] == ["softmax"]
    assert np.all([m.function == "main" for m in find_patterns(prog)])


def _match_and_reason(prog, rule):
    tracer = Tracer()
    matches = find_patterns(prog, tracer=tracer)
    return matches, tracer.misses[rule].reason


def test_layer_norm_affine_with_a_computed_gamma_is_left_out_of_the_match():
    prog = P.program(P.RANK3, lambda x, g: mb.add(x=mb.mul(x=P.layer_norm(x, tail="no_affine"), y=g), y=P.BETA3),
                     inputs=2)
    (match,), reason = _match_and_reason(prog, "layer_norm.decomposed")
    assert match.variant.startswith("decomposed/no_affine/")
    assert "'gamma' must be a constant, got the computed value" in reason


def test_rms_norm_gemma_weight_needs_one_plus_w():
    prog = P.program(P.RANK3, lambda x, w: mb.mul(x=P.rms_norm(x, weight="no_weight"), y=mb.add(x=2.0, y=w)),
                     inputs=2)
    (match,), reason = _match_and_reason(prog, "rms_norm.decomposed")
    assert match.variant.startswith("decomposed/no_weight/")
    assert "expected the constant 1.0, got" in reason


def test_log_of_softmax_needs_the_log_right_on_the_softmax():
    prog = P.program(P.RANK3, lambda x: mb.log(x=mb.relu(x=mb.softmax(x=x, axis=-1))))
    (match,), reason = _match_and_reason(prog, "softmax.log_of_softmax")
    assert match.variant == "native"
    assert reason == f"expected softmax, got relu '{match.root.outputs[0].child_ops[0].name}'"


def test_native_layer_norm_near_miss_is_an_instance_norm():
    prog = P.program(P.RANK4, lambda x: mb.instance_norm(x=x, epsilon=1e-5))
    assert find_patterns(prog) == []
