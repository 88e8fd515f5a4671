"""Typed arithmetic: how an op whose declared output is fp16 or fp32 computes and accumulates.

Per-op rounding. Kernels compute fp16-typed ops in float32 and the executor rounds the result
to the declared output dtype once (``astype(float16)``: round to nearest even; magnitudes from
65520 up become ±inf). For a single ``+ - * /`` or ``sqrt`` on fp16 operands this is bit-identical to IEEE
half arithmetic: float32 carries more than 2·11+2 significand bits, so the double rounding
fp16 -> fp32 -> fp16 is innocuous. For transcendental functions (exp, tanh, erf, ...) the float32
result rounded to fp16 can differ from a correctly rounded half result by one ulp in rare ties.

Accumulation (reductions, matmul, linear, conv, and the sums inside softmax and the norms):

* ``"fp32"`` (default): terms are summed in float32 and the result is rounded to the output
  dtype once. Intermediate values inside a composite op (the centred input of layer_norm, the
  exponentials of softmax) stay float32.
* ``"fp16"`` (pessimistic hardware assumption): the summed axis is cut into blocks of
  :data:`FP16_BLOCK` consecutive terms; each block's partial sum (of products, for matmul/conv)
  is formed in float32 and rounded to fp16 — a dot-product unit with a wide internal adder —
  then the block partials are added one after another with fp16 rounding after every addition.
  Terms are taken in the order of the summed axis; for several reduced axes, in row-major order
  of those axes; for conv, input channel then kernel offsets; for conv_transpose the per-offset
  contributions that land on one output are added in kernel order, fp16-rounded each time.
  A partial that rounds past 65504 becomes inf and stays inf. Intermediates of the composite
  ops that sum (softmax, reduce_log_sum_exp, layer_norm, instance_norm, batch_norm, l2_norm,
  scaled_dot_product_attention, and a linear/conv result before its bias) are rounded to fp16
  after every elementary step. Elementwise activations (gelu, silu, sigmoid, ...) are one rounding
  in both modes. Ops typed fp32 always accumulate in fp32.
"""
from __future__ import annotations

import numpy as np

FP16_BLOCK = 32
ACCUMULATE_MODES = ("fp32", "fp16")

F16, F32 = np.dtype(np.float16), np.dtype(np.float32)


# Every fp16 bit pattern's float32 value: widening by table lookup is exact (NaN payloads
# included) and about 3x faster than numpy's float16 -> float32 conversion loop.
_F16_TO_F32 = np.arange(2 ** 16, dtype=np.uint16).view(F16).astype(F32)


def wide(x: np.ndarray) -> np.ndarray:
    """float16 -> float32 (exact); other dtypes unchanged. The compute dtype of fp16-typed ops."""
    x = np.asarray(x)
    return np.asarray(np.take(_F16_TO_F32, x.view(np.uint16))) if x.dtype == F16 else x


def half(x: np.ndarray) -> np.ndarray:
    """Round to fp16 and keep the value in float32: one IEEE half rounding, ±inf on overflow."""
    return wide(np.asarray(x).astype(F16))


def blasable(x: np.ndarray) -> np.ndarray:
    """A layout numpy's matmul hands to BLAS; strided views (transposed heads) would take a slow loop."""
    if x.ndim <= 2 or x.flags.c_contiguous or x.flags.f_contiguous:
        return x
    return np.ascontiguousarray(x)


def _normalize_axes(axes, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    return tuple(sorted({int(a) % ndim for a in np.atleast_1d(axes)})) if ndim else ()


class Fp32Accumulator:
    """Sums and products accumulated in float32; intermediates are not rounded."""

    mode = "fp32"

    @staticmethod
    def round(x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def sum(x: np.ndarray, axes=None, keepdims: bool = False) -> np.ndarray:
        x = wide(x)
        axes = _normalize_axes(axes, x.ndim)
        return np.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype if x.dtype.kind == "f" else None)

    def mean(self, x: np.ndarray, axes=None, keepdims: bool = False) -> np.ndarray:
        x = wide(x)
        axes = _normalize_axes(axes, x.ndim)
        count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        return self.round(self.sum(x, axes, keepdims) / np.float32(count))

    @staticmethod
    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(blasable(wide(a)), blasable(wide(b)))


class Fp16Accumulator(Fp32Accumulator):
    """fp16 accumulation: float32 partials over blocks of FP16_BLOCK terms, fp16 running sum."""

    mode = "fp16"

    def __init__(self, block: int = FP16_BLOCK):
        self.block = block

    @staticmethod
    def round(x: np.ndarray) -> np.ndarray:
        return half(x)

    def sum(self, x: np.ndarray, axes=None, keepdims: bool = False) -> np.ndarray:
        x = wide(x).astype(F32, copy=False)
        axes = _normalize_axes(axes, x.ndim)
        kept = [d for d in range(x.ndim) if d not in axes]
        moved = np.transpose(x, kept + list(axes)).reshape([x.shape[d] for d in kept] + [-1])
        k = moved.shape[-1]
        nb = -(-k // self.block)
        padded = _pad_last(moved, nb * self.block - k, axis=-1)
        partials = half(np.sum(padded.reshape(moved.shape[:-1] + (nb, self.block)), axis=-1))
        total = self._running_sum(np.moveaxis(partials, -1, 0))
        if keepdims:
            total = total.reshape([1 if d in axes else x.shape[d] for d in range(x.ndim)])
        return total

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = wide(a).astype(F32, copy=False), wide(b).astype(F32, copy=False)
        if a.ndim == 1 or b.ndim == 1:      # vectors: promote to matrices, then drop the added axes
            out = self.matmul(a[None, :] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b)
            out = out[..., 0] if b.ndim == 1 else out
            return out[..., 0, :] if a.ndim == 1 and b.ndim > 1 else (out[..., 0] if a.ndim == 1 else out)
        k = a.shape[-1]
        nb = -(-k // self.block)
        pad = nb * self.block - k
        a, b = _pad_last(a, pad, axis=-1), _pad_last(b, pad, axis=-2)
        # block partials of every output at once: (nb, ..., M, N), each rounded to fp16
        a_blocks = np.moveaxis(a.reshape(a.shape[:-1] + (nb, self.block)), -2, 0)              # nb, ..., M, B
        b_blocks = b.reshape(b.shape[:-2] + (nb, self.block, b.shape[-1]))
        b_blocks = np.moveaxis(b_blocks, -3, 0)                                                 # nb, ..., B, N
        rank = max(a_blocks.ndim, b_blocks.ndim)            # keep the block axis aligned when batch ranks differ
        a_blocks = a_blocks.reshape((nb,) + (1,) * (rank - a_blocks.ndim) + a_blocks.shape[1:])
        b_blocks = b_blocks.reshape((nb,) + (1,) * (rank - b_blocks.ndim) + b_blocks.shape[1:])
        return self._running_sum(half(np.matmul(a_blocks, b_blocks)))

    @staticmethod
    def _running_sum(partials: np.ndarray) -> np.ndarray:
        """partials[0] + partials[1] + ... in order, rounding to fp16 after every addition."""
        total = partials[0]
        for p in partials[1:]:
            total = half(total + p)
        return total


def _pad_last(x: np.ndarray, count: int, axis: int) -> np.ndarray:
    """Zero terms appended along ``axis`` so it splits into whole blocks (no copy when none are needed)."""
    if count == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, count)
    return np.pad(x, widths)


def accumulator(mode: str, out_dtype: np.dtype) -> Fp32Accumulator:
    """The accumulator an op typed ``out_dtype`` uses under ``mode``; fp32 ops always get fp32."""
    if mode == "fp16" and np.dtype(out_dtype) == F16:
        return FP16
    return FP32


FP32, FP16 = Fp32Accumulator(), Fp16Accumulator()
