"""Transfer functions: the interval of every output of an op, from the intervals of its inputs.

A registry ``op type -> fn(op, ctx) -> Interval | list[Interval]``, filled with ``@transfer``.
``ctx`` (a :class:`~milguard.analysis.ranges.Context`) gives ``ctx.r(var)`` (the interval of a
var), ``ctx.val(var)`` (its compile-time value or None) and ``ctx.count(var, axes)`` (how many
elements a reduction over ``axes`` sums; ``inf`` when a dim is symbolic).

Every function is sound over extended reals, not tight. Accumulating ops widen their result by
the worst-case rounding error of an n-term float sum, ``(n-1)·u·Σ|terms|`` (u = 2^-24 for fp32
accumulation, 2^-11 when fp16 accumulation is assumed), so an executed value never escapes its
interval by rounding. The fp16 hazards the rules encode:

* reductions: ``reduce_sum`` of n elements of [a, b] lies in [n·a, n·b] — the classic overflow of
  a sum of squares (n·mean(x²) > 65504 at n = 4096 once the RMS exceeds 4);
* matmul/linear/conv: with a constant weight W the output j lies in
  ``Σ_k [min(W_kj·lo, W_kj·hi), max(W_kj·lo, W_kj·hi)]`` (exact column sums of |W| split by sign);
  with two variable operands, K times the product interval;
* exp overflows for x > ln 65504 ≈ 11.09; pow/square overflow for |x| > 255.9;
* real_div, rsqrt, inverse, log: a denominator or argument that may be 0 makes the result
  unbounded (and 0/0 NaN);
* softmax lies in [0, 1] (tighter when the input width is finite: each of n probabilities is at
  least 1 / (1 + (n-1)·e^(hi-lo))); an input that may be -inf everywhere gives NaN;
* layer_norm: |x_i - mean| / std <= sqrt(n-1) for a population std, so the output lies within
  ``sqrt(n-1)·|gamma| + |beta|`` elementwise.

Ops with no entry here give ``Interval.top()`` and are listed as unknown by the propagation,
never treated as safe. The registry and the helpers the families share are in
:mod:`.transfer_registry`; importing this module loads the family modules, which fill it:
:mod:`.transfer_data` (constants, data movement, casts, logic, control flow),
:mod:`.transfer_elementwise`, :mod:`.transfer_reduce` (reductions, norms, softmax) and
:mod:`.transfer_contract` (matmul, linear, conv, einsum, attention).
"""
from __future__ import annotations

# the family modules fill TRANSFER when they are imported
from . import transfer_contract, transfer_data, transfer_elementwise, transfer_reduce  # noqa: F401
from .transfer_registry import TRANSFER, TransferFn, transfer

__all__ = ["TRANSFER", "TransferFn", "transfer"]
