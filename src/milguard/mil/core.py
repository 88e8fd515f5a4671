"""Read-only views of MIL programs: dtypes, constants, op inputs, nested blocks, provenance.

The coremltools names imported here are listed, with their public alternatives, in
:mod:`milguard.mil.private_names`."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from coremltools import PassPipeline
from coremltools.converters.mil import Block, Builder as mb, Function, Operation, Program, Var
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY, register_pass
from coremltools.converters.mil.mil.scope import ScopeSource


def dtype_name(var: Var) -> str | None:
    """'fp16', 'fp32', 'int32', 'bool', ... for tensors and scalars; None for lists, states, tuples.

    A var's dtype follows from its class and its current type, so the name is remembered per
    (class, type): coremltools' type queries cost about 50 µs, and an audit asks thousands of times."""
    try:
        key = (type(var), var.sym_type)
        return _DTYPE_NAMES[key]
    except KeyError:
        pass
    except (TypeError, AttributeError):   # an unhashable type, or no sym_type: ask every time
        return _dtype_name(var)
    if len(_DTYPE_NAMES) >= _DTYPE_NAMES_MAX:
        _DTYPE_NAMES.clear()
    name = _DTYPE_NAMES[key] = _dtype_name(var)
    return name


_DTYPE_NAMES: dict[tuple[type, object], str | None] = {}
_DTYPE_NAMES_MAX = 4096


def _dtype_name(var: Var) -> str | None:
    try:
        return types.builtin_to_string(var.dtype)
    except Exception:  # noqa: BLE001 - non-tensor types have no dtype string
        return None


def np_dtype(name: str) -> type:
    """numpy dtype for a MIL dtype name ('fp16' -> np.float16)."""
    return types.nptype_from_builtin(types.string_to_builtin(name))


def const_value(var: Var | None) -> np.ndarray | None:
    """The value of a var whose value is known at compile time (a const or a folded expression)."""
    if var is None or not isinstance(var, Var):
        return None
    val = var.val
    if val is None:
        return None
    try:
        return np.asarray(val)
    except Exception:  # noqa: BLE001 - symbolic values are not constants
        return None


def op_inputs(op: Operation) -> list[tuple[str, Var]]:
    """(parameter, var) for every input var of an op; list-valued parameters give 'name[i]'."""
    out: list[tuple[str, Var]] = []
    for param, value in op.inputs.items():
        if isinstance(value, (list, tuple)):
            out.extend((f"{param}[{i}]", v) for i, v in enumerate(value))
        else:
            out.append((param, value))
    return out


def iter_blocks(block: Block) -> Iterator[Block]:
    """The block itself, then every nested block (cond / while_loop bodies), depth first."""
    yield block
    for op in list(block.operations):
        for inner in op.blocks:
            yield from iter_blocks(inner)


def iter_ops(block: Block, recursive: bool = True) -> Iterator[Operation]:
    """Ops of a block in program order; with ``recursive``, ops of nested blocks follow their parent op."""
    for op in list(block.operations):
        yield op
        if recursive:
            for inner in op.blocks:
                yield from iter_ops(inner, recursive=True)


def module_path(op: Operation) -> str | None:
    """The torch module an op came from, as a dotted path ('0.norm'), from its converter scopes.

    The torch frontend records, per op, the module names from the traced root down to the module
    that emitted it, followed by the name of the torch value; the value name is dropped here.
    """
    scopes = getattr(op, "scopes", None) or {}
    names = [n for n in scopes.get(ScopeSource.TORCHSCRIPT_MODULE_NAME, [])[:-1] if n]
    return ".".join(names) or None


def module_type(op: Operation) -> str | None:
    """The class name of the torch module an op came from ('RMSNorm'), or None."""
    scopes = getattr(op, "scopes", None) or {}
    kinds = [n for n in scopes.get(ScopeSource.TORCHSCRIPT_MODULE_TYPE, [])[:-1] if n]
    return kinds[-1] if kinds else None


def op_params(op_type: str) -> frozenset[str] | None:
    """Parameter names of a MIL op type across all opsets; None when the op type does not exist."""
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    versions = SSAOpRegistry.core_ops.get(op_type)
    if not versions:
        return None
    names: set[str] = set()
    for cls in versions.values():
        if cls is not None:
            names.update(cls.input_spec.input_types.keys())
    return frozenset(names)


# ``common::add_fp16_cast`` replaces an op it converts by a copy named with this suffix.
FP16_CAST_SUFFIX = "_cast_fp16"


def drop_pass(pipeline: PassPipeline, name: str) -> None:
    """Remove every occurrence of a pass and its options (``remove_passes`` keeps the options,
    which ``validate()`` then rejects)."""
    pipeline.remove_passes([name])
    pipeline.get_all_options().pop(name, None)      # the pipeline's own dict, not a copy
