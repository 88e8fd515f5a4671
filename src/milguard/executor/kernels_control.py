"""Control flow and state: ``cond`` / ``while_loop`` run nested blocks; ``read_state`` /
``coreml_update_state`` read and write a stateful model's state (e.g. a KV cache) in the trace."""
from __future__ import annotations

from typing import Callable

import numpy as np


def _cond(a, s):
    """Run the true block (blocks[0]) or the false block (blocks[1]); their outputs are the op's."""
    block = s.op.blocks[0] if bool(np.asarray(a["pred"])) else s.op.blocks[1]
    return tuple(s.executor.run_block(block, {}))


def _while_loop(a, s):
    """loop_vars -> while cond_block(vars): vars = body_block(vars); the final vars are the outputs."""
    cond_block, body_block = s.op.blocks
    values = tuple(a["loop_vars"])
    while bool(np.asarray(s.executor.run_block(cond_block, dict(zip(cond_block.inputs, values)))[0])):
        values = tuple(s.executor.run_block(body_block, dict(zip(body_block.inputs, values))))
    return values


def _update_state(a, s):
    """Store ``value`` as the state's new value (under the state var's name) and return it."""
    state = s.op.inputs["state"]
    value = np.asarray(a["value"])
    s.executor.env[state.name] = value.astype(s.dtype) if s.dtype is not None else value
    return value


KERNELS: dict[str, Callable] = {
    "cond": _cond,
    "while_loop": _while_loop,
    "read_state": lambda a, s: a["input"],
    "coreml_update_state": _update_state,
}
