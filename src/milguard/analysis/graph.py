"""A networkx snapshot of a MIL function: ops as nodes, vars as edges.

``to_networkx(model, function="main")`` returns a ``networkx.MultiDiGraph`` (a multigraph
because ``mul(x=v, y=v)`` is two edges between the same pair of nodes):

* **nodes** are op names (unique in a function) plus one node per function input
  (``op_type == "input"``; named after the input var, or ``input:<name>`` if an op has that name).
  Attributes: ``op_type``, ``outputs`` (var names), ``dtypes`` (output dtype names), ``shapes``
  (tuples; symbolic dims as strings), ``module`` (torch module the op came from, from its
  converter scopes, or None), ``pattern`` (``{"kind", "variant"}`` of the milguard pattern match
  the op belongs to, else None), ``device`` and ``placement_rule`` (expected placement, None for
  consts and inputs or when ``placement=False``), ``block`` (name of the enclosing control-flow
  op for ops of nested blocks, else None), ``order`` (position in program order).
* **edges** run producer -> consumer, keyed by the consumer's parameter name (``values[1]`` for
  list parameters) with attributes ``param``, ``var``, ``dtype``, ``shape``.

Nested blocks (``cond`` / ``while_loop`` bodies): their ops are nodes too. A value defined
outside and used inside a block is an edge from its producer to the inner consumer. A block
input (a loop-carried value) is an edge from the control-flow op itself (``param`` =
``"block_input"``); a block output is an edge from its inner producer to the control-flow op
(``param`` = ``"block_output[i]"``). The snapshot never holds live ``Operation`` objects.
"""
from __future__ import annotations

import logging
from typing import Any

import networkx as nx

from ..mil import dtype_name, iter_ops, load, module_path, op_inputs

log = logging.getLogger("milguard")


def _shape(var: Any) -> tuple | None:
    shape = getattr(var, "shape", None)
    if shape is None:
        return None
    return tuple(int(d) if isinstance(d, int) or hasattr(d, "__index__") else str(d) for d in shape)


def pattern_index(program: Any, function: str) -> dict[str, Any]:
    """{op name: Match} for the milguard pattern matches of ``function`` ({} if unavailable)."""
    from ..families import find_patterns

    out: dict[str, Any] = {}
    for m in find_patterns(program, function=function):
        for op in m.ops:
            out[op.name] = m
    return out


def placement_index(fn: Any, compute_units: str = "ALL", chip: str = "M1") -> dict[str, Any]:
    """{op name: Placement} from the placement model ({} if unavailable)."""
    try:
        from ..placement import predict
    except ImportError:
        log.info("placement model unavailable: ops carry no device")
        return {}
    return predict(fn, compute_units=compute_units, chip=chip)


def to_networkx(model: Any, function: str = "main", *, patterns: bool = True,
                placement: bool = True, compute_units: str = "ALL", chip: str = "M1") -> nx.MultiDiGraph:
    """The ``networkx.MultiDiGraph`` of ``function`` of a Program, MLModel or package path."""
    program = load(model).program
    if function not in program.functions:
        from ..errors import ModelError
        raise ModelError(f"no function '{function}' in the program (has {sorted(program.functions)})")
    fn = program.functions[function]
    matches = pattern_index(program, function) if patterns else {}
    places = placement_index(fn, compute_units, chip) if placement else {}

    g = nx.MultiDiGraph(function=function, outputs=[v.name for v in fn.outputs])
    producer: dict[str, str] = {}
    op_names = {op.name for op in iter_ops(fn)}
    for i, (name, var) in enumerate(fn.inputs.items()):
        node = var.name if var.name not in op_names else f"input:{var.name}"
        g.add_node(node, op_type="input", outputs=[var.name], dtypes=[dtype_name(var)],
                   shapes=[_shape(var)], module=None, pattern=None, device=None,
                   placement_rule=None, block=None, order=-len(fn.inputs) + i)
        producer[var.name] = node

    block_inputs: set[str] = set()
    for order, op in enumerate(iter_ops(fn)):
        m = matches.get(op.name)
        p = places.get(op.name)
        g.add_node(op.name, op_type=op.op_type, outputs=[v.name for v in op.outputs],
                   dtypes=[dtype_name(v) for v in op.outputs], shapes=[_shape(v) for v in op.outputs],
                   module=module_path(op), pattern={"kind": m.kind, "variant": m.variant} if m else None,
                   device=p.device if p else None, placement_rule=p.rule if p else None,
                   block=_outer_op_name(op), order=order)
        for inner in op.blocks:
            for var in inner.inputs:
                producer[var.name] = op.name
                block_inputs.add(var.name)
        for v in op.outputs:
            producer[v.name] = op.name
    for op in iter_ops(fn):
        for param, var in op_inputs(op):
            src = producer.get(var.name)
            if src is not None:
                g.add_edge(src, op.name, key=param,
                           param="block_input" if var.name in block_inputs else param,
                           var=var.name, dtype=dtype_name(var), shape=_shape(var))
        for inner in op.blocks:
            for i, var in enumerate(inner.outputs):
                src = producer.get(var.name)
                if src is not None and src != op.name:
                    g.add_edge(src, op.name, key=f"block_output[{i}]", param=f"block_output[{i}]",
                               var=var.name, dtype=dtype_name(var), shape=_shape(var))
    return g


def _outer_op_name(op: Any) -> str | None:
    """The control-flow op whose block holds ``op`` (None at the top level)."""
    outer = getattr(op.enclosing_block, "outer_op", None)
    return outer.name if outer is not None else None
