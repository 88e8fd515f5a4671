"""``accumulation``: a reduction that sums more than 2^11 = 2048 fp16 elements.

fp16 has an 11-bit significand: once a running fp16 sum is 2048 times larger than the terms,
adding a term changes nothing (the same 2048 is where Neural Engine integer reductions stop
being exact, sbryngelson/ANEForge#115). The executor's default accumulates in fp32; this finding
is about hardware that does not.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ... import fp16
from ...mil import const_value, dtype_name
from ..ranges import Context
from .finding import Collector, fmt

REDUCTIONS = ("reduce_sum", "reduce_mean", "reduce_sum_square", "reduce_l1_norm", "reduce_l2_norm",
              "reduce_log_sum", "reduce_log_sum_exp", "cumsum", "softmax")
SINGLE_AXIS = ("softmax", "cumsum")      # an ``axis`` parameter (default -1) instead of ``axes``


def check(c: Collector, op: Any) -> None:
    if op.op_type not in REDUCTIONS:
        return
    x = op.inputs.get("x")
    if x is None or dtype_name(x) != "fp16" or dtype_name(op.outputs[0]) != "fp16":
        return
    if op.op_type in SINGLE_AXIS:
        axis = op.inputs.get("axis")
        axes = [int(np.asarray(const_value(axis)).reshape(-1)[0])] if axis is not None else [-1]
    else:
        a = op.inputs.get("axes")
        axes = None if a is None else [int(v) for v in np.asarray(const_value(a)).reshape(-1)]
    n = Context.count(x, axes)
    if n > fp16.ABSORPTION:
        c.add(op, op.outputs[0].name, "accumulation", "warning", n, fp16.ABSORPTION,
              f"{op.op_type} sums {fmt(n)} fp16 elements; a running fp16 sum stops absorbing "
              f"terms 2048x smaller than itself")
