"""The two analyses: every rule over every op, from static intervals or from calibration."""
from __future__ import annotations

from typing import Any, Mapping

from ...mil import dtype_name, iter_ops
from ..calibrate import Calibration
from ..interval import Interval
from ..ranges import RangeMap
from . import accumulation, epsilon, log_input, neural_engine, rule_failures, values
from .finding import Collector, Finding
from .operands import FLOAT_DTYPES, float_inputs, x_input


def static_findings(fn: Any, ranges: RangeMap, matches: Mapping[str, Any] | None = None, *,
                    ane_limits: bool = False) -> list[Finding]:
    """Findings from the static intervals of ``ranges`` (computed on ``fn``), and one ``analysis``
    finding per rule that raised while computing them."""
    c = Collector(matches or {}, "static")
    for op in iter_ops(fn):
        x = x_input(op)
        x_typed = ranges.typed.get(x.name) if x is not None else None
        ins = [(p, v, ranges.typed.get(v.name, Interval.top())) for p, v in float_inputs(op)]
        for var in op.outputs:
            if dtype_name(var) not in FLOAT_DTYPES or var.name not in ranges:
                continue
            values.static(c, op, var, ranges.wanted[var.name], ranges.typed[var.name], ins)
            if ane_limits:
                neural_engine.check(c, op, var, ranges.wanted[var.name], x_typed, "warning")
        epsilon.added(c, op, ranges.typed)
        epsilon.parameter(c, op, x_typed)
        log_input.check(c, op, x_typed)
        accumulation.check(c, op)
    rule_failures.report(c, fn, ranges.failures)
    return c.items


def calibrated_findings(fn: Any, cal: Calibration, matches: Mapping[str, Any] | None = None, *,
                        ane_limits: bool = False) -> list[Finding]:
    """Findings from observed values: the fp32 reference says what would overflow, the typed
    run says what went non-finite."""
    c = Collector(matches or {}, "calibration")
    for name, var in fn.inputs.items():
        values.calibrated_input(c, name, var, cal)
    for op in iter_ops(fn):
        x = x_input(op)
        x_seen = cal.actual.get(x.name) if x is not None else None
        ins = float_inputs(op)
        for var in op.outputs:
            if var.name not in cal.actual or dtype_name(var) not in FLOAT_DTYPES:
                continue
            values.calibrated(c, op, var, cal, ins)
            ref = cal.reference.get(var.name)
            if ane_limits and ref is not None:
                neural_engine.check(c, op, var, ref, cal.reference.get(x.name) if x is not None else None,
                                    "error")
        epsilon.parameter(c, op, x_seen)
        log_input.check(c, op, x_seen, cal.actual.get(op.outputs[0].name, Interval.empty()) if op.outputs
                        else Interval.empty())
        accumulation.check(c, op)
    return c.items
