"""``dtype_name`` remembers names per (var class, type) and follows a var whose type changes."""
from __future__ import annotations

import coremltools as ct

from milguard.mil import dtype_name, mb, types


def _program():
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3), dtype=types.fp32)], opset_version=ct.target.iOS17)
    def prog(x):
        c = mb.cast(x=x, dtype="fp16", name="c")
        return mb.relu(x=c, name="r"), mb.shape(x=x, name="s")

    return prog


def test_names_of_tensors_scalars_and_non_tensors():
    fn = _program().functions["main"]
    ops = {op.name: op for op in fn.operations}
    assert dtype_name(fn.inputs["x"]) == "fp32"
    assert dtype_name(ops["c"].outputs[0]) == "fp16" and dtype_name(ops["r"].outputs[0]) == "fp16"
    assert dtype_name(ops["s"].outputs[0]) == "int32"


def test_a_var_whose_type_changes_gets_the_new_name():
    fn = _program().functions["main"]
    relu = next(op for op in fn.operations if op.name == "r").outputs[0]
    assert dtype_name(relu) == "fp16"
    relu._sym_type = types.tensor(types.fp32, (2, 3))       # what a pass retyping a var does
    assert dtype_name(relu) == "fp32"
    relu._sym_type = types.tensor(types.fp16, (2, 3))
    assert dtype_name(relu) == "fp16"


def test_list_vars_have_no_dtype_name():
    @mb.program(input_specs=[mb.TensorSpec(shape=(2,), dtype=types.fp32)], opset_version=ct.target.iOS17)
    def prog(x):
        ls = mb.make_list(init_length=1, elem_shape=[2], dtype="fp32", name="ls")
        return mb.list_length(ls=ls, name="n")

    ls = next(op for op in prog.functions["main"].operations if op.name == "ls").outputs[0]
    assert dtype_name(ls) is None
    assert dtype_name(ls) is None                              # remembered the same way
