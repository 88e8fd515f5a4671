"""``underflow`` of a log's input: a log reading fp16 values below 6.1e-5.

Probabilities under fp16's smallest normal 2^-14 = 6.1e-5 are subnormal (fewer significant bits)
or 0, and ``log(0) = -inf``: log-probabilities computed as ``log(softmax(x))`` in fp16 lose their
tail. One rule for both analyses: the static interval of ``x`` says the log *may* read such values
(warning); observed values say it *did* (error when the typed run's log gave -inf).
"""
from __future__ import annotations

import math
from typing import Any

from ... import fp16
from ...mil import dtype_name
from ..interval import Interval
from .finding import Collector, fmt
from .operands import x_input

LOG_OPS = ("log", "reduce_log_sum")


def check(c: Collector, op: Any, x_seen: Interval | None, out_seen: Interval | None = None) -> None:
    """``x_seen``: the interval of the log's ``x`` (static, or observed in the typed run);
    ``out_seen``: the observed interval of the log's output (None for the static analysis)."""
    x = x_input(op)
    if op.op_type not in LOG_OPS or x is None or x_seen is None or dtype_name(x) != "fp16":
        return
    if x_seen.is_empty or x_seen.hi <= 0 or x_seen.lo >= fp16.MIN_NORMAL:
        return
    low = max(x_seen.lo, 0.0)
    if out_seen is None:
        c.add(op, op.outputs[0].name, "underflow", "warning", low, fp16.MIN_NORMAL,
              f"{op.op_type} reads fp16 values that may be below 6.1e-5 (down to {fmt(low)}); they are "
              "subnormal or 0 in fp16 and log(0) = -inf")
        return
    hit = out_seen.lo == -math.inf
    c.add(op, op.outputs[0].name, "underflow", "error" if hit else "warning", low, fp16.MIN_NORMAL,
          f"{op.op_type} read fp16 values down to {fmt(low)} (< 6.1e-5)" + ("; log gave -inf" if hit else ""))
