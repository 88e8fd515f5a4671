"""The families added with the remedies (GroupNorm, L2 norms, additive masks, attention) and the
rescaled forms the rewrites build: a program that matches each, and near misses with their reason."""
from __future__ import annotations

import numpy as np
import pytest
import coremltools as ct

import programs as P
from programs import rescaled
from milguard.families import explain, families, find_patterns, member
from milguard.mil import mb


def _only(prog, kind):
    matches = [m for m in find_patterns(prog) if m.kind == kind]
    assert len(matches) == 1, find_patterns(prog)
    return matches[0]


def _reason(prog, kind):
    assert [m for m in find_patterns(prog) if m.kind == kind] == []
    return explain(prog, kind)



def test_the_catalogue_read_from_the_sources_is_the_registry():
    from milguard.catalogue import catalogue
    assert [(e.name, e.title, e.summary) for e in catalogue()] == [
        (f.name, f.title, f.summary) for f in families().values()]


def test_every_module_in_passes_is_a_registered_family():
    import milguard.passes as library
    assert library.MODULES == ["group_norm", "l2_norm", "layer_norm", "mask", "rms_norm", "softmax"]
    assert list(families()) == library.MODULES
    for fam in families().values():
        assert all(m.rule.family == fam.name for m in fam.members)
        assert fam.summary and fam.title


# ---------------------------------------------------------------- GroupNorm
@pytest.mark.parametrize("inv,sq", [("sqrt_div", "square"), ("rsqrt", "pow"), ("pow_-0.5", "mul")])
def test_group_norm(inv, sq):
    m = _only(P.program(P.RANK4, lambda x: P.group_norm(x, inv=inv, sq=sq)), "group_norm")
    assert m.variant == f"decomposed/affine/{inv}/{sq}"
    assert [op.op_type for op in m.ops][:2] == ["reshape", "reduce_mean"]
    assert [op.op_type for op in m.ops][-3:] == ["reshape", "mul", "add"]
    assert float(m.bindings["eps"].val) == pytest.approx(1e-5)


@pytest.mark.parametrize("kwargs,reason", [
    (dict(axes=(2, 3)), "reduces over axes [2, 3] of a rank-5 tensor; expected every axis after the group axis"),
    (dict(restore=False), "the reshape after the norm does not restore the input's shape"),
])
def test_group_norm_near_misses(kwargs, reason):
    assert reason in _reason(P.program(P.RANK4, lambda x: P.group_norm(x, **kwargs)), "group_norm")


def test_group_norm_is_not_taken_for_a_layer_norm():
    prog = P.program(P.RANK4, P.group_norm)
    assert [m.kind for m in find_patterns(prog)] == ["group_norm"]


# ---------------------------------------------------------------- L2 norms
@pytest.mark.parametrize("keep_dims", [True, False])
def test_l2_reduce(keep_dims):
    m = _only(P.program(P.RANK3, lambda x: P.l2_reduce(x, keep_dims=keep_dims)), "l2_norm")
    assert (m.variant, [op.op_type for op in m.ops], member(m).native) == ("reduce", ["reduce_l2_norm"], True)


@pytest.mark.parametrize("tiled", [True, False])
def test_l2_normalize(tiled):
    m = _only(P.program(P.RANK3, lambda x: P.l2_normalize(x, tiled=tiled)), "l2_norm")
    assert m.variant == ("normalize/tiled" if tiled else "normalize")
    assert [op.op_type for op in m.ops] == ["reduce_l2_norm", "maximum", *(["tile"] if tiled else []), "real_div"]


def test_l2_normalize_of_another_tensor_is_a_near_miss():
    prog = P.program(P.RANK3, lambda x, y: mb.real_div(
        x=x, y=mb.maximum(x=mb.reduce_l2_norm(x=y, axes=[-1], keep_dims=True), y=1e-12)), inputs=2)
    (m,) = find_patterns(prog)
    assert m.variant == "reduce"                   # only the norm of y itself
    assert "'x' is" in explain(prog, "l2_norm.normalize")


def test_grn():
    m = _only(P.program(P.RANK4, P.grn), "l2_norm")
    assert m.variant == "grn"
    assert [op.op_type for op in m.ops] == ["reduce_l2_norm", "reduce_mean", "add", "real_div"]


def test_grn_with_a_large_eps_is_a_near_miss():
    prog = P.program(P.RANK4, lambda x: P.grn(x, eps=0.5))
    assert find_patterns(prog)[0].variant == "reduce"
    assert "eps must be a small positive constant" in explain(prog, "l2_norm.grn")


# ---------------------------------------------------------------- additive masks
def test_mask_of_finfo_min():
    m = _only(P.program(P.RANK3, P.masked), "mask")
    assert (m.variant, [op.op_type for op in m.ops]) == ("additive", ["add"])
    assert [k.kind for k in find_patterns(P.program(P.RANK3, P.masked))] == ["mask", "softmax"]


@pytest.mark.parametrize("value", [-1e4, -65504.0])
def test_mask_that_fp16_holds_is_a_near_miss(value):
    reason = _reason(P.program(P.RANK3, lambda x: P.masked(x, value=value)), "mask")
    assert "mask must be a tensor constant holding values fp16 cannot (beyond ±65504)" in reason


def test_fp16_mask_of_inf_is_a_member():
    def body(x):
        mask = np.zeros(P.RANK3[1:], np.float16)
        mask[0, :] = -np.inf
        return mb.softmax(x=mb.add(x=x, y=mask), axis=-1)
    m = _only(P.program(P.RANK3, body, dtype=ct.converters.mil.mil.types.fp16), "mask")
    assert m.variant == "additive"


def test_a_saturated_mask_is_recognised_as_remedied():
    prog = rescaled(P.program(P.RANK3, P.masked))
    assert [(m.kind, m.variant, member(m).safe) for m in find_patterns(prog)] == [
        ("mask", "saturated", True), ("softmax", "native", False)]


def test_a_mask_of_other_large_values_is_not_taken_for_a_saturated_one():
    reason = _reason(P.program(P.RANK3, lambda x: P.masked(x, value=-30000.0)), "mask")
    assert "a tensor constant holding values fp16 cannot" in reason or "saturated at ±32752" in reason


# ---------------------------------------------------------------- attention (iOS18)
def test_scaled_dot_product_attention_is_a_softmax_member_for_audits():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 8, 16))] * 3, opset_version=ct.target.iOS18)
    def prog(q, k, v):
        return mb.scaled_dot_product_attention(query=q, key=k, value=v)
    m = _only(prog, "softmax")
    assert (m.variant, member(m).native, member(m).remedies) == ("native_attention", True, ())


# ---------------------------------------------------------------- the rescaled forms
REWRITTEN = {
    "rms_norm": (P.RANK3, P.rms_norm, "rescaled/weight/last_axis"),
    "rms_norm gemma": (P.RANK3, lambda x: P.rms_norm(x, weight="no_weight"), "rescaled/no_weight/last_axis"),
    "rms_norm max_abs": (P.RANK3, P.rms_norm_max_abs, "rescaled/weight/last_axis"),
    "layer_norm": (P.RANK3, P.layer_norm, "rescaled/affine/last_axis"),
    "layer_norm channel": (P.RANK4, lambda x: P.layer_norm(x, axes=(1,), gamma=P.GAMMA4, beta=P.BETA4),
                           "rescaled/affine/channel_axis"),
    "layer_norm native": (P.RANK3, lambda x: mb.layer_norm(x=x, axes=[-1], gamma=P.GAMMA3, beta=P.BETA3,
                                                            epsilon=1e-5), "rescaled/affine/last_axis"),
    "group_norm": (P.RANK4, P.group_norm, "rescaled/affine"),
    "l2 reduce": (P.RANK3, P.l2_reduce, "rescaled"),
    "l2 reduce flat": (P.RANK3, lambda x: P.l2_reduce(x, keep_dims=False), "rescaled"),
    "l2 normalize": (P.RANK3, P.l2_normalize, "rescaled_normalize"),
    "grn": (P.RANK4, P.grn, "rescaled_grn"),
    "softmax naive": (P.RANK3, lambda x: P.softmax(x, form="naive"), "decomposed/max_shifted"),
    "log_softmax naive": (P.RANK3, lambda x: P.softmax(x, form="log_softmax_naive"), "log_softmax"),
    "log of softmax": (P.RANK3, lambda x: P.softmax(x, form="log_of_softmax"), "log_softmax"),
}


@pytest.mark.parametrize("case", sorted(REWRITTEN))
def test_a_rewritten_region_is_recognised_as_safe(case):
    shape, body, variant = REWRITTEN[case]
    prog = rescaled(P.program(shape, body))
    (m,) = [m for m in find_patterns(prog) if m.kind != "mask"]
    assert m.variant == variant
    assert member(m).safe or member(m).rescale_blocker(m)     # a second pass has nothing to rewrite


def test_log_sum_exp_rewrite_is_the_shifted_form():
    prog = rescaled(P.program(P.RANK3, lambda x: P.softmax(x, form="native_log_sum_exp")))
    assert P.op_types(prog) == ["relu", "reduce_max", "sub", "exp", "reduce_sum", "log", "add", "tanh"]


def test_rescaled_rms_norm_with_a_different_scale_is_a_near_miss():
    """u = x / s must divide by the scale of the same x: here the max is taken of another tensor."""
    def body(x, y):
        s = mb.maximum(x=mb.reduce_max(x=mb.abs(x=y), axes=[-1], keep_dims=True), y=2.0 ** -24)
        u = mb.real_div(x=x, y=s)
        t = mb.square(x=mb.real_div(x=1e-3, y=s))
        ms = mb.reduce_mean(x=mb.square(x=u), axes=[-1], keep_dims=True)
        return mb.mul(x=mb.rsqrt(x=mb.add(x=t, y=ms), epsilon=0.0), y=u)
    prog = P.program(P.RANK3, body, inputs=2)
    assert [m.rule.name for m in find_patterns(prog)] != ["rms_norm.rescaled"]
    assert "'x' is" in explain(prog, "rms_norm.rescaled")


def test_rescaled_layer_norm_scaled_by_the_uncentred_input_is_a_near_miss():
    """s must be the max of the deviations d = x - mean(x): here it is taken of x itself."""
    def body(x):
        k = 2.0 ** 5
        d = mb.sub(x=x, y=mb.mul(x=mb.reduce_mean(x=mb.mul(x=x, y=1.0 / k), axes=[-1], keep_dims=True), y=k))
        s = mb.maximum(x=mb.reduce_max(x=mb.abs(x=x), axes=[-1], keep_dims=True), y=2.0 ** -24)
        u = mb.real_div(x=d, y=s)
        t = mb.square(x=mb.real_div(x=np.float32(1e-3), y=s))
        var = mb.reduce_mean(x=mb.square(x=u), axes=[-1], keep_dims=True)
        return mb.mul(x=mb.rsqrt(x=mb.add(x=t, y=var), epsilon=0.0), y=u)
    prog = P.program(P.RANK3, body)
    assert [m.rule.name for m in find_patterns(prog)] == []
    assert "expected sub" in explain(prog, "layer_norm.rescaled")


def test_rescaled_grn_whose_eps_is_not_divided_by_the_scale_is_a_near_miss():
    """GRN's rescaled form adds eps/S to the channel mean; adding eps itself is the plain GRN of x/S."""
    def body(x):
        s = mb.maximum(x=mb.reduce_max(x=mb.abs(x=x), axes=[1, 2, 3], keep_dims=True), y=2.0 ** -24)
        g = mb.reduce_l2_norm(x=mb.real_div(x=x, y=s), axes=[1, 2], keep_dims=True)
        return mb.real_div(x=g, y=mb.add(x=mb.reduce_mean(x=g, axes=[3], keep_dims=True), y=np.float32(1e-6)))
    prog = P.program(P.RANK4, body)
    assert [m.rule.name for m in find_patterns(prog)] == ["l2_norm.grn"]
    assert "expected real_div" in explain(prog, "l2_norm.rescaled_grn")
