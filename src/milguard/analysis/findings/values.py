"""Values beyond fp16's range: ``overflow``, ``nan`` (created by the op) and ``nonfinite`` (received).

From static intervals (``wanted`` is the exact result of the op on its typed inputs, ``typed`` the
result rounded to the var's dtype) and from calibration (the fp32 reference run says what the op
wants, the typed run what fp16 gives). Constants are classified by :mod:`.constants`.
"""
from __future__ import annotations

import math
from typing import Any

from ... import fp16
from ...mil import dtype_name
from ..calibrate import Calibration
from ..interval import Interval
from .constants import inf_constant
from .finding import Collector, fmt
from .operands import origin, touches_fp16


def static(c: Collector, op: Any, var: Any, wanted: Interval, typed: Interval,
           ins: list[tuple[str, Any, Interval]]) -> None:
    """nan (created here), nonfinite (received), or overflow (beyond 65504 from finite inputs)."""
    bad_in = [v for _, v, iv in ins if iv.has_inf or iv.may_nan]
    if typed.may_nan and not any(iv.may_nan for _, _, iv in ins) and touches_fp16(op):
        why = f"; input {bad_in[0].name} may be ±inf" if bad_in else ""
        c.add(op, var.name, "nan", "warning", wanted.maxabs, fp16.MAX, f"{op.op_type} may produce NaN{why}")
        return
    over = dtype_name(var) == "fp16" and wanted.maxabs > fp16.MAX
    if bad_in and (over or typed.has_inf or typed.may_nan):
        c.add(op, var.name, "nonfinite", "info", wanted.maxabs, fp16.MAX,
              f"receives ±inf/NaN from {origin(bad_in[0])}")
    elif over and op.op_type == "const":
        c.add(op, var.name, "overflow", *_constant(var, wanted))
    elif over:
        certain = wanted.lo > fp16.MAX or wanted.hi < -fp16.MAX
        c.add(op, var.name, "overflow", "error" if certain else "warning", wanted.maxabs, fp16.MAX,
              f"{op.op_type} output may reach {fmt(wanted.maxabs)} > 65504 in fp16"
              f" (static bound in [{fmt(wanted.lo)}, {fmt(wanted.hi)}])")


def calibrated_input(c: Collector, name: str, var: Any, cal: Calibration) -> None:
    """A function input that already holds values beyond 65504 in a sample."""
    ref = cal.reference.get(var.name)
    if ref is not None and dtype_name(var) == "fp16" and ref.maxabs > fp16.MAX:
        c.add(None, var.name, "overflow", "error", ref.maxabs, fp16.MAX,
              f"input {name} holds {fmt(ref.maxabs)} > 65504: it is ±inf as fp16")


def calibrated(c: Collector, op: Any, var: Any, cal: Calibration, ins: list[tuple[str, Any]]) -> None:
    """What would overflow (reference beyond 65504), NaN the reference creates, and every op that
    goes non-finite in the typed run (received: nonfinite; created: overflow or nan)."""
    ref = cal.reference.get(var.name, Interval.empty())
    broken = cal.nonfinite(var.name)
    confirm = "; the fp16 run gives inf/NaN there" if broken else "; the fp16 run stays finite"
    # a reference that is non-finite only because an input already is: propagation, below
    inherited = not ref.is_finite and any(_ref_nonfinite(cal, v.name) for _, v in ins)
    if dtype_name(var) == "fp16" and ref.maxabs > fp16.MAX and not inherited:
        if op.op_type == "const":
            c.add(op, var.name, "overflow", *_constant(var, ref))
        else:
            c.add(op, var.name, "overflow", "error", ref.maxabs, fp16.MAX,
                  f"{op.op_type} wants values up to {fmt(ref.maxabs)} (fp32 reference) > 65504" + confirm)
        return
    ref_nan_in = any(cal.reference.get(v.name, Interval.empty()).may_nan for _, v in ins)
    if ref.may_nan and not ref_nan_in and touches_fp16(op):
        rounded_inf = any(_ref_nonfinite(cal, v.name) for _, v in ins)
        c.add(op, var.name, "nan", "error", ref.maxabs, fp16.MAX,
              f"{op.op_type} produces NaN even in the fp32 reference"
              + (" (an input is ±inf after fp16 rounding)" if rounded_inf else ""))
        return
    if not broken:
        return
    bad_in = [v for _, v in ins if cal.nonfinite(v.name)]
    if bad_in:
        c.add(op, var.name, "nonfinite", "info", math.inf, fp16.MAX,
              f"receives inf/NaN from {origin(bad_in[0])} in the fp16 run")
    else:
        got = cal.actual[var.name]
        kind = "nan" if got.may_nan and not got.has_inf else "overflow"
        c.add(op, var.name, kind, "error", got.maxabs, fp16.MAX,
              f"{op.op_type} goes non-finite in the fp16 run although its fp32 reference stays "
              f"within {fmt(ref.maxabs)} (rounding or fp16 accumulation inside the op)")


def _constant(var: Any, seen: Interval) -> tuple[str, float, float, str]:
    severity, message = inf_constant(var)
    return severity, seen.maxabs, fp16.MAX, message


def _ref_nonfinite(cal: Calibration, name: str) -> bool:
    ref = cal.reference.get(name)
    return ref is not None and (ref.has_inf or ref.may_nan)
