"""FLOP estimates per MIL op, as a table from op type to a formula.

One multiply-accumulate counts as 2 FLOPs. ``n`` below is the element count of the op's
first output, ``n_in`` that of its ``x`` input.

=========================  ===============================================================
op type                    FLOPs
=========================  ===============================================================
matmul                     2 · n · K, K the contracted extent of ``x`` (its last axis, or
                           the second to last with ``transpose_x``)
linear                     2 · n · K (K = ``x.shape[-1]``), + n for the bias
einsum                     2 · n · ∏ contracted extents (letters in the inputs, not in the
                           output)
conv                       2 · n · (C_in / groups) · ∏ kernel, + n for the bias
conv_transpose             2 · n_in · (C_out / groups) · ∏ kernel
scaled_dot_product_attn    4 · B·H·L·S·E (QKᵀ and ·V) + 5 · B·H·L·S (softmax)
softmax                    5 · n (max, subtract, exp, sum, divide)
layer_norm, instance_norm  8 · n (mean, centre, square, mean, eps, rsqrt, scale, shift)
l2_norm, batch_norm        3 · n, 2 · n
reduce_*                   n_in (one op per element read)
pooling                    n · ∏ kernel
element-wise, activations  n (transcendentals count as one FLOP: the ANE evaluates them
                           with a lookup table, O13)
data movement, casts,      0 (they cost bytes, not FLOPs; the cost model charges bytes)
gather, shape ops
=========================  ===============================================================

The estimate ignores dynamic shapes (0 FLOPs) and is only used for shares and relative cost.
"""
from __future__ import annotations

import math
import re
from typing import Callable

from milguard.mil import Operation, const_value
from milguard.mil.shapes import numel, shape_of

Formula = Callable[[Operation], float]

ELEMENTWISE = frozenset({
    "abs", "acos", "add", "asin", "atan", "atanh", "ceil", "clamped_relu", "clip", "cos", "cosh",
    "elu", "equal", "erf", "exp", "exp2", "floor", "floor_div", "gelu", "greater",
    "greater_equal", "inverse", "leaky_relu", "less", "less_equal", "linear_activation", "log",
    "logical_and", "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "mod", "mul",
    "not_equal", "pow", "prelu", "real_div", "relu", "relu6", "round", "rsqrt", "scaled_tanh",
    "select", "sigmoid", "sigmoid_hard", "sign", "silu", "sin", "sinh", "softplus",
    "softplus_parametric", "softsign", "sqrt", "square", "sub", "tan", "tanh", "threshold",
    "thresholded_relu", "quantize", "dequantize",
})
REDUCTIONS = frozenset({
    "reduce_argmax", "reduce_argmin", "reduce_l1_norm", "reduce_l2_norm", "reduce_log_sum",
    "reduce_log_sum_exp", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum",
    "reduce_sum_square",
})


def _out(op: Operation) -> int:
    return numel(op.outputs[0]) if op.outputs else 0


def _in(op: Operation) -> int:
    x = op.inputs.get("x")
    return numel(x) if x is not None and not isinstance(x, (list, tuple)) else 0


def _dim(var, axis: int) -> int:
    shape = shape_of(var) if var is not None else None
    try:
        return int(shape[axis])
    except (TypeError, IndexError, ValueError):
        return 0


def _flag(op: Operation, name: str) -> bool:
    val = const_value(op.inputs.get(name))
    return bool(val) if val is not None else False


def _matmul(op: Operation) -> float:
    k = _dim(op.inputs["x"], -2 if _flag(op, "transpose_x") else -1)
    return 2.0 * _out(op) * k


def _linear(op: Operation) -> float:
    bias = _out(op) if op.inputs.get("bias") is not None else 0
    return 2.0 * _out(op) * _dim(op.inputs["x"], -1) + bias


def _einsum(op: Operation) -> float:
    equation = str(const_value(op.inputs.get("equation")) or "")
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    sizes: dict[str, int] = {}
    for term, var in zip(lhs.split(","), op.inputs.get("values", ())):
        shape = shape_of(var) or ()
        for letter, dim in zip(re.sub(r"[^a-zA-Z]", "", term), shape):
            sizes[letter] = int(dim) if not isinstance(dim, str) else 0
    contracted = math.prod(sizes[c] for c in set(sizes) - set(rhs)) if sizes else 0
    return 2.0 * _out(op) * contracted


def _conv(op: Operation) -> float:
    weight_shape = shape_of(op.inputs["weight"]) or ()
    per_output = math.prod(int(d) for d in weight_shape[1:]) if len(weight_shape) > 1 else 0
    bias = _out(op) if op.inputs.get("bias") is not None else 0
    return 2.0 * _out(op) * per_output + bias


def _conv_transpose(op: Operation) -> float:
    weight_shape = shape_of(op.inputs["weight"]) or ()
    per_input = math.prod(int(d) for d in weight_shape[1:]) if len(weight_shape) > 1 else 0
    return 2.0 * _in(op) * per_input


def _sdpa(op: Operation) -> float:
    q, k = op.inputs["query"], op.inputs["key"]
    scores = numel(q) // max(_dim(q, -1), 1) * _dim(k, -2)        # B·H·L·S
    return 4.0 * scores * _dim(q, -1) + 5.0 * scores


def _pool(op: Operation) -> float:
    kernel = const_value(op.inputs.get("kernel_sizes"))
    return float(_out(op) * (math.prod(int(k) for k in kernel) if kernel is not None else 1))


FLOPS: dict[str, Formula] = {
    "matmul": _matmul,
    "linear": _linear,
    "einsum": _einsum,
    "conv": _conv,
    "conv_quantized": _conv,
    "conv_transpose": _conv_transpose,
    "scaled_dot_product_attention": _sdpa,
    "softmax": lambda op: 5.0 * _out(op),
    "layer_norm": lambda op: 8.0 * _out(op),
    "instance_norm": lambda op: 8.0 * _out(op),
    "local_response_norm": lambda op: 8.0 * _out(op),
    "l2_norm": lambda op: 3.0 * _out(op),
    "batch_norm": lambda op: 2.0 * _out(op),
    "avg_pool": _pool,
    "max_pool": _pool,
    "l2_pool": _pool,
    **{t: (lambda op: float(_in(op))) for t in REDUCTIONS},
    **{t: (lambda op: float(_out(op))) for t in ELEMENTWISE},
}


def flops(op: Operation) -> float:
    """Estimated FLOPs of one op; 0 for data movement, casts and op types not in the table."""
    formula = FLOPS.get(op.op_type)
    if formula is None or not op.outputs:
        return 0.0
    try:
        return float(formula(op))
    except (KeyError, TypeError, ValueError):
        return 0.0
