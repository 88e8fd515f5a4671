"""``copy_program``: an independent copy of a pymil Program, without recursion that grows with depth.

``copy.deepcopy(program)`` follows the links of the graph — a var's producer, its consumers, the
next op — one Python frame (several, in fact) per link, so a chain of a few hundred ops
(a 2-layer LLaMA) exhausts Python's recursion limit. Here the objects of the graph (the program,
its functions and blocks, ops, vars, and the nodes of each block's op list) are first collected
by an explicit worklist and given empty shells; then each object's own state is deep-copied
with every graph object already in the memo, so that copy only descends into plain containers
and values (scopes, shapes, constants), never along the graph. The result is what
``copy.deepcopy`` would give: same op and var names, types and values, scopes (the torch module
paths milguard reads), function inputs and outputs, nested blocks, opset versions and states.
"""
from __future__ import annotations

import copy
import copyreg
import gc
from contextlib import contextmanager
from typing import Any, Iterator

from coremltools.converters.mil.mil import Block, Operation, Program, Var
from coremltools.converters.mil.mil.utils import CacheDoublyLinkedList, OpNode

GRAPH_TYPES = (Program, Block, Operation, Var, OpNode, CacheDoublyLinkedList)
_SHARED = (CacheDoublyLinkedList.INVALID_NODE,)     # sentinels compared by identity: never copied
_CONTAINERS = (list, tuple, dict, set, frozenset)


def copy_program(program: Program) -> Program:
    """A deep copy of ``program`` sharing no graph object with it (depth-independent stack use)."""
    memo: dict[int, Any] = {id(s): s for s in _SHARED}
    pending: list[tuple[Any, Any]] = []
    with _no_gc():
        for obj, (cls, state) in _graph_objects(program):
            shell = cls.__new__(cls)
            memo[id(obj)] = shell
            pending.append((shell, state))
        for shell, state in pending:
            _restore(shell, copy.deepcopy(state, memo))
    return memo[id(program)]


@contextmanager
def _no_gc():
    """The collector paused: every object allocated here stays alive, and each collection it
    would start walks the whole graph again (measured: half the copy's time at 7,500 ops)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reduce(obj: Any) -> tuple[type, Any]:
    """(class, state) as ``copy.deepcopy`` sees them; state is a dict, or (dict, slots dict)."""
    rv = obj.__reduce_ex__(4)
    if rv[0] is not copyreg.__newobj__ or len(rv[1]) != 1 or any(len(rv) > i and rv[i] is not None
                                                                  for i in (3, 4, 5)):
        raise TypeError(f"cannot copy a {type(obj).__name__}: unexpected pickling protocol {rv[0]!r}")
    return rv[1][0], rv[2] if len(rv) > 2 else None


def _restore(shell: Any, state: Any) -> None:
    if state is None:
        return
    attrs, slots = state if isinstance(state, tuple) else (state, None)
    if attrs:
        shell.__dict__.update(attrs)
    for name, value in (slots or {}).items():
        setattr(shell, name, value)


def _graph_objects(root: Any) -> Iterator[tuple[Any, tuple[type, Any]]]:
    """(object, (class, state)) for every graph object reachable from ``root`` through object
    state and plain containers."""
    seen = {id(s) for s in _SHARED}
    seen.add(id(root))
    stack = [root]
    while stack:
        obj = stack.pop()
        reduced = _reduce(obj)
        yield obj, reduced
        values = [reduced[1]]
        while values:
            value = values.pop()
            if isinstance(value, GRAPH_TYPES):
                if id(value) not in seen:
                    seen.add(id(value))
                    stack.append(value)
            elif isinstance(value, dict):
                values.extend(value.keys())
                values.extend(value.values())
            elif isinstance(value, _CONTAINERS):
                values.extend(value)
