"""Matrix products, attention and normalizations.

All sums go through the op's accumulator. fp16 hazards: a dot product of length K overflows once
its partial sums pass 65504; ``layer_norm``/``instance_norm``/``l2_norm`` square their (centred)
input, which overflows under fp16 accumulation when |x - mean| > 255.9.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .kernels_reduce import softmax
from .semantics import wide


def _linear(a, s):
    """x @ W^T + b, W of shape (out, in); leading axes of x are flattened into one GEMM."""
    x, w = wide(a["x"]), wide(a["weight"])
    out = s.acc.matmul(x.reshape(-1, x.shape[-1]), w.T).reshape(x.shape[:-1] + (w.shape[0],))
    bias = a.get("bias")
    return out if bias is None else s.acc.round(out) + wide(bias)


def _matmul(a, s):
    x, y = wide(a["x"]), wide(a["y"])
    if bool(a.get("transpose_x", False)) and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if bool(a.get("transpose_y", False)) and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return s.acc.matmul(x, y)


def _einsum(a, s):
    equation = str(a["equation"]).replace(" ", "")
    values = _broadcast_labels(equation, [wide(v) for v in a["values"]])
    if s.acc.mode == "fp32":
        return np.einsum(equation, *values, optimize=True)
    return _einsum_as_matmul(equation, values, s.acc)


def _broadcast_labels(equation: str, values: list[np.ndarray]) -> list[np.ndarray]:
    """Broadcast size-1 axes to the size the same label has in the other operand (MIL allows it)."""
    labels = equation.split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for subs, v in zip(labels, values):
        for c, n in zip(subs, v.shape):
            sizes[c] = max(sizes.get(c, 1), n)
    return [np.broadcast_to(v, [sizes[c] for c in subs]) for subs, v in zip(labels, values)]


def _einsum_as_matmul(equation: str, values: list[np.ndarray], acc) -> np.ndarray:
    """Two-operand einsum as a batched matmul, so fp16 accumulation applies to the contraction."""
    inputs, out = equation.split("->")
    lhs, rhs = inputs.split(",")
    x, y = values
    batch = [c for c in out if c in lhs and c in rhs]
    contract = [c for c in lhs if c in rhs and c not in out]
    free_x = [c for c in lhs if c not in rhs]
    free_y = [c for c in rhs if c not in lhs]
    xs = np.einsum(f"{lhs}->{''.join(batch + free_x + contract)}", x)
    ys = np.einsum(f"{rhs}->{''.join(batch + contract + free_y)}", y)
    sizes = {**dict(zip(lhs, x.shape)), **dict(zip(rhs, y.shape))}
    nb, nx, nk, ny = (int(np.prod([sizes[c] for c in g])) for g in (batch, free_x, contract, free_y))
    prod = acc.matmul(xs.reshape(nb, nx, nk), ys.reshape(nb, nk, ny))
    prod = prod.reshape([sizes[c] for c in batch + free_x + free_y])
    return np.einsum(f"{''.join(batch + free_x + free_y)}->{out}", prod)


def _sdpa(a, s):
    """softmax(Q K^T / sqrt(d) + mask) V; a boolean mask keeps True positions (False -> -inf)."""
    q, k, v = wide(a["query"]), wide(a["key"]), wide(a["value"])
    scores = s.acc.round(s.acc.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(1.0 / math.sqrt(q.shape[-1])))
    mask = a.get("attn_mask")
    if mask is not None:
        mask = np.asarray(mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else s.acc.round(scores + wide(mask))
    return s.acc.matmul(s.acc.round(softmax(scores, -1, s.acc)), v)


def _normalize(x: np.ndarray, axes, eps, acc) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over ``axes``, var the biased mean of squares."""
    mean = acc.mean(x, axes, True)
    d = acc.round(x - mean)
    var = acc.mean(acc.round(d * d), axes, True)
    return acc.round(d / acc.round(np.sqrt(acc.round(var + eps))))


def _affine(y: np.ndarray, gamma, beta, acc, shape=None) -> np.ndarray:
    if gamma is not None:
        g = wide(gamma)
        y = acc.round(y * (g.reshape(shape) if shape else g))
    if beta is not None:
        b = wide(beta)
        y = y + (b.reshape(shape) if shape else b)
    return y


def _layer_norm(a, s):
    x = wide(a["x"])
    axes = a.get("axes")
    axes = tuple(range(x.ndim)) if axes is None else tuple(int(v) % x.ndim for v in np.atleast_1d(axes))
    y = _normalize(x, axes, wide(a.get("epsilon", 1e-5)), s.acc)
    return _affine(y, a.get("gamma"), a.get("beta"), s.acc)


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    return (-1,) + (1,) * (x.ndim - 2)


def _instance_norm(a, s):
    x = wide(a["x"])
    y = _normalize(x, tuple(range(2, x.ndim)), wide(a.get("epsilon", 1e-5)), s.acc)
    return _affine(y, a.get("gamma"), a.get("beta"), s.acc, _channel_shape(x))


def _batch_norm(a, s):
    """(x - mean) / sqrt(variance + eps) * gamma + beta with per-channel running statistics."""
    x = wide(a["x"])
    shape = _channel_shape(x)
    mean, var = wide(a["mean"]).reshape(shape), wide(a["variance"]).reshape(shape)
    inv = s.acc.round(1.0 / np.sqrt(var + wide(a.get("epsilon", 1e-5))))
    y = s.acc.round(s.acc.round(x - mean) * inv)
    return _affine(y, a.get("gamma"), a.get("beta"), s.acc, shape)


def _l2_norm(a, s):
    """x / sqrt(sum(x^2) + eps) over the last three axes (leading axes are batch)."""
    x = wide(a["x"])
    axes = tuple(range(x.ndim - 3, x.ndim))
    ss = s.acc.sum(s.acc.round(x * x), axes, True)
    return x / s.acc.round(np.sqrt(s.acc.round(ss + wide(a.get("epsilon", 1e-6)))))


def _local_response_norm(a, s):
    """x / (k + alpha/size * sum over a window of `size` channels of x^2)^beta."""
    x = wide(a["x"])
    size = int(a["size"])
    alpha, beta, k = (wide(a.get(p, d)) for p, d in (("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)))
    sq = s.acc.round(x * x)
    pad = [(0, 0)] * x.ndim
    pad[1] = ((size - 1) // 2, size // 2)
    padded = np.pad(sq, pad)
    window = sum(padded[:, i:i + x.shape[1]] for i in range(size))
    return x / np.power(k + alpha / size * window, beta)


KERNELS: dict[str, Callable] = {
    "linear": _linear,
    "matmul": _matmul,
    "einsum": _einsum,
    "scaled_dot_product_attention": _sdpa,
    "layer_norm": _layer_norm,
    "instance_norm": _instance_norm,
    "batch_norm": _batch_norm,
    "l2_norm": _l2_norm,
    "local_response_norm": _local_response_norm,
}
