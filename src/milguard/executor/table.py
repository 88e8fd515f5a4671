"""The explicit table op type -> kernel. An op type missing here is unsupported, never guessed."""
from __future__ import annotations

from typing import Any, Callable

from . import (kernels_control, kernels_conv, kernels_elementwise, kernels_linalg, kernels_quant,
               kernels_reduce, kernels_resize, kernels_shape)

Kernel = Callable[[dict[str, Any], Any], Any]

_GROUPS = (kernels_elementwise, kernels_reduce, kernels_linalg, kernels_conv, kernels_resize,
           kernels_shape, kernels_quant, kernels_control)


def _merge() -> dict[str, Kernel]:
    table: dict[str, Kernel] = {}
    for module in _GROUPS:
        clash = set(table) & set(module.KERNELS)
        if clash:
            raise RuntimeError(f"op types defined twice: {sorted(clash)}")
        table.update(module.KERNELS)
    return table


KERNELS: dict[str, Kernel] = _merge()

# Ops without runtime inputs: their values are taken once, when a function is prepared.
COMPILE_TIME: frozenset[str] = frozenset({
    "const",
    "constexpr_affine_dequantize", "constexpr_cast", "constexpr_lut_to_dense", "constexpr_sparse_to_dense",
    "constexpr_blockwise_shift_scale", "constexpr_lut_to_sparse", "constexpr_sparse_blockwise_shift_scale",
})
SUPPORTED_OPS: frozenset[str] = frozenset(KERNELS) | COMPILE_TIME
