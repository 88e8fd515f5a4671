"""The explicit table op type -> kernel. An op type missing here is unsupported, never guessed."""
from __future__ import annotations

from typing import Any, Callable

from . import (kernels_control, kernels_conv, kernels_elementwise, kernels_linalg, kernels_reduce,
               kernels_resize, kernels_shape)

Kernel = Callable[[dict[str, Any], Any], Any]

_GROUPS = (kernels_elementwise, kernels_reduce, kernels_linalg, kernels_conv, kernels_resize,
           kernels_shape, kernels_control)


def _merge() -> dict[str, Kernel]:
    table: dict[str, Kernel] = {}
    for module in _GROUPS:
        clash = set(table) & set(module.KERNELS)
        if clash:
            raise RuntimeError(f"op types defined twice: {sorted(clash)}")
        table.update(module.KERNELS)
    return table


KERNELS: dict[str, Kernel] = _merge()
SUPPORTED_OPS: frozenset[str] = frozenset(KERNELS) | {"const"}
