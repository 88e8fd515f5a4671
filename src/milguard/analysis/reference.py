"""The fp32 reference of a typed program: the same ops, every fp16 var retyped fp32.

Calibrated findings ask "which values does an op *want* to produce?" — the values it would
compute if its fp16 inputs and output had fp32's range. Running the retyped program through the
executor answers that: a var whose reference value exceeds 65504 in magnitude *would overflow*
when stored as fp16, whatever happens to it in the fp16 run (where an earlier overflow may
already have turned it into inf, NaN, or a silently wrong finite value such as rsqrt(inf) = 0).

Retyping replays every op with the builder under the same names: fp16 function inputs become
fp32 placeholders (fp16 states fp32 states), fp16 constants become fp32 constants (their values are the fp16 values; an
fp32 original that was already rounded away cannot be recovered), ``cast(dtype="fp16")``
becomes a cast to fp32 (or an identity). Var names are kept, so traces line up var by var.
Programs with control flow (nested blocks) are not retyped.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError
from ..mil import Function, Program, const_value, dtype_name, load, mb, types

_WIDE = {"fp16": "fp32"}


def widened(model: Any, function: str = "main") -> Program:
    """A new Program holding ``function`` with every fp16 var retyped fp32 (the input is untouched)."""
    program = load(model).program
    if function not in program.functions:
        raise ModelError(f"no function '{function}' in the program (has {sorted(program.functions)})")
    fn = program.functions[function]
    placeholders = {}
    for name, var in fn.inputs.items():
        dt = dtype_name(var)
        dtype = types.string_to_builtin(_WIDE.get(dt, dt)) if dt is not None else var.dtype
        if types.is_state(var.sym_type):          # a ct.StateType input stays a state, widened
            placeholders[name] = mb.state_tensor_placeholder(shape=var.shape, dtype=dtype)
        else:
            placeholders[name] = mb.placeholder(shape=var.shape, dtype=dtype, name=name)
    new = Program()
    env: dict[str, Any] = {}
    with Function(placeholders, opset_version=fn.opset_version) as out_fn:
        for name, var in fn.inputs.items():
            env[var.name] = out_fn.inputs[name]
        for op in fn.operations:
            if op.blocks:
                raise ModelError(f"cannot build the fp32 reference: op '{op.name}' ({op.op_type}) "
                                 "has nested blocks")
            _replay(op, env)
        out_fn.set_outputs([env[v.name] for v in fn.outputs])
    new.add_function(function, out_fn)
    return new


def _replay(op: Any, env: dict[str, Any]) -> None:
    if op.op_type == "const":
        val = op.outputs[0].val                   # strings (gelu's mode) stay Python values
        if (isinstance(val, np.ndarray) and val.dtype == np.float16) or isinstance(val, np.float16):
            val = np.asarray(val, dtype=np.float32)
        new = mb.const(val=val, name=op.name)
        _bind(op, [new], env)
        return
    kwargs: dict[str, Any] = {}
    for param, value in op.inputs.items():
        if isinstance(value, (list, tuple)):
            kwargs[param] = [env[v.name] if v.name in env else v for v in value]
        else:
            kwargs[param] = env.get(value.name, value)
    if op.op_type == "cast":
        target = str(const_value(op.inputs["dtype"]))
        target = _WIDE.get(target, target)
        if dtype_name(kwargs["x"]) == target:
            _bind(op, [mb.identity(x=kwargs["x"], name=op.name)], env)
            return
        kwargs["dtype"] = target
    out = getattr(mb, op.op_type)(**kwargs, name=op.name)
    _bind(op, list(out) if isinstance(out, (list, tuple)) else [out], env)


def _bind(op: Any, new_outputs: list[Any], env: dict[str, Any]) -> None:
    for old, new in zip(op.outputs, new_outputs):
        new.name = old.name
        env[old.name] = new
