"""Row norms: an upper bound on the L2 norm of every vector along a var's last axis.

Plain intervals lose the structure of attention: after a LayerNorm every row has L2 norm
sqrt(n)·|gamma| at most, but the interval of a q·kᵀ logit is K·max|q|·max|k|, as if all of q
and k were aligned at their extremes. Tracking one number per var — ``N(v) >= ||v[..., :]||₂`` —
gives Cauchy-Schwarz bounds that intervals cannot:

* layer_norm over the last axis: ``N <= max|gamma|·sqrt(n) + ||beta||₂``; the decomposed
  ``d·rsqrt(mean(d²) + eps)``: ``N <= sqrt(n)`` (the same relational rule as the intervals);
* linear / matmul by a constant W: ``N(Wx + b) <= σ_max(W)·N(x) + ||b||₂`` (spectral norm);
* q @ kᵀ: every logit is a dot product of two rows, ``|q_i·k_j| <= N(q)·N(k)``;
* softmax(·) @ v: a convex combination of rows of v, ``N <= N(v)``; ||softmax||₂ <= 1;
* reshape that splits the last axis keeps N (sub-vectors); merging k rows multiplies by sqrt(k);
  transposes that keep the last axis, slices, casts, relu/gelu/silu/tanh keep N;
* add: ``N(a) + N(b)``; mul: ``N(a)·max|b|``; otherwise ``sqrt(n)·max|v|`` from the interval.

Bounds are lazy: a var's N is computed when a consumer asks for it, so the spectral norm of a
weight is computed only when a q @ kᵀ logit (whose interval is then met with ``N(q)·N(k)``)
depends on it. Rounding: every rule
multiplies by ``1 + 2^-8`` (fp16) or ``1 + 2^-16`` (fp32) and contractions add their
accumulation error ``K·u·||W||_F·N(x)``. The soundness test runs these rules too.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from .. import fp16
from ..mil import const_value, dtype_name
from .interval import Interval
from .normalized import norm_count

NormFn = Callable[[Any, "NormContext"], "float | None"]
NORM: dict[str, NormFn] = {}
_KEEP = ("identity", "cast", "relu", "gelu", "silu", "tanh", "slice_by_index", "slice_by_size")


def norm_rule(*op_types: str) -> Callable[[NormFn], NormFn]:
    def register(fn: NormFn) -> NormFn:
        for name in op_types:
            NORM[name] = fn
        return fn
    return register


class _Pending(Exception):
    """Raised inside a rule that needs the bound of ``name``, not yet evaluated."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class NormContext:
    """The row-norm bounds computed so far, and the intervals to fall back on."""

    def __init__(self, ranges: Any, ctx: Any):
        self.ranges, self.ctx = ranges, ctx
        self.norms: dict[str, float] = {}
        self._evaluating = False                 # inside a rule: pending inputs raise _Pending

    def last(self, var: Any) -> int | None:
        shape = getattr(var, "shape", None)
        if not shape:
            return None
        d = shape[-1]
        return int(d) if isinstance(d, (int, np.integer)) else None

    def n(self, var: Any, width: int | None = None) -> float:
        """N(var) as broadcast to rows of ``width`` elements (its own last dim by default)."""
        own = self.last(var)
        width = own if width is None else width
        if width is None:
            return math.inf
        iv = self.ctx.r(var)
        generic = math.sqrt(width) * iv.maxabs if iv.is_finite else math.inf
        if own == width and var.name in self.norms:
            return min(self.norm(var.name), generic)
        return generic

    def norm(self, name: str) -> float:
        """The recorded bound of a var (evaluated on first use: rules are lazy, so spectral norms
        are computed only for weights whose bound something downstream asks for).

        A rule asks for the bounds of its inputs, which may be pending too, down a chain as long as
        the program. They are evaluated here with an explicit stack, not by recursion: a rule that
        meets a pending input raises :class:`_Pending`; the input is evaluated first and the rule
        runs again (rules are cheap and spectral norms are cached by content)."""
        val = self.norms.get(name, math.inf)
        if not callable(val):
            return val
        if self._evaluating:
            raise _Pending(name)
        stack = [name]
        while stack:
            top = stack[-1]
            thunk = self.norms.get(top)
            if not callable(thunk):
                stack.pop()
                continue
            self._evaluating = True
            try:
                val = thunk()
            except _Pending as pending:
                if pending.name in stack:          # a cycle cannot happen in a DAG; be safe anyway
                    self.norms[pending.name] = math.inf
                else:
                    stack.append(pending.name)
                continue
            finally:
                self._evaluating = False
            self.norms[top] = val if val is not None and not math.isnan(val) else math.inf
            stack.pop()
        return self.norms[name]

    def maxabs(self, var: Any) -> float:
        iv = self.ctx.r(var)
        return iv.maxabs if iv.is_finite else math.inf


@lru_cache(maxsize=512)
def _spectral(key: int, w_bytes: bytes, shape: tuple[int, ...], dtype: str) -> tuple[float, float]:
    w = np.frombuffer(w_bytes, dtype=dtype).reshape(shape).astype(np.float32)
    frob = float(np.linalg.norm(w.astype(np.float64)))
    if frob == 0.0:
        return 0.0, 0.0
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    scale = float(np.linalg.norm(gram))
    b = gram / np.float32(scale)
    for _ in range(3):                      # b = (WᵀW / scale)^8
        b = b @ b
    # λ_max^8 <= ||B^8||_F, so σ_max = sqrt(λ_max) <= sqrt(scale·||B^8||_F^(1/8)): over by at
    # most rank^(1/32) (19% at rank 256); a cheap sound stand-in for an SVD (float32 products,
    # their relative error is far inside the 1e-3 margin)
    sigma = math.sqrt(scale * float(np.linalg.norm(b)) ** (1.0 / 8)) * (1 + 1e-3)
    return min(sigma, frob), frob


def spectral(w: np.ndarray) -> tuple[float, float]:
    """(upper bound on the largest singular value, Frobenius norm) of a 2-D constant, cached by
    content."""
    w = np.ascontiguousarray(w)
    return _spectral(hash(w.tobytes()), w.tobytes(), w.shape, w.dtype.str)


def _slack(op: Any) -> float:
    return 1 + (2.0 ** -8 if any(dtype_name(v) == "fp16" for v in op.outputs) else 2.0 ** -16)


@norm_rule(*_KEEP)
def _keep(op, nc):
    x = op.inputs.get("x")
    if x is None or nc.last(x) != nc.last(op.outputs[0]):
        return None
    pad = math.sqrt(nc.last(x) or 1) * 2.0 ** -14 if op.op_type == "gelu" else 0.0
    return nc.n(x) + pad


@norm_rule("transpose")
def _transpose(op, nc):
    perm = const_value(op.inputs.get("perm"))
    if perm is None or int(np.asarray(perm).reshape(-1)[-1]) % len(op.x.shape) != len(op.x.shape) - 1:
        return None
    return nc.n(op.x)


@norm_rule("reshape")
def _reshape(op, nc):
    old, new = nc.last(op.x), nc.last(op.outputs[0])
    if old is None or new is None:
        return None
    if old % new == 0:
        return nc.n(op.x)                       # each new row lies inside one old row
    if new % old == 0:
        return math.sqrt(new // old) * nc.n(op.x)
    return None


@norm_rule("softmax")
def _softmax(op, nc):
    axis = const_value(op.inputs.get("axis"))
    rank = len(op.x.shape)
    last = axis is None or int(np.asarray(axis).reshape(-1)[0]) % rank == rank - 1
    return 1.0 if last and not nc.ctx.r(op.x).may_nan else None


@norm_rule("layer_norm")
def _layer_norm(op, nc):
    axes = const_value(op.inputs.get("axes"))
    rank = len(op.x.shape)
    if axes is None or [int(a) % rank for a in np.asarray(axes).reshape(-1)] != [rank - 1]:
        return None
    n = nc.last(op.x)
    g, b = const_value(op.inputs.get("gamma")), const_value(op.inputs.get("beta"))
    if n is None or nc.ctx.r(op.x).has_inf:
        return None
    gmax = 1.0 if g is None else float(np.abs(np.asarray(g, np.float64)).max())
    bn = 0.0 if b is None else float(np.linalg.norm(np.broadcast_to(np.asarray(b, np.float64), (n,))))
    half = nc.ctx.u(op) >= fp16.UNIT_ROUNDOFF
    core = math.sqrt(n) * (1.05 if half else 1.0 + 2.0 ** -12)
    return gmax * core + bn


@norm_rule("add", "sub")
def _add(op, nc):
    w = nc.last(op.outputs[0])
    best = nc.n(op.x, w) + nc.n(op.y, w)
    if op.op_type == "sub" and _is_row_mean_of(op.y, op.x):
        best = min(best, nc.n(op.x) * (1 + 2.0 ** -8))   # centring is a projection: ||x - x̄|| <= ||x||
    return best


def _is_row_mean_of(m: Any, x: Any) -> bool:
    """``m`` = reduce_mean(x, axes=[last], keep_dims=True)."""
    op = getattr(m, "op", None)
    if op is None or op.op_type != "reduce_mean" or op.x is not x:
        return False
    rank = len(x.shape)
    axes = const_value(op.inputs.get("axes"))
    return bool(const_value(op.inputs.get("keep_dims"))) and axes is not None and \
        [int(a) % rank for a in np.asarray(axes).reshape(-1)] == [rank - 1]


@norm_rule("mul")
def _mul(op, nc):
    w = nc.last(op.outputs[0])
    best = min(nc.n(op.x, w) * nc.maxabs(op.y), nc.n(op.y, w) * nc.maxabs(op.x))
    for d, s in ((op.x, op.y), (op.y, op.x)):
        n = norm_count(d, s, ("rsqrt", "pow"), nc.ctx)
        if n is not None and math.isfinite(n) and _reduces_last(s) and nc.last(d) == w:
            best = min(best, math.sqrt(n) * 1.01)
    return best


@norm_rule("real_div")
def _real_div(op, nc):
    w = nc.last(op.outputs[0])
    y = nc.ctx.r(op.y)
    best = math.inf
    if not y.is_empty and not y.contains_zero() and y.is_finite:
        best = nc.n(op.x, w) / min(abs(y.lo), abs(y.hi))
    n = norm_count(op.x, op.y, ("sqrt",), nc.ctx)
    if n is not None and math.isfinite(n) and _reduces_last(op.y) and nc.last(op.x) == w:
        best = min(best, math.sqrt(n) * 1.01)
    return best


def _reduces_last(s: Any) -> bool:
    """The normaliser ``s`` = f(add(mean(d², axes), eps)) reduces the last axis only."""
    mean = s.op.x.op
    mean = mean.x.op if mean.x.op is not None and mean.x.op.op_type == "reduce_mean" else mean.y.op
    rank = len(mean.x.shape)
    axes = const_value(mean.inputs.get("axes"))
    return axes is not None and [int(a) % rank for a in np.asarray(axes).reshape(-1)] == [rank - 1]


@norm_rule("linear")
def _linear(op, nc):
    w = const_value(op.inputs.get("weight"))
    if w is None or np.asarray(w).ndim != 2:
        return None
    sigma, frob = spectral(np.asarray(w))
    k = np.asarray(w).shape[1]
    b = const_value(op.inputs.get("bias"))
    bn = 0.0 if b is None else float(np.linalg.norm(np.asarray(b, np.float64)))
    nx = nc.n(op.x)
    return (sigma + k * nc.ctx.u(op) * frob) * nx + bn


@norm_rule("matmul")
def _matmul(op, nc):
    tx = bool(const_value(op.inputs.get("transpose_x")))
    ty = bool(const_value(op.inputs.get("transpose_y")))
    if tx:
        return None
    y = const_value(op.y)
    k = nc.last(op.x)
    if k is None:
        return None
    if y is not None and np.asarray(y).ndim == 2:
        w = np.asarray(y).T if not ty else np.asarray(y)         # rows: (N, K)
        sigma, frob = spectral(w)
        return (sigma + k * nc.ctx.u(op) * frob) * nc.n(op.x)
    if const_value(op.x) is not None:
        return None
    width = nc.last(op.outputs[0])
    cols = _column_norm(op.y, ty, nc)
    if cols is not None:                    # q @ kᵀ: every element is a dot of two rows
        bound = nc.n(op.x) * cols * (1 + k * nc.ctx.u(op))
        return math.sqrt(width) * bound if width is not None else None
    p = op.x.op
    if p is not None and p.op_type == "softmax" and _softmax(p, nc) == 1.0:
        return nc.n(op.y) * (1 + 2.0 ** -10 + k * nc.ctx.u(op))   # convex combination of rows
    return None


def _column_norm(y: Any, transposed: bool, nc: NormContext) -> float | None:
    """A bound on the L2 norm of the columns of the right operand of a matmul: its rows when
    ``transpose_y``, or the rows of ``t`` when y = transpose(t) moves t's last axis to y's
    second-to-last (the kᵀ coremltools emits for attention)."""
    if transposed:
        return nc.n(y)
    src = getattr(y, "op", None)
    if src is None or src.op_type != "transpose":
        return None
    perm = const_value(src.inputs.get("perm"))
    rank = len(y.shape)
    if perm is None or rank < 2:
        return None
    perm = [int(p) % rank for p in np.asarray(perm).reshape(-1)]
    if perm[-2] != rank - 1:               # y's columns must run along t's last axis
        return None
    return nc.n(src.x)


def element_bound(op: Any, nc: NormContext) -> float | None:
    """A bound on |element| beyond N itself: q @ kᵀ elements are bounded by N(q)·N(k)."""
    if op.op_type != "matmul" or bool(const_value(op.inputs.get("transpose_x"))) \
            or const_value(op.y) is not None or const_value(op.x) is not None:
        return None
    k = nc.last(op.x)
    cols = _column_norm(op.y, bool(const_value(op.inputs.get("transpose_y"))), nc)
    if k is None or cols is None:
        return None
    return nc.n(op.x) * cols * (1 + k * nc.ctx.u(op))


def refine(op: Any, nc: NormContext, results: list[Interval]) -> tuple[list[Interval], Callable | None]:
    """``op``'s interval met with its element bound (q @ kᵀ), and a lazy thunk for its row norm
    (None when no rule applies); the caller records the thunk only once the rounded interval is
    known finite."""
    if len(op.outputs) != 1 or not results:
        return results, None
    rule = NORM.get(op.op_type)
    iv = results[0]
    elem = element_bound(op, nc)
    if elem is not None and math.isfinite(elem) and not iv.is_empty:
        cap = elem * _slack(op)
        iv = iv.meet(Interval(-cap, cap, True))
    if rule is None:
        return [iv], None

    def thunk() -> float:
        try:
            bound = rule(op, nc)
        except _Pending:
            raise
        except Exception as exc:  # noqa: BLE001 - a rule bug costs the bound, not soundness
            nc.ranges.failed(op, "row-norm", exc)
            return math.inf
        return math.inf if bound is None else bound * _slack(op)
    return [iv], thunk
