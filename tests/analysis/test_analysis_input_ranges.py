"""Default input ranges: integer inputs read as gather indices get [0, n - 1]; other integers their
dtype's range; floats [-1, 1]; and the report says which default each input got."""
from __future__ import annotations

import coremltools as ct
import numpy as np

from milguard.analysis.input_ranges import gathered_size
from milguard.analysis.ranges import propagate
from milguard.mil import Function, Program, mb, types
from milguard.report.audit import audit
from milguard.report.text import render

VOCAB, HIDDEN = 1000, 8


def _embedding(wrap: bool = True, extra_int: bool = False, shift: bool = False) -> Program:
    """ids -> (the negative-index wrap coremltools emits for torch.nn.Embedding) -> gather."""
    table = np.linspace(-1, 1, VOCAB * HIDDEN).reshape(VOCAB, HIDDEN).astype(np.float16)
    spec = {"ids": mb.placeholder(shape=(1, 16), dtype=types.int32)}
    if extra_int:
        spec["count"] = mb.placeholder(shape=(1,), dtype=types.int32)
    prog = Program()
    with Function(spec, opset_version=ct.target.iOS17) as fn:
        ids = mb.cast(x=mb.cast(x=fn.inputs["ids"], dtype="int16"), dtype="int32")
        if wrap:
            ids = mb.select(cond=mb.greater_equal(x=ids, y=0), a=ids, b=mb.add(x=ids, y=VOCAB))
        if shift:                          # arithmetic on the ids: the input is not the index any more
            ids = mb.add(x=ids, y=1)
        emb = mb.gather(x=table, indices=ids, axis=0, name="embed")
        outs = [mb.relu(x=emb, name="out")]
        if extra_int:
            outs.append(mb.cast(x=fn.inputs["count"], dtype="fp16", name="count_f"))
        fn.set_outputs(outs)
    prog.add_function("main", fn)
    return prog


def test_token_ids_get_the_vocabulary():
    for wrap in (True, False):
        ranges = propagate(_embedding(wrap))
        assert ranges.input_ranges["ids"] == (0.0, VOCAB - 1.0)
        assert ranges.input_origins["ids"] == "indices"


def test_an_integer_that_indexes_nothing_keeps_its_dtype_range():
    int32 = (float(np.iinfo(np.int32).min), float(np.iinfo(np.int32).max))
    ranges = propagate(_embedding(extra_int=True))
    assert ranges.input_ranges["count"] == int32 and ranges.input_origins["count"] == "dtype"
    assert gathered_size(_embedding(extra_int=True).functions["main"].inputs["count"]) is None
    shifted = propagate(_embedding(shift=True))
    assert shifted.input_ranges["ids"] == int32 and shifted.input_origins["ids"] == "dtype"


def test_given_ranges_win_and_floats_default_to_unit():
    ranges = propagate(_embedding(), {"ids": (0, 9)})
    assert ranges.input_ranges["ids"] == (0.0, 9.0) and ranges.input_origins["ids"] == "given"
    prog = Program()
    with Function({"x": mb.placeholder(shape=(2,), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.relu(x=fn.inputs["x"])])
    prog.add_function("main", fn)
    floats = propagate(prog)
    assert floats.input_ranges["x"] == (-1.0, 1.0) and floats.input_origins["x"] == "default"


def test_the_header_names_each_default():
    d = audit(_embedding(extra_int=True)).to_dict()
    assert d["options"]["input_range_origins"] == {"ids": "indices", "count": "dtype"}
    header = render(d).splitlines()[2]
    assert header.startswith("  input ranges: ids=[0, 999] (gather indices), count=[-2.14748e+09, "
                             "2.14748e+09] (dtype range)")
