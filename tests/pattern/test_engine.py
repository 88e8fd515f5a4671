"""The engine's semantics, one behaviour per test, each with a near miss."""
from __future__ import annotations

import numpy as np
import pytest

import programs as P
from milguard.mil import mb, types
from milguard.families import explain, find_patterns
from milguard.pattern import Bind, Const, P as Op, Rule, Tracer, either, maybe_cast

X, Y = Bind("x"), Bind("y")


def _rules(pattern, **kw):
    return [Rule("test.rule", pattern, **kw)]


def _find(prog, pattern, **kw):
    tracer = Tracer()
    return find_patterns(prog, rules=_rules(pattern, **kw), tracer=tracer), tracer


def test_commutative_operands_match_in_either_order():
    pattern = Op.add(x=Op.exp(x=X), y=Op.log(x=X))
    for body in (lambda x: mb.add(x=mb.exp(x=x), y=mb.log(x=x)),
                 lambda x: mb.add(x=mb.log(x=x), y=mb.exp(x=x))):
        matches, _ = _find(P.program(P.RANK3, body), pattern)
        assert [m.root.op_type for m in matches] == ["add"]


def test_non_commutative_operands_do_not_swap():
    pattern = Op.sub(x=Op.exp(x=X), y=Op.log(x=X))
    matches, tracer = _find(P.program(P.RANK3, lambda x: mb.sub(x=mb.log(x=x), y=mb.exp(x=x))), pattern)
    assert matches == []
    assert "expected exp, got log" in tracer.reason("test.rule")


def test_a_bind_name_binds_one_var():
    pattern = Op.add(x=Op.exp(x=X), y=Op.log(x=X))
    matches, tracer = _find(P.program(P.RANK3, lambda x, y: mb.add(x=mb.exp(x=x), y=mb.log(x=y)), inputs=2),
                            pattern)
    assert matches == []
    assert "'x' is" in tracer.reason("test.rule") and "in another" in tracer.reason("test.rule")


def test_constants_bind_by_value():
    """Two reduce ops with their own axes consts of equal value agree on one ``axes`` binding."""
    axes = Bind("axes", const=True)
    pattern = Op.add(x=Op.reduce_sum(x=X, axes=axes), y=Op.reduce_max(x=X, axes=axes))
    good = P.program(P.RANK3, lambda x: mb.add(x=mb.reduce_sum(x=x, axes=[-1]), y=mb.reduce_max(x=x, axes=[-1])))
    bad = P.program(P.RANK3, lambda x: mb.add(x=mb.reduce_sum(x=x, axes=[-1]), y=mb.reduce_max(x=x, axes=[2])))
    assert len(_find(good, pattern)[0]) == 1
    matches, tracer = _find(bad, pattern)
    assert matches == [] and "'axes' is" in tracer.reason("test.rule")


def test_one_op_pattern_object_is_one_op():
    shared = Op.exp(x=X)
    pattern = Op.add(x=shared, y=Op.log(x=shared))
    good = P.program(P.RANK3, lambda x: (lambda e: mb.add(x=e, y=mb.log(x=e)))(mb.exp(x=x)))
    bad = P.program(P.RANK3, lambda x: mb.add(x=mb.exp(x=x), y=mb.log(x=mb.exp(x=x))))
    assert len(_find(good, pattern)[0]) == 1
    matches, tracer = _find(bad, pattern)
    assert matches == [] and "should be the same exp op" in tracer.reason("test.rule")


def test_either_backtracks_when_a_later_binding_conflicts():
    """The first alternative (exp of x) fits the first operand, but only the second (exp of y) agrees
    with the second operand's binding of x; the engine must come back and take it."""
    e = either(("exp_x", Op.exp(x=X)), ("exp_relu", Op.exp(x=Op.relu(x=X))), axis="arg")
    pattern = Op.mul(x=e, y=Op.log(x=Op.relu(x=X)))

    def body(x):
        r = mb.relu(x=x)
        return mb.mul(x=mb.exp(x=r), y=mb.log(x=r))
    matches, _ = _find(P.program(P.RANK3, body), pattern)
    assert len(matches) == 1 and matches[0].labels == {"arg": "exp_relu"}


def test_a_reused_either_keeps_its_first_choice():
    e = either(("a", Op.exp(x=X)), ("b", Op.exp(x=Op.relu(x=X))), axis="e")
    pattern = Op.mul(x=e, y=Op.log(x=e))

    def body(x):       # exp(relu(x)) * log(exp(x')) where x' = relu(x): the two exps differ
        r = mb.relu(x=x)
        return mb.mul(x=mb.exp(x=r), y=mb.log(x=mb.exp(x=x)))
    assert _find(P.program(P.RANK3, body), pattern)[0] == []


@pytest.mark.parametrize("with_cast", [False, True])
def test_maybe_cast(with_cast):
    pattern = Op.exp(x=maybe_cast(X))
    body = (lambda x: mb.exp(x=mb.cast(x=x, dtype="fp32"))) if with_cast else (lambda x: mb.exp(x=x))
    (match,), _ = _find(P.program(P.RANK3, body), pattern)
    assert [op.op_type for op in match.ops] == (["cast", "exp"] if with_cast else ["exp"])
    assert match.bindings["x"].op.op_type == "relu"


def test_const_constraint_and_its_reasons():
    small = Const("eps", lambda v: v.size == 1 and 0 < float(v.reshape(())) < 1e-2, "tiny")
    pattern = Op.add(x=X, y=small)
    assert len(_find(P.program(P.RANK3, lambda x: mb.add(x=x, y=1e-6)), pattern)[0]) == 1
    _, tracer = _find(P.program(P.RANK3, lambda x: mb.add(x=x, y=3.0)), pattern)
    assert tracer.reason("test.rule").startswith("eps must be tiny, got")
    _, tracer = _find(P.program(P.RANK3, lambda x, y: mb.add(x=x, y=y), inputs=2), pattern)
    assert "eps must be tiny, got the computed value" in tracer.reason("test.rule")


def test_a_failed_check_is_reported_as_the_reason():
    rules = _rules(Op.exp(x=X), check=lambda m: "exp of a relu is not wanted")
    tracer = Tracer()
    assert find_patterns(P.program(P.RANK3, lambda x: mb.exp(x=x)), rules=rules, tracer=tracer) == []
    assert tracer.reason("test.rule") == "exp of a relu is not wanted"


def test_ops_of_an_earlier_match_are_not_shared():
    pattern = Op.exp(x=maybe_cast(X))
    prog = P.program(P.RANK3, lambda x: (lambda c: mb.add(x=mb.exp(x=c), y=mb.exp(x=c)))(mb.cast(x=x, dtype="fp32")))
    matches, _ = _find(prog, pattern)
    ops = [op for m in matches for op in m.ops]
    assert len(matches) == 2 and len(ops) == len(set(ops)) == 3     # the cast goes to one of them


def test_interior_values_used_outside_become_exits():
    def body(x):
        m = mb.reduce_max(x=x, axes=[-1], keep_dims=True)
        e = mb.exp(x=mb.sub(x=x, y=m))
        y = mb.real_div(x=e, y=mb.reduce_sum(x=e, axes=[-1], keep_dims=True))
        return mb.add(x=y, y=m)                # the max escapes the softmax
    (match,) = find_patterns(P.program(P.RANK3, body))
    assert sorted(v.op.op_type for v in match.exits) == ["real_div", "reduce_max"]


def test_nested_blocks_are_visited_and_never_crossed():
    @mb.program(input_specs=[mb.TensorSpec(shape=P.RANK3), mb.TensorSpec(shape=(1,), dtype=types.bool)])
    def prog(x, flag):
        def true_fn():
            return P.softmax(x, form="naive")

        def false_fn():
            return mb.exp(x=x)             # exp outside the body: no softmax can reach it
        return mb.cond(pred=mb.squeeze(x=flag), _true_fn=true_fn, _false_fn=false_fn)
    matches = find_patterns(prog)
    assert [(m.kind, m.variant) for m in matches] == [("softmax", "decomposed/naive")]
    assert matches[0].ops[0].enclosing_block is not prog.functions["main"]


def test_patterns_are_checked_against_mil_at_construction():
    with pytest.raises(ValueError, match="unknown MIL op type 'reduce_avg'"):
        Op.reduce_avg(x=X)
    with pytest.raises(ValueError, match=r"unknown parameters \['axis'\]"):
        Op.reduce_mean(x=X, axis=-1)


def test_explain_names_the_closest_rule_failure():
    prog = P.program(P.RANK3, lambda x: P.rms_norm(x, exponent=3.0))
    assert "exponent must be exactly 2" in explain(prog, "rms_norm")
    assert explain(P.program(P.RANK3, P.rms_norm), "rms_norm") is None


def test_find_patterns_accepts_a_saved_package(tmp_path):
    import coremltools as ct
    prog = P.program(P.RANK3, lambda x: P.softmax(P.layer_norm(x)))
    ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                    compute_precision=ct.precision.FLOAT32, skip_model_load=True)
    ml.save(str(tmp_path / "m.mlpackage"))
    kinds = [m.kind for m in find_patterns(tmp_path / "m.mlpackage")]
    assert sorted(kinds) == ["layer_norm", "softmax"]
    assert np.all([m.function == "main" for m in find_patterns(tmp_path / "m.mlpackage")])
