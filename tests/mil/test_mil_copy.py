"""``copy_program``: an exact, independent copy of a program, at any depth."""
from __future__ import annotations

import copy
import sys

import coremltools as ct
import numpy as np
import pytest

from milguard.executor import run
from milguard.mil import Function, Program, converted_program, copy_program, iter_ops, mb, module_path, op_inputs, types
from milguard.mil.clone import GRAPH_TYPES, _graph_objects

F16 = np.float16


def fingerprint(program: Program) -> list:
    """Everything a copy must keep, as plain data: names, types, values, scopes, consumers, I/O."""
    out: list = [program.default_function_name, sorted(program.functions)]
    for name, fn in program.functions.items():
        out.append((name, str(fn.opset_version), [(k, v.name, str(v.sym_type)) for k, v in fn.inputs.items()],
                    [(v.name, str(v.sym_type)) for v in fn.outputs]))
        for op in iter_ops(fn):
            outer = op.enclosing_block.outer_op
            out.append((op.name, op.op_type, repr(op.scopes), outer.name if outer else None,
                        [(p, v.name) for p, v in op_inputs(op)],
                        [(b.name, [v.name for v in b.inputs], [v.name for v in b.outputs]) for b in op.blocks],
                        [(v.name, str(v.sym_type), None if v.val is None else np.asarray(v.val).tobytes(),
                          [c.name for c in v.child_ops]) for v in op.outputs]))
    return out


def graph_ids(program: Program) -> set[int]:
    return {id(obj) for obj, _ in _graph_objects(program)}


def control_flow_and_state() -> Program:
    """Two functions: one with a cond, a while_loop and fp16 constants; one stateful (a KV cache)."""
    @mb.program(input_specs=[mb.TensorSpec((2, 4), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog(x):
        s = mb.reduce_sum(x=x, name="total")
        y = mb.cond(pred=mb.greater(x=s, y=F16(0), name="positive"),
                    _true_fn=lambda: mb.mul(x=x, y=F16(2), name="doubled"),
                    _false_fn=lambda: mb.sub(x=x, y=F16(1), name="shifted"), name="branch")
        v, _ = mb.while_loop(_cond=lambda v, i: mb.less(x=i, y=F16(3), name="more"),
                             _body=lambda v, i: (mb.tanh(x=v, name="squash"), mb.add(x=i, y=F16(1), name="next")),
                             loop_vars=(y, F16(0)), name="loop")
        return mb.softmax(x=v, axis=-1, name="probs")

    with Function({"x": mb.placeholder(shape=(1, 4), dtype=types.fp16),
                   "cache": mb.state_tensor_placeholder(shape=(3, 4), dtype=types.fp16)},
                  opset_version=ct.target.iOS18) as fn:
        old = mb.read_state(input=fn.inputs["cache"], name="old")
        new = mb.slice_update(x=old, update=fn.inputs["x"], begin=[1, 0], end=[2, 4], name="written")
        mb.coreml_update_state(state=fn.inputs["cache"], value=new, name="store")
        fn.set_outputs([mb.reduce_sum(x=new, axes=[0], name="summed")])
    prog.add_function("decode", fn)
    return prog


def test_copy_is_exact_for_nested_blocks_states_and_several_functions():
    prog = control_flow_and_state()
    before = fingerprint(prog)
    copied = copy_program(prog)
    assert fingerprint(copied) == before
    assert not graph_ids(prog) & graph_ids(copied)          # no op, var, block or function shared
    copied.validate()
    x = np.array([[1, -2, 3, 0.5], [0, 1, 1, 1]], F16)
    np.testing.assert_array_equal(run(copied, {"x": x})["probs"], run(prog, {"x": x})["probs"])
    state = {"x": np.array([[1, 2, 3, 4]], F16), "cache": np.ones((3, 4), F16)}
    np.testing.assert_array_equal(run(copied, state, function="decode")["summed"],
                                  run(prog, state, function="decode")["summed"])


def test_editing_the_copy_leaves_the_original_alone():
    prog = control_flow_and_state()
    before = fingerprint(prog)
    copied = copy_program(prog)
    fn = copied.functions["main"]
    doubled = next(op for op in iter_ops(fn) if op.name == "doubled")
    with doubled.enclosing_block:
        halved = mb.mul(x=doubled.x, y=F16(0.5), name="halved", before_op=doubled)
    doubled.enclosing_block.replace_uses_of_var_after_op(anchor_op=doubled, old_var=doubled.outputs[0],
                                                         new_var=halved)
    doubled.enclosing_block.remove_ops([doubled])
    copied.functions["decode"].inputs["x"].name = "renamed"
    assert fingerprint(copied) != before
    assert fingerprint(prog) == before
    assert "doubled" in {op.name for op in iter_ops(prog.functions["main"])}


def test_a_program_deeper_than_the_recursion_limit_copies(deep_program):
    prog = deep_program
    ops = sum(1 for _ in iter_ops(prog.functions["main"]))
    assert ops > 3 * sys.getrecursionlimit()
    with pytest.raises(RecursionError):                     # what keep_fp32 used before
        copy.deepcopy(prog)
    copied = copy_program(prog)
    assert fingerprint(copied) == fingerprint(prog)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16)).astype(F16)
    np.testing.assert_array_equal(run(copied, {"x": x})["probs"], run(prog, {"x": x})["probs"])


def test_copy_refuses_an_object_it_cannot_rebuild():
    class Odd:
        def __reduce_ex__(self, protocol):
            return (Odd, ())

    with pytest.raises(TypeError, match="cannot copy a Odd"):
        from milguard.mil.clone import _reduce
        _reduce(Odd())


def test_graph_types_cover_every_object_of_a_program():
    prog = control_flow_and_state()
    kinds = {type(obj).__name__ for obj, _ in _graph_objects(prog)}
    assert {"Program", "Function", "Block", "Var", "OpNode", "CacheDoublyLinkedList"} <= kinds
    assert all(isinstance(obj, GRAPH_TYPES) for obj, _ in _graph_objects(prog))


@pytest.mark.slow
def test_converted_model_keeps_its_torch_scopes():
    from milguard.zoo import registry

    prog = converted_program(registry.convert("llama_decoder"))
    copied = copy_program(prog)
    paths = [module_path(op) for op in iter_ops(prog.functions["main"])]
    assert sum(p is not None for p in paths) > 100
    assert [module_path(op) for op in iter_ops(copied.functions["main"])] == paths
    assert fingerprint(copied) == fingerprint(prog)
    assert repr(copied.functions["main"].input_types) == repr(prog.functions["main"].input_types) != "[]"
