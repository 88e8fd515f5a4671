"""Input checks shared by ``milguard.run``, calibration and the CLI: dtype, shape, flexible dims, states."""
from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest

import milguard
from milguard.analysis import calibrate
from milguard.executor import InputError, run
from milguard.executor.inputs import check_inputs
from milguard.executor.run import declared
from milguard.mil import mb, types
from milguard.mil.inputs import DeclaredInput

F16, F32 = np.float16, np.float32
X = DeclaredInput("x", "fp16", (1, "s", 16), bounds=((1, 1), (2, 32), (16, 16)))
MASK = DeclaredInput("mask", "fp16", (1, "s", "s"))
IDS = DeclaredInput("ids", "int32", (1, 4))
CACHE = DeclaredInput("cache", "fp16", (3, 4), state=True)


@pytest.mark.parametrize("value, says", [
    (np.array([["a"] * 16] * 4)[None], r"input 'x' holds strings \(<U1\); the model takes fp16"),
    (np.zeros((1, 4, 16), np.complex64), r"input 'x' holds complex numbers"),
    (np.zeros((1, 4, 15), F32), r"input 'x' has shape \(1, 4, 15\), expected \(1, \?, 16\)"),
    (np.zeros((4, 16), F32), r"input 'x' has shape \(4, 16\), expected \(1, \?, 16\)"),
    (np.zeros((1, 33, 16), F32), r"input 'x' has 33 along axis 1, outside the model's range \[2, 32\]"),
    (np.zeros((1, 1, 16), F32), r"input 'x' has 1 along axis 1, outside the model's range \[2, 32\]"),
])
def test_bad_values_are_one_line_errors_naming_where_and_what(value, says):
    with pytest.raises(InputError, match=r"^sample.npz: " + says):
        check_inputs({"x": X}, {"x": value}, "sample.npz")


def test_flexible_dims_within_bounds_pass_unchanged():
    for n in (2, 17, 32):
        value = np.ones((1, n, 16), F32)
        assert check_inputs({"x": X}, {"x": value})["x"] is not None
    unbounded = DeclaredInput("x", "fp32", (1, "s"), bounds=((1, 1), (1, None)))
    assert check_inputs({"x": unbounded}, {"x": np.ones((1, 10_000))})["x"].shape == (1, 10_000)


def test_one_symbol_takes_one_size_across_inputs():
    ok = {"x": np.ones((1, 5, 16), F16), "mask": np.zeros((1, 5, 5), F16)}
    assert set(check_inputs({"x": X, "mask": MASK}, ok)) == {"x", "mask"}
    with pytest.raises(InputError, match=r"input 'mask' has 6 along axis 1 but 'x' has 5 for the same flexible dim"):
        check_inputs({"x": X, "mask": MASK}, {**ok, "mask": np.zeros((1, 6, 6), F16)})


def test_enumerated_shapes_allow_exactly_those():
    y = DeclaredInput("y", "fp32", ("s", 4), shapes=((2, 4), (3, 4)))
    assert check_inputs({"y": y}, {"y": np.ones((3, 4))})["y"].shape == (3, 4)
    with pytest.raises(InputError, match=r"shape \(4, 4\), not one of the model's enumerated shapes \(2, 4\), \(3, 4\)"):
        check_inputs({"y": y}, {"y": np.ones((4, 4))})


def test_integer_inputs_take_integer_values():
    assert check_inputs({"ids": IDS}, {"ids": np.array([[1.0, 2.0, 3.0, 4.0]])})["ids"].shape == (1, 4)
    with pytest.raises(InputError, match="input 'ids' holds non-integer values; the model takes int32"):
        check_inputs({"ids": IDS}, {"ids": np.array([[1.5, 2, 3, 4]])})


def test_names_missing_unknown_and_states():
    with pytest.raises(InputError, match=r"^f.npz: missing input 'x', 'ids' \(given: y\)$"):
        check_inputs({"x": X, "ids": IDS}, {"y": np.ones(2)}, "f.npz")
    with pytest.raises(InputError, match=r"unknown input 'y' \(the function takes ids\)"):
        check_inputs({"ids": IDS}, {"ids": np.ones((1, 4), np.int32), "y": np.ones(2)})
    filled = check_inputs({"ids": IDS, "cache": CACHE}, {"ids": np.ones((1, 4), np.int32)})
    assert filled["cache"].dtype == F16 and filled["cache"].shape == (3, 4) and not filled["cache"].any()
    given = check_inputs({"cache": CACHE}, {"cache": np.full((3, 4), 2.0)})
    assert (given["cache"] == 2).all()
    with pytest.raises(InputError, match="input 'cache' has shape"):
        check_inputs({"cache": CACHE}, {"cache": np.ones((2, 4))})
    flexible_state = DeclaredInput("kv", "fp16", ("s", 4), state=True)
    with pytest.raises(InputError, match="state 'kv' has no static shape to start from zeros: give its value"):
        check_inputs({"kv": flexible_state}, {})


def test_run_refuses_strings_instead_of_failing_inside_numpy():
    prog = mb.program(input_specs=[mb.TensorSpec((2, 3), dtype=types.fp16)])(lambda x: mb.relu(x=x))
    with pytest.raises(InputError, match=r"input 'x' holds strings"):
        run(prog, {"x": np.array([["a", "b", "c"]] * 2)})


# ---- declared inputs of converted models (tests/conftest.py): RangeDim, EnumeratedShapes, StateType

def test_bounds_come_from_the_converted_program_and_from_the_saved_description(flexible):
    mlmodel, path = flexible
    for model in (mlmodel, path):
        d = declared(model)
        assert d["x"].bounds == ((1, 1), (2, 32), (16, 16)) and isinstance(d["x"].shape[1], str)
        assert d["y"].shapes == ((2, 4), (3, 4))
        with pytest.raises(InputError, match="outside the model's range"):
            run(model, {"x": np.ones((1, 40, 16), F32), "y": np.ones((2, 4), F32)})
    out = run(path, {"x": np.ones((1, 20, 16), F32), "y": np.ones((3, 4), F32)})
    assert list(out.values())[0].shape == (1, 20, 16)


def test_calibration_outside_a_range_dim_is_refused(flexible):
    _, path = flexible
    with pytest.raises(InputError, match=r"^calibration sample 2: input 'x' has 40 along axis 1, outside"):
        calibrate(path, [{"x": np.ones((1, 8, 16)), "y": np.ones((2, 4))},
                         {"x": np.ones((1, 40, 16)), "y": np.ones((2, 4))}])


def test_stateful_model_calibrates_from_zeros_as_core_ml_starts_it(stateful):
    mlmodel, path = stateful
    assert declared(path)["acc"].state and declared(path)["acc"].shape == (1, 8)
    x = np.linspace(-1, 1, 8, dtype=F32)[None]
    cal = calibrate(path, {"x": x})
    given = calibrate(path, {"x": x, "acc": np.zeros((1, 8), F32)})
    assert cal.reference == given.reference
    acc = cal.reference["acc"]                   # the state after one step: 0 + x
    assert acc.lo == pytest.approx(-1, abs=1e-3) and acc.hi == pytest.approx(1, abs=1e-3)
    report = milguard.audit(path, calibration={"x": x}).to_dict()
    assert {p["kind"] for p in report["patterns"]} >= {"layer_norm", "softmax"}


def test_a_state_input_is_bound_in_its_declared_dtype():
    """A float32 array given for an fp16 state holds fp16 values inside the run, as Core ML keeps it."""
    @mb.program(input_specs=[mb.StateTensorSpec((1, 4), dtype=types.fp16), mb.TensorSpec((1, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(acc, x):
        return mb.add(x=mb.read_state(input=acc), y=x)
    executor = milguard.executor.prepare(prog)
    bound = {var.name: value for var, value in executor.bind_inputs(
        {"acc": np.full((1, 4), 0.1, F32), "x": np.ones((1, 4), F16)}).items()}
    assert bound["acc"].dtype == F16 and bound["acc"][0, 0] == F16(0.1)
