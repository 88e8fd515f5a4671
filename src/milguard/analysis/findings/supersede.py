"""Static and calibrated findings of one function, combined.

* **One finding per fact.** A finding both analyses report identically (same op, var, kind,
  severity and message: a constant holding ±inf, an epsilon fp16 cannot hold) is listed once, with
  ``source`` ``static``: a constant is exact in the static analysis, calibration adds nothing.
* **Superseded "may" findings.** A static bound is sound for *every* input in the input ranges; a
  calibration sample is what the model really sees. A static (or ``pass``) finding of severity
  ``warning`` or ``info`` is kept with ``superseded_by: "calibration"`` — listed, but neither counted
  nor gated on — when calibration observed its var, found nothing of the same kind there, and the
  observed values clear the static claim:

  ========== =====================================================================================
  overflow   the fp32 reference and the typed run stay finite, without NaN, within the finding's limit
  nan        neither run produced NaN there (a masked -inf is not a NaN)
  nonfinite  the typed run stays finite, without NaN
  underflow  a log's ``x`` stayed at or above 6.1e-5 in the typed run
  ========== =====================================================================================

  Never superseded: ``error`` findings (every value of the static interval is out of range),
  findings on constants (exact), ``accumulation`` and ``analysis`` (structural, not about values).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

from ... import fp16
from ...mil import iter_ops
from ..calibrate import Calibration
from ..interval import Interval
from .finding import Finding
from .log_input import LOG_OPS
from .operands import x_input

SUPERSEDED_BY = "calibration"


def _clean(iv: Interval) -> bool:
    return iv.is_finite and not iv.may_nan


def _log_input_normal(f: Finding, op: Any, ref: Interval, got: Interval, cal: Calibration) -> bool:
    x = x_input(op)
    seen = cal.actual.get(x.name) if op.op_type in LOG_OPS and x is not None else None
    return seen is not None and not seen.is_empty and seen.lo >= fp16.MIN_NORMAL


CLEARED: dict[str, Callable[[Finding, Any, Interval, Interval, Calibration], bool]] = {
    "overflow": lambda f, op, ref, got, cal: _clean(ref) and _clean(got) and max(ref.maxabs, got.maxabs) <= f.limit,
    "nan": lambda f, op, ref, got, cal: not ref.may_nan and not got.may_nan,
    "nonfinite": lambda f, op, ref, got, cal: _clean(got),
    "underflow": _log_input_normal,
}


def combine(bounds: Iterable[Finding], observed: Iterable[Finding], cal: Calibration | None,
            fn: Any) -> list[Finding]:
    """``bounds`` (static or pass findings) then the ``observed`` (calibration) findings they do not
    repeat; bounds that calibration clears are marked ``superseded_by``."""
    bounds, observed = list(bounds), list(observed)
    if cal is None:
        return bounds + observed
    same = {_fact(f) for f in bounds}
    flagged = {(f.op, f.var, f.kind) for f in observed}
    producer = {v.name: op for op in iter_ops(fn) for v in op.outputs}
    out = [replace(f, superseded_by=SUPERSEDED_BY) if _cleared(f, cal, flagged, producer) else f for f in bounds]
    return out + [f for f in observed if _fact(f) not in same]


def _fact(f: Finding) -> tuple:
    return f.op, f.var, f.kind, f.severity, f.message


def _cleared(f: Finding, cal: Calibration, flagged: set, producer: dict[str, Any]) -> bool:
    op = producer.get(f.var)
    rule = CLEARED.get(f.kind)
    if rule is None or f.severity == "error" or f.source == "calibration" or f.superseded_by or op is None \
            or op.op_type == "const" or (f.op, f.var, f.kind) in flagged:
        return False
    ref, got = cal.reference.get(f.var), cal.actual.get(f.var)
    if ref is None or got is None:
        return False                      # calibration never saw the var (a branch not taken)
    return rule(f, op, ref, got, cal)
