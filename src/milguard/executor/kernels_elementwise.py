"""Elementwise kernels: unary math, binary arithmetic, comparisons, logic, activations, cast.

Each kernel computes in float32 for fp16 operands (see ``semantics``); the executor rounds the
result to the op's declared output dtype. fp16 hazards live here: ``pow(x, 2)``/``square``
overflow once |x| > 255.9, ``exp`` once x > 11.09, ``inverse``/``real_div`` by values below
6.1e-5 in magnitude leave the normal fp16 range.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .semantics import wide

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4] (outside, erf is ±1 in float32): the float32 rational
# approximation of Eigen / XLA (generic_fast_erf_float); max relative error 4.2e-7 against math.erf.
_ERF_P = tuple(np.float32(v) for v in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                        -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                        -1.60960333262415e-02))
_ERF_Q = tuple(np.float32(v) for v in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                        -7.37332916720468e-03, -1.42647390514189e-02))


def erf(x: np.ndarray) -> np.ndarray:
    """Error function in float32, vectorized (relative error below 5e-7)."""
    x = np.clip(np.asarray(x, dtype=np.float32), np.float32(-4), np.float32(4))
    x2 = x * x
    p = _ERF_P[0]
    for coef in _ERF_P[1:]:
        p = p * x2 + coef
    q = _ERF_Q[0]
    for coef in _ERF_Q[1:]:
        q = q * x2 + coef
    return x * p / q


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A per-channel parameter (C,) broadcast over axis -3 of x (rank >= 3)."""
    v = wide(np.asarray(v))
    return v.reshape((-1,) + (1,) * 2) if v.ndim == 1 and x.ndim >= 3 else v


def _unary(fn: Callable[[np.ndarray], np.ndarray]):
    return lambda a, s: fn(wide(a["x"]))


def _unary_eps(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    return lambda a, s: fn(wide(a["x"]), wide(a["epsilon"]))


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    return lambda a, s: fn(wide(a["x"]), wide(a["y"]))


def _xa(fn: Callable[..., np.ndarray], *params: str):
    return lambda a, s: fn(wide(a["x"]), *(wide(a[p]) for p in params))


def _gelu(a, s):
    x, mode = wide(a["x"]), str(a.get("mode", "EXACT"))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.float32(_SQRT_2_OVER_PI) * (x + np.float32(0.044715) * x * x * x)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(np.float32(1.702) * x)
    return (0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(x.dtype)


def _select(a, s):
    return np.where(a["cond"], wide(a["a"]), wide(a["b"]))


def _clip(a, s):
    return np.minimum(np.maximum(wide(a["x"]), wide(a["alpha"])), wide(a["beta"]))


def _cast(a, s):
    """Casting itself happens when the executor stores the result in the declared output dtype."""
    return a["x"]


def _softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _prelu(a, s):
    x = wide(a["x"])
    return np.where(x > 0, x, _per_channel(a["alpha"], x) * x)


def _softplus_parametric(a, s):
    x = wide(a["x"])
    return _per_channel(a["alpha"], x) * _softplus(_per_channel(a["beta"], x) * x)


KERNELS: dict[str, Callable] = {
    # unary math
    "abs": _unary(np.abs), "acos": _unary(np.arccos), "asin": _unary(np.arcsin),
    "atan": _unary(np.arctan), "atanh": _unary(np.arctanh), "ceil": _unary(np.ceil),
    "cos": _unary(np.cos), "cosh": _unary(np.cosh), "exp": _unary(np.exp), "exp2": _unary(np.exp2),
    # round: half to even, as coremltools' own value inference
    "floor": _unary(np.floor), "round": _unary(np.round), "sign": _unary(np.sign),
    "sin": _unary(np.sin), "sinh": _unary(np.sinh), "sqrt": _unary(np.sqrt),
    "square": _unary(lambda x: x * x), "tan": _unary(np.tan), "tanh": _unary(np.tanh),
    "erf": _unary(lambda x: erf(x).astype(x.dtype)), "logical_not": _unary(np.logical_not),
    "rsqrt": _unary_eps(lambda x, e: 1.0 / np.sqrt(x + e)),
    "inverse": _unary_eps(lambda x, e: 1.0 / (x + e)),
    "log": _unary_eps(lambda x, e: np.log(x + e)),
    "threshold": _xa(np.maximum, "alpha"),
    "clip": _clip,
    "cast": _cast,
    "identity": lambda a, s: a["x"],
    # binary arithmetic and comparisons (numpy broadcasting = MIL broadcasting)
    "add": _binary(np.add), "sub": _binary(np.subtract), "mul": _binary(np.multiply),
    "real_div": _binary(np.true_divide), "floor_div": _binary(np.floor_divide),
    "mod": _binary(np.mod), "pow": _binary(np.power),
    "maximum": _binary(np.maximum), "minimum": _binary(np.minimum),
    "equal": _binary(np.equal), "not_equal": _binary(np.not_equal),
    "greater": _binary(np.greater), "greater_equal": _binary(np.greater_equal),
    "less": _binary(np.less), "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and), "logical_or": _binary(np.logical_or),
    "logical_xor": _binary(np.logical_xor),
    "select": _select,
    # activations
    "relu": _unary(lambda x: np.maximum(x, np.zeros((), x.dtype))),
    "relu6": _unary(lambda x: np.clip(x, 0, 6).astype(x.dtype)),
    "sigmoid": _unary(_sigmoid),
    "silu": _unary(lambda x: x * _sigmoid(x)),
    "softplus": _unary(_softplus),
    "softsign": _unary(lambda x: x / (1.0 + np.abs(x))),
    "gelu": _gelu,
    "leaky_relu": _xa(lambda x, al: np.where(x >= 0, x, al * x), "alpha"),
    "elu": _xa(_elu, "alpha"),
    "thresholded_relu": _xa(lambda x, al: np.where(x > al, x, np.zeros((), x.dtype)), "alpha"),
    "linear_activation": _xa(lambda x, al, be: al * x + be, "alpha", "beta"),
    "scaled_tanh": _xa(lambda x, al, be: al * np.tanh(be * x), "alpha", "beta"),
    "sigmoid_hard": _xa(lambda x, al, be: np.minimum(np.maximum(al * x + be, 0), 1), "alpha", "beta"),
    "clamped_relu": _xa(lambda x, al, be: np.minimum(np.maximum(x, 0), be) + np.minimum(np.minimum(x, 0) * al, be),
                        "alpha", "beta"),
    "prelu": _prelu,
    "softplus_parametric": _softplus_parametric,
}
