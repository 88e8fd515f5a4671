"""Epsilons that fp16 cannot hold: ``underflow`` of a small positive constant.

An epsilon below fp16's smallest normal 2^-14 = 6.10e-5 is subnormal: with ``e = 2^-24·m`` it
keeps only ``floor(log2(e / 2^-24)) + 1`` significant bits; below half of 2^-24 = 5.96e-8 it is 0,
and ``rsqrt(var + 0)`` is inf on a constant row. Checked where an epsilon matters: added to a
non-negative value in fp16 (``variance + eps``), and the ``epsilon`` parameter of the norm ops (their
variance may always be 0) and of rsqrt/inverse/log (only when their ``x`` may reach 0).

The finding's ``var`` is the epsilon constant itself: it is a fact about the program, which no
calibration sample can supersede.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import fp16
from ...mil import const_value, dtype_name
from ..interval import Interval
from .finding import Collector

EPSILON_OPS = ("rsqrt", "inverse", "log", "layer_norm", "batch_norm", "instance_norm", "l2_norm")
ONLY_AT_ZERO = ("rsqrt", "inverse", "log")      # their epsilon matters only when x may reach 0
SUBNORMAL_OK_BITS = 7          # a subnormal epsilon with >= 7 bits is within 1% of its value


def added(c: Collector, op: Any, typed: dict[str, Interval]) -> None:
    """``variance + eps`` in fp16: a small constant added to a non-negative value."""
    if op.op_type != "add" or dtype_name(op.outputs[0]) != "fp16":
        return
    for a, b in ((op.x, op.y), (op.y, op.x)):
        eps = const_value(a)
        other = typed.get(b.name)
        if eps is not None and other is not None and const_value(b) is None and other.lo >= 0:
            _small(c, op, a, eps)


def parameter(c: Collector, op: Any, x_reach: Interval | None) -> None:
    """The ``epsilon`` parameter; ``x_reach`` is the interval of ``x`` (static or observed)."""
    if op.op_type not in EPSILON_OPS:
        return
    e = op.inputs.get("epsilon")
    if e is None or dtype_name(e) != "fp16" or const_value(e) is None:
        return
    if op.op_type in ONLY_AT_ZERO and x_reach is not None and x_reach.lo > 0:
        return
    _small(c, op, e, const_value(e), allow_zero=True)


def _small(c: Collector, op: Any, var: Any, eps: np.ndarray, allow_zero: bool = False) -> None:
    e = np.asarray(eps, np.float64).reshape(-1)
    if e.size == 0 or e.size > 16 or np.any(e < 0):
        return
    small = float(e.max())
    if small >= fp16.MIN_NORMAL or (small == 0 and not allow_zero):
        return
    if small == 0:
        msg = f"epsilon of {op.op_type} is 0 in fp16 (a value below 2.98e-8 was rounded away)"
        sev = "warning"
    else:
        bits = max(int(math.floor(math.log2(small / fp16.MIN_SUBNORMAL))) + 1, 1)
        msg = (f"epsilon {small:.3g} is subnormal in fp16 (below 6.1e-5): it keeps only "
               f"{bits} significant bits")
        sev = "info" if bits >= SUBNORMAL_OK_BITS else "warning"
    c.add(op, var.name, "underflow", sev, small, fp16.MIN_NORMAL, msg)
