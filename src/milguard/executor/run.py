"""Running a MIL function op by op: input binding, the support check, typed stores, traces."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import MilguardError, ModelError, UnsupportedOpError
from ..mil import Block, Function, Loaded, Program, Var, dtype_name, iter_ops, load, np_dtype, op_inputs
from ..mil.inputs import DeclaredInput, declared_inputs
from ..mil.shapes import tensor_info
from ..mil.values import materialized
from .inputs import InputError, check_inputs
from .semantics import ACCUMULATE_MODES, F16, accumulator, wide
from .table import COMPILE_TIME, KERNELS

_NUMERIC = {"fp16", "fp32", "fp64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "bool"}
_VAR, _LIST, _VALUE = 0, 1, 2
# Ops that only select stored values: an fp16 constant they read is passed as stored, since their
# fp16 result is exact either way, and widening a whole embedding table to gather a few rows would
# cost more than the gather.
_SELECTS = frozenset({"gather", "gather_along_axis", "gather_nd"})


class ExecutionError(MilguardError):
    """A value disagrees with the program's own type inference (its declared shape): never returned silently."""


def program_of(model: Any) -> Program:
    """Program | Loaded | MLModel | .mlpackage path -> the pymil Program."""
    if isinstance(model, Program):
        return model
    if isinstance(model, Loaded):
        return model.program
    return load(model).program


def function_of(model: Any, function: str = "main") -> Function:
    return _function(program_of(model), function)


def _function(program: Program, function: str) -> Function:
    if function not in program.functions:
        raise ModelError(f"no function '{function}' in the program (it has {', '.join(program.functions)})")
    return program.functions[function]


def declared(model: Any, function: str = "main") -> dict[str, DeclaredInput]:
    """What ``function`` of ``model`` declares about its inputs (flexible-dim bounds from the
    model's description where it has one); see :mod:`milguard.mil.inputs`."""
    loaded = load(model)
    return declared_inputs(_function(loaded.program, function), loaded.spec, function)


_STORAGE = {name: np.dtype(np_dtype(name)) for name in _NUMERIC}


def storage_dtype(var: Var) -> np.dtype | None:
    """numpy dtype a var's values are stored in (a state's: its tensor's); None for strings, lists and
    other non-numeric types."""
    info = tensor_info(var)                    # memoized per MIL type: preparing pays no type introspection
    return _STORAGE.get(info[0] if info is not None else dtype_name(var))


def _static_shape(var: Var) -> tuple[int, ...] | None:
    info = tensor_info(var)
    if info is None or not all(isinstance(d, (int, np.integer)) for d in info[1]):
        return None
    return tuple(int(d) for d in info[1])


def check_supported(function: Function) -> None:
    """Raise UnsupportedOpError for the first op (nested blocks included) the executor has no kernel for."""
    for op in iter_ops(function):
        if op.op_type not in COMPILE_TIME and op.op_type not in KERNELS:
            raise UnsupportedOpError(op.op_type, op.name)


class Step:
    """One op, prepared: its kernel, where its arguments come from, its typed outputs."""

    __slots__ = ("op", "kernel", "args", "outs", "dtype", "shape", "shapes", "acc", "executor", "value")

    def __init__(self, op, executor: "Executor"):
        self.op, self.executor, self.value = op, executor, None
        self.outs = tuple((v.name, storage_dtype(v)) for v in op.outputs)
        self.dtype = self.outs[0][1] if self.outs else None
        self.shapes = tuple(_static_shape(v) for v in op.outputs)     # declared, None where symbolic
        self.shape = self.shapes[0] if self.shapes else None
        self.acc = accumulator(executor.accumulate, self.dtype if self.dtype is not None else np.float32)
        if op.op_type in COMPILE_TIME:
            self.kernel, self.args = None, ()
            values = (op.outputs[0].val,) if op.op_type == "const" else materialized(op)
            self.value = tuple(np.asarray(v, dtype=dt) if dt is not None else np.asarray(v)
                               for v, (_, dt) in zip(values, self.outs))
            for (name, dt), v in zip(self.outs, self.value):
                if dt == F16:
                    executor.fp16_consts[name] = v       # widened once, for the consumers that compute
            return
        self.kernel = KERNELS[op.op_type]
        args: list[tuple[str, int, Any]] = []
        for param, value in op.inputs.items():
            if isinstance(value, (list, tuple)):
                args.append((param, _LIST, tuple(v.name for v in value)))
            elif value.name in executor.fp16_consts:
                args.append((param, _VALUE, executor.fp16_consts[value.name] if op.op_type in _SELECTS
                             else executor.widened(value.name)))
            else:
                args.append((param, _VAR, value.name))
        for param, default in op.default_inputs().items():
            if param not in op.inputs and default is not None:
                args.append((param, _VALUE, np.asarray(default)))
        self.args = tuple(args)


class Executor:
    """A function prepared for repeated execution (kernels resolved, fp16 constants widened once).

    ``env`` maps var name -> value in the order values were produced during the last call. The
    plan reflects the program when it was prepared: prepare again after editing the program.
    """

    def __init__(self, function: Function, accumulate: str = "fp32",
                 inputs: Mapping[str, DeclaredInput] | None = None):
        if accumulate not in ACCUMULATE_MODES:
            raise MilguardError(f"accumulate must be one of {', '.join(ACCUMULATE_MODES)}, not {accumulate!r}")
        check_supported(function)
        self.function, self.accumulate = function, accumulate
        self.declared = dict(inputs) if inputs is not None else declared_inputs(function)
        self.env: dict[str, np.ndarray] = {}
        self.fp16_consts: dict[str, np.ndarray] = {}       # fp16 compile-time values, as stored
        self._wide: dict[str, np.ndarray] = {}             # ... and widened to float32 (exact), on first use
        self._plans: dict[int, tuple[Block, list[Step]]] = {}
        self.steps(function)

    def __call__(self, inputs: Mapping[str, Any], *, trace: bool = False) -> dict[str, np.ndarray]:
        """{output name: value}, or with ``trace`` {var name: value} for every var in program order."""
        self.env = {}
        with np.errstate(all="ignore"):    # overflow to ±inf and NaN are results here, not accidents
            outputs = self.run_block(self.function, self.bind_inputs(inputs))
        if trace:
            return dict(self.env)
        return {v.name: value for v, value in zip(self.function.outputs, outputs)}

    def widened(self, name: str) -> np.ndarray:
        """The fp16 constant ``name`` as float32, widened once per executor (not on every run)."""
        value = self._wide.get(name)
        if value is None:
            value = self._wide[name] = wide(self.fp16_consts[name])
        return value

    def steps(self, block: Block) -> list[Step]:
        plan = self._plans.get(id(block))
        if plan is None:
            plan = (block, [Step(op, self) for op in block.operations])
            self._plans[id(block)] = plan
        return plan[1]

    def run_block(self, block: Block, bindings: Mapping[Var, np.ndarray]) -> list[np.ndarray]:
        env = self.env
        for var, value in bindings.items():
            env[var.name] = value
        for step in self.steps(block):
            if step.kernel is None:                    # const / constexpr: values fixed when prepared
                for (name, _), value in zip(step.outs, step.value):
                    env[name] = value
                continue
            a = {}
            for param, kind, ref in step.args:
                a[param] = env[ref] if kind == _VAR else ([env[r] for r in ref] if kind == _LIST else ref)
            result = step.kernel(a, step)          # a tuple for several outputs, else one value
            if not isinstance(result, tuple):
                result = (result,)
            for (name, dt), shape, value in zip(step.outs, step.shapes, result):
                value = np.asarray(value)
                if shape is not None and value.shape != shape:
                    raise ExecutionError(f"op '{step.op.name}' ({step.op.op_type}) produced shape {value.shape}, "
                                         f"the program declares {shape}")
                env[name] = value.astype(dt) if dt is not None and value.dtype != dt else value
        return [env[v.name] for v in block.outputs]

    def bind_inputs(self, inputs: Mapping[str, Any]) -> dict[Var, np.ndarray]:
        """Checked (:func:`milguard.executor.inputs.check_inputs`) and cast to each input's dtype."""
        values = check_inputs(self.declared, inputs)
        bound: dict[Var, np.ndarray] = {}
        for name, var in self.function.inputs.items():
            dt = storage_dtype(var)
            value = values[name]
            bound[var] = value.astype(dt) if dt is not None and value.dtype != dt else value
        return bound


def prepare(model: Any, *, accumulate: str = "fp32", function: str = "main") -> Executor:
    """An Executor for ``function`` of ``model``, to call many times: ``prepare(m)(inputs)``.

    Raises UnsupportedOpError if any op (nested blocks included) lacks a kernel.
    """
    loaded = load(model)
    return Executor(_function(loaded.program, function), accumulate, declared(loaded, function))


def run(model: Any, inputs: Mapping[str, Any], *, trace: bool = False, accumulate: str = "fp32",
        function: str = "main") -> dict[str, np.ndarray]:
    """Execute ``function`` of ``model`` on ``inputs`` with typed fp16/fp32 semantics.

    Returns {output name: value}; with ``trace`` every var by name in program order (function
    inputs, const vars, op outputs including those of nested blocks; a loop body's vars hold
    their last iteration). Raises UnsupportedOpError before executing anything if any op
    lacks a kernel.
    """
    return prepare(model, accumulate=accumulate, function=function)(inputs, trace=trace)


def first_nonfinite(model: Any, trace: Mapping[str, np.ndarray], *,
                    function: str = "main") -> tuple[str, str, str] | None:
    """(op name, op type, var name) of the first op in program order that created a non-finite value.

    An op created it when an output holds NaN while no input does, or ±inf while every input is
    finite. Const and constexpr ops are values the model carries (a -inf attention mask), not
    events, and are skipped; ops whose values are missing from ``trace`` are skipped too.
    """
    fn = function_of(model, function)
    with np.errstate(all="ignore"):
        for op in iter_ops(fn):
            if op.op_type in COMPILE_TIME:
                continue
            outs = [(v.name, trace.get(v.name)) for v in op.outputs]
            bad = [(name, value) for name, value in outs if _has(value, "nonfinite")]
            if not bad:
                continue
            ins = [trace.get(v.name) for _, v in op_inputs(op)]
            inputs_nan = any(_has(v, "nan") for v in ins)
            inputs_finite = not any(_has(v, "nonfinite") for v in ins)
            for name, value in bad:
                if (_has(value, "nan") and not inputs_nan) or inputs_finite:
                    return op.name, op.op_type, name
    return None


def _has(value: Any, kind: str) -> bool:
    if value is None:
        return False
    value = np.asarray(value)
    if value.dtype.kind not in "fc":
        return False
    return bool(np.isnan(value).any()) if kind == "nan" else not bool(np.isfinite(value).all())
