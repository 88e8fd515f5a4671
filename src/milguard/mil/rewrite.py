"""Graph edits: rebuilding ops with new inputs, casting, rewiring, removing — with provenance kept."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
from coremltools.converters.mil import Block, Builder as mb, Operation, Var
from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

from .core import iter_ops, np_dtype


@contextmanager
def scopes_like(op: Operation) -> Iterator[None]:
    """Ops built inside carry ``op``'s torch provenance (essential scopes of torch programs)."""
    infos = [ScopeInfo(source=src, data=list(data)) for src, data in (op.scopes or {}).items()
             if data and src != ScopeSource.COREMLTOOLS_GRAPH_PASS]
    if not infos:
        yield
        return
    with mb.scope(*infos):
        yield


def rebuild(op: Operation, inputs: dict[str, Any], name: str) -> list[Var]:
    """A copy of ``op`` with ``inputs`` (same op type, same other inputs), inserted before ``op``."""
    kwargs = dict(op.inputs)
    kwargs.update(inputs)
    kwargs.pop("name", None)
    with scopes_like(op):
        out = getattr(mb, op.op_type)(**kwargs, name=name, before_op=op)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def cast(var: Var, dtype: str, before: Operation, name: str, like: Operation | None = None) -> Var:
    """``cast(var, dtype)`` inserted before ``before``."""
    with scopes_like(like or before):
        return mb.cast(x=var, dtype=dtype, name=name, before_op=before)


def replace_uses(block: Block, anchor: Operation, old: Var, new: Var) -> None:
    """Every use of ``old`` after ``anchor`` (nested blocks and block outputs included) reads ``new``."""
    block.replace_uses_of_var_after_op(anchor_op=anchor, old_var=old, new_var=new, force_replace=True)


def remove(block: Block, ops: list[Operation]) -> None:
    block.remove_ops(ops)


def names_in(block: Block) -> set[str]:
    """Every op and var name of the function that holds ``block`` (names are unique per function)."""
    while getattr(block, "outer_op", None) is not None:
        block = block.outer_op.enclosing_block
    ops = list(iter_ops(block))
    return {op.name for op in ops} | {v.name for op in ops for v in op.outputs} | set(
        getattr(block, "inputs", {}).keys())


def fresh(taken: set[str], base: str) -> str:
    """``base``, or ``base_1``, ``base_2`` ...: the first name not in ``taken`` (which it joins)."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name



class Emit:
    """Builds MIL ops in front of an anchor op, for a rewrite: ``emit.reduce_max(x=v, axes=[-1])``.

    Every op is inserted before ``anchor``, carries the anchor's torch provenance and gets a fresh
    name ``<base>_<n>_<op type>``. ``emit.const(value)`` gives a constant in the float dtype of the
    rewritten value (``float_dtype``), so a rewrite builds the same graph in an fp32 program (before
    ``common::add_fp16_cast``) and in an fp16 one (a saved package).
    """

    def __init__(self, anchor: Operation, taken: set[str], base: str, float_dtype: str):
        self.anchor, self.taken, self.base, self.float_dtype = anchor, taken, base, float_dtype
        self.count = 0                         # ops built so far (numbers their names)

    def const(self, value: Any) -> Any:
        return np.asarray(value, dtype=np_dtype(self.float_dtype))

    def op(self, op_type: str, **kwargs: Any) -> Any:
        name = fresh(self.taken, f"{self.base}_{self.count}_{op_type}")
        with scopes_like(self.anchor):
            out = getattr(mb, op_type)(**kwargs, name=name, before_op=self.anchor)
        self.count += 1
        return out

    def __getattr__(self, op_type: str) -> Any:
        if op_type.startswith("_"):
            raise AttributeError(op_type)
        return lambda **kwargs: self.op(op_type, **kwargs)


def remove_unused(block: Block, ops: list[Operation]) -> list[Operation]:
    """Remove those of ``ops`` (all in ``block``) whose outputs nothing outside the removed set
    reads and the block does not return; returns the removed ops."""
    outputs = set(block.outputs)
    dead: set[Operation] = set()
    for op in reversed(ops):
        if any(v in outputs for v in op.outputs):
            continue
        if all(child in dead for v in op.outputs for child in v.child_ops):
            dead.add(op)
    gone = [op for op in ops if op in dead]
    if gone:
        block.remove_ops(gone)
    return gone
