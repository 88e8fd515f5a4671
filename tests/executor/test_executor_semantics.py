"""Typed semantics of the executor: rounding, overflow, NaN, casts, accumulation modes, traces, errors."""
from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milguard.errors import MilguardError, UnsupportedOpError
from milguard.executor import FP16_BLOCK, InputError, first_nonfinite, run
from milguard.executor.table import KERNELS
from milguard.mil import mb, types

F16, F32 = np.float16, np.float32


def _all_finite_halves(rng, n):
    bits = rng.integers(0, 2**16, size=n, dtype=np.uint16).view(F16)
    return bits[np.isfinite(bits)]


@pytest.mark.parametrize("name, exact", [
    ("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("real_div", np.divide),
])
def test_fp16_binary_is_bit_exact_ieee_half(program_of, name, exact):
    """fp16 op == the exact float64 result rounded once to half (correct IEEE rounding)."""
    rng = np.random.default_rng(0)
    x = _all_finite_halves(rng, 60000)
    y = _all_finite_halves(rng, x.size * 2)[: x.size]
    x = x[: y.size]
    prog = program_of(lambda a, b: getattr(mb, name)(x=a, y=b), [x, y])
    got = run(prog, {"x0": x, "x1": y})[prog.functions["main"].outputs[0].name]
    with np.errstate(all="ignore"):
        want = exact(x.astype(np.float64), y.astype(np.float64)).astype(F16)
    assert got.dtype == F16
    np.testing.assert_array_equal(got.view(np.uint16)[np.isfinite(want)], want.view(np.uint16)[np.isfinite(want)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))


def test_fp16_sqrt_is_bit_exact(program_of):
    x = np.abs(_all_finite_halves(np.random.default_rng(1), 60000))
    prog = program_of(lambda a: mb.sqrt(x=a), [x])
    got = list(run(prog, {"x0": x}).values())[0]
    np.testing.assert_array_equal(got.view(np.uint16), np.sqrt(x.astype(np.float64)).astype(F16).view(np.uint16))


def test_fp16_overflow_gives_inf_where_fp32_is_finite(program_of):
    x = np.array([300.0, -300.0, 255.0, 12.0], F32)
    for dt, finite in ((F32, True), (F16, False)):
        prog = program_of(lambda a: [mb.mul(x=a, y=a), mb.exp(x=a)], [x.astype(dt)])
        sq, ex = run(prog, {"x0": x}).values()
        assert sq.dtype == dt and ex.dtype == dt
        assert bool(np.isfinite(sq[:2]).all()) is finite
        assert bool(np.isfinite(ex[3])) is finite
    assert sq[2] == F16(65024.0)                 # 255^2 = 65025 rounds to the nearest half, 65024


def test_nan_propagates_and_inf_arithmetic(program_of):
    x = np.array([np.nan, np.inf, -np.inf, 1.0], F16)
    prog = program_of(lambda a: [mb.add(x=a, y=np.float16(1)), mb.sub(x=a, y=a), mb.reduce_sum(x=a)], [x])
    added, diff, total = run(prog, {"x0": x}).values()
    assert np.isnan(added[0]) and added[1] == np.inf and added[2] == -np.inf
    assert np.isnan(diff[:3]).all() and diff[3] == 0
    assert np.isnan(total)


def test_casts_are_exact_conversions(program_of):
    x = np.array([65504.0, 65519.0, 65520.0, 1e-8, 3e-8, -7e4, 0.1, np.nan], F32)
    prog = program_of(lambda a: [mb.cast(x=a, dtype="fp16"), mb.cast(x=mb.cast(x=a, dtype="fp16"), dtype="fp32")], [x])
    half, back = run(prog, {"x0": x}).values()
    np.testing.assert_array_equal(half.view(np.uint16), x.astype(F16).view(np.uint16))
    assert half[1] == 65504 and half[2] == np.inf and half[3] == 0 and half[4] == F16(5.96e-8) and half[5] == -np.inf
    assert back.dtype == F32 and back[6] == F32(F16(0.1))


def _blocked_reference(terms: np.ndarray, block: int = FP16_BLOCK) -> np.float16:
    """The documented fp16 accumulation, one scalar at a time in Python."""
    total = None
    for lo in range(0, len(terms), block):
        partial = np.float16(np.sum(terms[lo:lo + block].astype(np.float64)))
        total = partial if total is None else np.float16(np.float64(total) + np.float64(partial))
    return total


def test_fp16_accumulation_follows_the_documented_blocked_scheme(program_of):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=(3, 1000)).astype(F16)
    prog = program_of(lambda a: mb.reduce_sum(x=a, axes=[-1]), [x])
    acc16 = list(run(prog, {"x0": x}, accumulate="fp16").values())[0]
    acc32 = list(run(prog, {"x0": x}).values())[0]
    want16 = np.array([_blocked_reference(row) for row in x])
    np.testing.assert_array_equal(acc16, want16)
    np.testing.assert_array_equal(acc32, np.sum(x.astype(np.float64), axis=-1).astype(F16))
    assert not np.array_equal(acc16, acc32)      # fp16 running sums lose low bits


def test_fp16_accumulation_in_matmul_matches_reference(program_of):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(4, 100)).astype(F16), rng.normal(size=(100, 3)).astype(F16)
    prog = program_of(lambda x, y: mb.matmul(x=x, y=y), [a, b])
    got = list(run(prog, {"x0": a, "x1": b}, accumulate="fp16").values())[0]
    prods = a.astype(np.float64)[:, :, None] * b.astype(np.float64)[None, :, :]
    want = np.array([[_blocked_reference(prods[i, :, j]) for j in range(3)] for i in range(4)])
    np.testing.assert_array_equal(got, want)


def test_partial_sum_overflow_only_under_fp16_accumulation(program_of):
    x = np.concatenate([np.full(32, 3000.0), np.full(32, -3000.0)]).astype(F16)[None]
    prog = program_of(lambda a: [mb.reduce_sum(x=a, axes=[-1]), mb.matmul(x=a, y=np.ones((64, 1), F16))], [x])
    s32, m32 = run(prog, {"x0": x}).values()
    s16, m16 = run(prog, {"x0": x}, accumulate="fp16").values()
    assert s32[0] == 0 and m32[0, 0] == 0        # 96000 - 96000 in fp32, then rounded
    assert np.isnan(s16[0]) and np.isnan(m16[0, 0])  # inf + (-inf)


def test_fp32_programs_ignore_fp16_accumulation(program_of):
    x = np.random.default_rng(5).normal(size=(8, 300)).astype(F32)
    prog = program_of(lambda a: [mb.reduce_sum(x=a, axes=[-1]), mb.softmax(x=a, axis=-1)], [x])
    for got, want in zip(run(prog, {"x0": x}, accumulate="fp16").values(), run(prog, {"x0": x}).values()):
        np.testing.assert_array_equal(got, want)


def test_fp16_softmax_and_layer_norm_round_intermediates_under_fp16_accumulation(program_of):
    x = np.random.default_rng(6).normal(size=(4, 256)).astype(F16) * F16(8)
    prog = program_of(lambda a: [mb.softmax(x=a, axis=-1), mb.layer_norm(x=a, axes=[-1], epsilon=np.float16(1e-5))], [x])
    sm16, ln16 = run(prog, {"x0": x}, accumulate="fp16").values()
    sm32, ln32 = run(prog, {"x0": x}).values()
    assert not np.array_equal(sm16, sm32) and not np.array_equal(ln16, ln32)
    np.testing.assert_allclose(sm16.astype(F32), sm32.astype(F32), atol=2e-3)
    np.testing.assert_allclose(ln16.astype(F32), ln32.astype(F32), atol=2e-2)


def test_unknown_accumulate_mode_is_rejected(program_of):
    prog = program_of(lambda a: mb.relu(x=a), [np.zeros(2, F32)])
    with pytest.raises(MilguardError, match="accumulate"):
        run(prog, {"x0": np.zeros(2)}, accumulate="bf16")


def test_unsupported_op_raises_before_anything_runs(program_of, monkeypatch):
    calls = []
    monkeypatch.setitem(KERNELS, "relu", lambda a, s: calls.append(s.op.name) or a["x"])
    prog = program_of(lambda a: mb.random_uniform(shape=mb.shape(x=mb.relu(x=a))), [np.zeros((2, 2), F32)])
    with pytest.raises(UnsupportedOpError, match=r"'random_uniform' \(op 'random_uniform_0'\)") as info:
        run(prog, {"x0": np.zeros((2, 2))})
    assert info.value.op_type == "random_uniform" and calls == []
    assert "\n" not in str(info.value)


def test_input_errors_name_the_problem(program_of):
    prog = program_of(lambda a: mb.relu(x=a), [np.zeros((2, 3), F32)])
    with pytest.raises(InputError, match="missing input 'x0'"):
        run(prog, {})
    with pytest.raises(InputError, match="unknown input 'y'"):
        run(prog, {"x0": np.zeros((2, 3)), "y": 1})
    with pytest.raises(InputError, match=r"input 'x0' has shape \(3, 2\), expected \(2, 3\)"):
        run(prog, {"x0": np.zeros((3, 2))})


def test_inputs_are_cast_to_the_declared_dtype(program_of):
    prog = program_of(lambda a: mb.identity(x=a), [np.zeros(3, F16)])
    trace = run(prog, {"x0": np.array([1e5, 0.1, 1.0], np.float64)}, trace=True)
    assert trace["x0"].dtype == F16 and trace["x0"][0] == np.inf and trace["x0"][1] == F16(0.1)


def test_trace_holds_every_var_in_program_order(program_of):
    prog = program_of(lambda a: mb.mul(x=mb.add(x=a, y=np.float32(1)), y=np.float32(2)), [np.ones(2, F32)])
    trace = run(prog, {"x0": np.ones(2)}, trace=True)
    fn = prog.functions["main"]
    names = [v.name for op in fn.operations for v in op.outputs]
    assert list(trace) == ["x0"] + names
    assert fn.outputs[0].name in trace and trace[fn.outputs[0].name].tolist() == [4.0, 4.0]
    consts = [op.outputs[0].name for op in fn.operations if op.op_type == "const"]
    assert consts and all(n in trace for n in consts)


def test_first_nonfinite_names_the_origin_not_its_consumers(program_of):
    x = np.array([[300.0, 1.0]], F16)
    prog = program_of(lambda a: mb.rsqrt(x=mb.reduce_mean(x=mb.pow(x=a, y=np.float16(2)), axes=[-1]), epsilon=np.float16(1e-5)), [x])
    trace = run(prog, {"x0": x}, trace=True)
    pow_op = next(op for op in prog.functions["main"].operations if op.op_type == "pow")
    assert first_nonfinite(prog, trace) == (pow_op.name, "pow", pow_op.outputs[0].name)
    assert first_nonfinite(prog, run(prog, {"x0": np.ones((1, 2))}, trace=True)) is None


def test_first_nonfinite_skips_constants_and_reports_the_nan(program_of):
    mask = np.array([[0.0, 0.0], [-np.inf, -np.inf]], F16)
    x = np.zeros((2, 2), F16)
    prog = program_of(lambda a: mb.softmax(x=mb.add(x=a, y=mask), axis=-1), [x])
    trace = run(prog, {"x0": x}, trace=True)
    out = list(trace.values())[-1]
    assert np.isnan(out[1]).all() and (out[0] == 0.5).all()
    sm = next(op for op in prog.functions["main"].operations if op.op_type == "softmax")
    assert first_nonfinite(prog, trace) == (sm.name, "softmax", sm.outputs[0].name)


def test_cond_runs_the_chosen_block(program_of):
    def build(a):
        s = mb.reduce_sum(x=a)
        return mb.cond(pred=mb.greater(x=s, y=np.float32(0)),
                       _true_fn=lambda: mb.mul(x=a, y=np.float32(2)), _false_fn=lambda: mb.sub(x=a, y=np.float32(1)))
    prog = program_of(build, [np.zeros(2, F32)])
    assert list(run(prog, {"x0": np.array([1.0, 2.0])}).values())[0].tolist() == [2.0, 4.0]
    assert list(run(prog, {"x0": np.array([-1.0, -2.0])}).values())[0].tolist() == [-2.0, -3.0]


def test_while_loop_iterates_until_its_condition_fails(program_of):
    def build(a):
        return mb.while_loop(_cond=lambda v, i: mb.less(x=i, y=np.float32(5)),
                             _body=lambda v, i: (mb.mul(x=v, y=np.float32(2)), mb.add(x=i, y=np.float32(1))),
                             loop_vars=(a, np.float32(0)))
    prog = program_of(lambda a: list(build(a)), [np.zeros(2, F32)])
    v, i = run(prog, {"x0": np.array([1.0, 3.0])}).values()
    assert v.tolist() == [32.0, 96.0] and float(i) == 5.0


def test_mlmodel_loaded_and_package_inputs_run_the_same(program_of, tmp_path):
    from milguard.mil import load
    x = np.random.default_rng(7).normal(size=(2, 8)).astype(F32)

    @mb.program(input_specs=[mb.TensorSpec((2, 8))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.softmax(x=mb.linear(x=x, weight=np.eye(8, dtype=F32) * 3), axis=-1, name="probs")

    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                         compute_precision=ct.precision.FLOAT16, skip_model_load=True)
    path = tmp_path / "m.mlpackage"
    mlmodel.save(str(path))
    results = [run(m, {"x": x}) for m in (mlmodel, path, str(path), load(path))]
    assert all(list(r) == list(results[0]) for r in results)
    first = list(results[0].values())[0]
    trace = run(path, {"x": x}, trace=True)
    assert any(v.dtype == F16 for v in trace.values())     # the fp16 conversion computes in fp16
    np.testing.assert_allclose(first.astype(F32), np.exp(3 * x) / np.exp(3 * x).sum(-1, keepdims=True), atol=2e-3)
    for r in results[1:]:
        np.testing.assert_array_equal(list(r.values())[0], first)


@pytest.mark.parametrize("shapes", [((2, 3, 70), (70, 5)), ((4, 40), (2, 40, 3)), ((2, 1, 3, 33), (4, 33, 2))])
def test_fp16_accumulation_in_batched_matmul_broadcasts_like_matmul(program_of, shapes):
    rng = np.random.default_rng(8)
    a, b = (rng.normal(size=s).astype(F16) for s in shapes)
    prog = program_of(lambda x, y: mb.matmul(x=x, y=y), [a, b])
    got = list(run(prog, {"x0": a, "x1": b}, accumulate="fp16").values())[0]
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-2, atol=2e-2)
    a2, b2 = np.broadcast_arrays(a[..., :, None, :], np.swapaxes(b, -1, -2)[..., None, :, :])
    flat_a, flat_b = a2.reshape(-1, a.shape[-1]).astype(np.float64), b2.reshape(-1, a.shape[-1]).astype(np.float64)
    ref = np.array([_blocked_reference(x * y) for x, y in zip(flat_a, flat_b)]).reshape(got.shape)
    np.testing.assert_array_equal(got, ref)


def test_native_fp16_layer_norm_is_safe_only_with_wide_accumulation(program_of):
    """layer_norm over values around 300: the squares (9e4) exceed 65504 only when accumulated in fp16."""
    x = (300 + np.random.default_rng(9).normal(size=(2, 64)) * 300).astype(F16)
    prog = program_of(lambda a: mb.layer_norm(x=a, axes=[-1], epsilon=np.float16(1e-5)), [x])
    wide_acc = list(run(prog, {"x0": x}).values())[0]
    narrow = list(run(prog, {"x0": x}, accumulate="fp16").values())[0]
    xf = x.astype(np.float64)
    want = (xf - xf.mean(-1, keepdims=True)) / np.sqrt(xf.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(wide_acc.astype(np.float64), want, atol=5e-3)
    assert np.all(narrow == 0)                  # variance inf -> d / inf = 0


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), data=st.data())
def test_reductions_round_once_from_fp32_accumulation(shape, data):
    from milguard.mil import Function, Program
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique_by=lambda a: a % rank))
    x = np.random.default_rng(len(shape)).normal(size=shape).astype(F16)
    prog = Program()
    with Function({"x": mb.placeholder(shape=x.shape, dtype=types.fp16)}, opset_version=ct.target.iOS17) as fn:
        fn.set_outputs([mb.reduce_sum(x=fn.inputs["x"], axes=axes, keep_dims=True)])
        prog.add_function("main", fn)
    got = list(run(prog, {"x": x}).values())[0]
    want = np.sum(x.astype(np.float64), axis=tuple(a % rank for a in axes), keepdims=True)
    assert got.dtype == F16 and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=1e-3)


def test_state_is_read_updated_and_visible_in_the_trace():
    @mb.program(input_specs=[mb.TensorSpec((1, 4), dtype=types.fp16), mb.StateTensorSpec((3, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x, cache):
        old = mb.read_state(input=cache)
        new = mb.slice_update(x=old, update=x, begin=[1, 0], end=[2, 4])         # write row 1 of a KV cache
        mb.coreml_update_state(state=cache, value=new)
        return mb.reduce_sum(x=new, axes=[0])

    x, cache = np.array([[1, 2, 3, 4]], F16), np.ones((3, 4), F16)
    trace = run(prog, {"x": x, "cache": cache}, trace=True)
    out = trace[prog.functions["main"].outputs[0].name]
    np.testing.assert_array_equal(out, [3, 4, 5, 6])
    np.testing.assert_array_equal(trace["cache"], [[1, 1, 1, 1], [1, 2, 3, 4], [1, 1, 1, 1]])
    assert trace["cache"].dtype == F16
    np.testing.assert_array_equal(cache, np.ones((3, 4)))                       # the caller's array is untouched


def test_fp16_accumulation_in_einsum_contracts_blockwise(program_of):
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(2, 3, 70)).astype(F16), rng.normal(size=(70, 3, 4)).astype(F16)
    prog = program_of(lambda a, b: mb.einsum(values=(a, b), equation="chw,whr->chr"), [x, y])
    got = list(run(prog, {"x0": x, "x1": y}, accumulate="fp16").values())[0]
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    want = np.array([[[_blocked_reference(xf[c, h] * yf[:, h, r]) for r in range(4)] for h in range(3)] for c in range(2)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(list(run(prog, {"x0": x, "x1": y}).values())[0].astype(np.float64),
                               np.einsum("chw,whr->chr", xf, yf), rtol=2e-3, atol=2e-3)


def test_unsupported_op_inside_a_nested_block_is_found_first(program_of, monkeypatch):
    calls = []
    monkeypatch.setitem(KERNELS, "reduce_sum", lambda a, s: calls.append(1) or np.sum(a["x"]))

    def build(a):
        return mb.cond(pred=mb.greater(x=mb.reduce_sum(x=a), y=np.float32(0)),
                       _true_fn=lambda: mb.random_normal(shape=np.array([2], np.int32)),
                       _false_fn=lambda: mb.fill(shape=np.array([2], np.int32), value=np.float32(0)))
    prog = program_of(build, [np.zeros(2, F32)])
    with pytest.raises(UnsupportedOpError, match="random_normal"):
        run(prog, {"x0": -np.ones(2)})               # the false branch would not even reach it
    assert calls == []


def test_prepared_executor_is_reusable_and_resets_between_calls(program_of):
    from milguard.executor import prepare
    prog = program_of(lambda a: mb.mul(x=a, y=np.float16(3)), [np.zeros(3, F16)])
    ex = prepare(prog, accumulate="fp16")
    first = ex({"x0": np.array([1, 2, 3])}, trace=True)
    second = ex({"x0": np.array([4, 5, 6])})
    assert list(second.values())[0].tolist() == [12, 15, 18]
    assert first["x0"].tolist() == [1, 2, 3] and ex.env["x0"].tolist() == [4, 5, 6]


def test_a_result_that_contradicts_the_declared_shape_is_an_error(program_of, monkeypatch):
    from milguard.executor import ExecutionError
    monkeypatch.setitem(KERNELS, "transpose", lambda a, s: a["x"])          # a wrong kernel: forgets to permute
    prog = program_of(lambda a: mb.transpose(x=a, perm=[1, 0]), [np.zeros((2, 3), F32)])
    with pytest.raises(ExecutionError, match=r"op 'transpose_\d+' \(transpose\) produced shape \(2, 3\), "
                                             r"the program declares \(3, 2\)"):
        run(prog, {"x0": np.zeros((2, 3))})


def test_fp16_constants_gathered_are_not_widened_and_gather_exactly():
    """An embedding table read only by gather stays fp16 (no float32 copy); its rows come out bit-exact."""
    from milguard.executor import prepare
    table = np.array([[1.0, -0.0, 6e-8, 65504.0], [np.inf, np.nan, -2.5, 3.0], [0.1, 0.2, 0.3, 0.4]], np.float16)
    weight = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2,), dtype=types.int32)], opset_version=ct.target.iOS17)
    def prog(ids):
        rows = mb.gather(x=mb.const(val=table, name="table"), indices=ids, axis=0, name="rows")
        return mb.linear(x=rows, weight=mb.const(val=weight, name="weight"), name="proj"), rows

    ex = prepare(prog)
    with np.errstate(all="ignore"):
        out = ex({"ids": np.array([1, 0], np.int32)})
    rows = out["rows"]
    assert rows.dtype == np.float16
    assert np.array_equal(rows.view(np.uint16), table[[1, 0]].view(np.uint16))
    assert "table" not in ex._wide and "weight" in ex._wide            # widened once, for the linear only
