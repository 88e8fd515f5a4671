"""fp16 risk findings per op, from static ranges or from calibration.

Kinds (``Finding.kind``):

* ``overflow`` — a value of an fp16-typed var may exceed ±65504 (it is stored as ±inf). With
  ``ane_limits=True`` lower Neural Engine limits apply too (:data:`ANE_LIMITS`).
* ``nan`` — the op itself may create NaN (``inf - inf``, ``0·inf``, ``0/0``, softmax of a row
  that is -inf everywhere, sqrt/log of a negative) in an op touching fp16.
* ``nonfinite`` — the op receives inf/NaN from upstream and passes it on (severity ``info``; the
  root cause has its own finding, named in the message).
* ``underflow`` — a small positive epsilon is subnormal or zero in fp16 (below 6.10e-5, the
  smallest normal; below 2.98e-8 it is 0), or a log reads an fp16 value that may be below
  6.10e-5 (probabilities under ~6e-5 become subnormal or 0, and log(0) = -inf).
* ``accumulation`` — a reduction sums more than :data:`ACCUMULATION_LIMIT` fp16 elements.
  fp16 has an 11-bit significand: once a running fp16 sum is 2^11 = 2048 times larger than the
  terms, adding a term changes nothing (the same 2048 is where ANE integer reductions stop being
  exact, sbryngelson/ANEForge#115). The executor's default accumulates in fp32; this finding
  is about hardware that does not.

Severity: ``error`` — certain (every value of the static interval is beyond the limit) or
observed in calibration; ``warning`` — possible by the static bound, and constants holding
±inf (usually an additive mask made of ``finfo(float32).min``: a hazard, not a failure by
itself); ``info`` — propagation.
``source`` is ``static``, ``calibration`` or ``pass`` (read back from a saved model).
``covered_by`` names the milguard pass that keeps the op fp32 when it belongs to a matched
pattern (``milguard::keep_fp32_layer_norm`` / ``_rms_norm`` / ``_softmax``), else None.

What "would overflow" means in calibration: a var typed fp16 whose value in the fp32 reference
run (:mod:`milguard.analysis.reference`) exceeds the limit — the op wants a value fp16 cannot
hold. The typed run confirms it (the var is non-finite there) or not (e.g. the inputs were
already rounded differently); ops that go non-finite in the typed run without wanting an
out-of-range value are reported too (``nonfinite`` when an input was already non-finite,
otherwise ``overflow``/``nan`` observed in the typed run), so every non-finite op is flagged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ..mil import const_value, dtype_name, iter_ops, module_path, op_inputs
from .calibrate import Calibration
from .interval import Interval
from .ranges import RangeMap

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05
FP16_MIN_SUBNORMAL = 5.960464477539063e-08
ACCUMULATION_LIMIT = 2048
SUBNORMAL_OK_BITS = 7          # a subnormal epsilon with >= 7 bits is within 1% of its value

KINDS = ("overflow", "nan", "nonfinite", "underflow", "accumulation")
SEVERITIES = ("error", "warning", "info")
COVERING_PASS = {"layer_norm": "milguard::keep_fp32_layer_norm",
                 "rms_norm": "milguard::keep_fp32_rms_norm",
                 "softmax": "milguard::keep_fp32_softmax"}


@dataclass(frozen=True)
class AneLimit:
    """A Neural Engine value limit below fp16's own, on an op's output or its ``x`` input."""

    op_types: tuple[str, ...]
    limit: float
    on: str            # "output" | "input" (largest x) | "input_abs" (largest |x|)
    source: str
    what: str = ""


ANE_LIMITS: tuple[AneLimit, ...] = (
    # matmul outputs saturate to inf at ~32752 = 65504/2 for every K (M2 Pro, M5)
    AneLimit(("matmul", "linear", "einsum"), 32752.0, "output", "sbryngelson/ANEForge#115"),
    # the pre-A16 slice path clamps |x| > 4094
    AneLimit(("slice_by_index", "slice_by_size"), 4094.0, "output", "sbryngelson/ANEForge#178"),
    # native softplus overflows on the ANE from x ~ 10.4
    AneLimit(("softplus",), 10.4, "input", "apple/coremltools#2687"),
    # the fused layer_norm overflowed fp16 on the ANE for large inputs (fixed in macOS Sonoma);
    # (x - mean)² leaves fp16 once |x - mean| > sqrt(65504) = 255.9
    AneLimit(("layer_norm", "instance_norm"), 255.9, "input_abs",
             "smpanaro/more-ane-transformers NOTES, Aug 2023", "its internal (x - mean)² may overflow"),
)

REDUCTIONS = ("reduce_sum", "reduce_mean", "reduce_sum_square", "reduce_l1_norm", "reduce_l2_norm",
              "reduce_log_sum", "reduce_log_sum_exp", "cumsum", "softmax")
EPSILON_OPS = ("rsqrt", "inverse", "log", "layer_norm", "batch_norm", "instance_norm", "l2_norm")
LOG_OPS = ("log", "reduce_log_sum")
FLOAT_DTYPES = ("fp16", "fp32", "fp64")
CONST_INF = ("fp16 constant holds ±inf (a value beyond ±65504 was cast to fp16); harmless as an "
             "additive mask unless a whole softmax row is masked")


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    op: str
    op_type: str
    var: str
    module: str | None
    magnitude: float
    limit: float
    source: str
    covered_by: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


def covering(matches: Mapping[str, Any], op_name: str) -> str | None:
    m = matches.get(op_name)
    return COVERING_PASS.get(m.kind) if m is not None else None


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _float_inputs(op: Any) -> list[tuple[str, Any]]:
    return [(p, v) for p, v in op_inputs(op) if dtype_name(v) in FLOAT_DTYPES]


def _touches_fp16(op: Any) -> bool:
    return any(dtype_name(v) == "fp16" for v in op.outputs) or \
        any(dtype_name(v) == "fp16" for _, v in op_inputs(op))


class _Collector:
    def __init__(self, fn: Any, matches: Mapping[str, Any], source: str):
        self.fn, self.matches, self.source = fn, matches, source
        self.items: list[Finding] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, op: Any, var: str, kind: str, severity: str, magnitude: float, limit: float,
            message: str) -> None:
        name = op.name if op is not None else var
        key = (name, var, kind)
        if key in self._seen:
            return
        self._seen.add(key)
        self.items.append(Finding(
            kind=kind, severity=severity, op=name, op_type=op.op_type if op is not None else "input",
            var=var, module=module_path(op) if op is not None else None, magnitude=float(magnitude),
            limit=float(limit), source=self.source,
            covered_by=covering(self.matches, name) if op is not None else None, message=message))


# ---- static ------------------------------------------------------------------------------------

def static_findings(fn: Any, ranges: RangeMap, matches: Mapping[str, Any] | None = None, *,
                    ane_limits: bool = False) -> list[Finding]:
    """Findings from the static intervals of ``ranges`` (computed on ``fn``)."""
    c = _Collector(fn, matches or {}, "static")
    for op in iter_ops(fn):
        ins = [(p, v, ranges.typed.get(v.name, Interval.top())) for p, v in _float_inputs(op)]
        for var in op.outputs:
            if dtype_name(var) not in FLOAT_DTYPES or var.name not in ranges:
                continue
            _static_values(c, op, var, ranges.wanted[var.name], ranges.typed[var.name], ins)
            if ane_limits:
                x = op.inputs.get("x")
                _ane(c, op, var, ranges.wanted[var.name],
                     ranges.typed.get(x.name) if x is not None and not isinstance(x, (list, tuple)) else None,
                     "warning")
        _static_underflow(c, op, ranges)
        _accumulation(c, op)
    return c.items


def _static_values(c: _Collector, op: Any, var: Any, wanted: Interval, typed: Interval,
                   ins: list[tuple[str, Any, Interval]]) -> None:
    """nan (created here), nonfinite (received), or overflow (beyond 65504 from finite inputs)."""
    bad_in = [v for _, v, iv in ins if iv.has_inf or iv.may_nan]
    if typed.may_nan and not any(iv.may_nan for _, _, iv in ins) and _touches_fp16(op):
        why = f"; input {bad_in[0].name} may be ±inf" if bad_in else ""
        c.add(op, var.name, "nan", "warning", wanted.maxabs, FP16_MAX, f"{op.op_type} may produce NaN{why}")
        return
    over = dtype_name(var) == "fp16" and wanted.maxabs > FP16_MAX
    if bad_in and (over or typed.has_inf or typed.may_nan):
        c.add(op, var.name, "nonfinite", "info", wanted.maxabs, FP16_MAX,
              f"receives ±inf/NaN from {_origin(bad_in[0])}")
    elif over and op.op_type == "const":
        c.add(op, var.name, "overflow", "warning", wanted.maxabs, FP16_MAX, CONST_INF)
    elif over:
        certain = wanted.lo > FP16_MAX or wanted.hi < -FP16_MAX
        c.add(op, var.name, "overflow", "error" if certain else "warning", wanted.maxabs, FP16_MAX,
              f"{op.op_type} output may reach {_fmt(wanted.maxabs)} > 65504 in fp16"
              f" (static bound in [{_fmt(wanted.lo)}, {_fmt(wanted.hi)}])")


def _origin(var: Any) -> str:
    return var.op.name if var.op is not None else var.name


def _ane(c: _Collector, op: Any, var: Any, out: Interval, x: Interval | None, severity: str) -> None:
    """Neural Engine limits (``ane_limits=True``): on the output, or on the ``x`` input."""
    if dtype_name(var) != "fp16":
        return
    for rule in ANE_LIMITS:
        if op.op_type not in rule.op_types:
            continue
        if rule.on == "output":
            mag = out.maxabs
        elif x is None or x.is_empty:
            continue
        else:
            mag = x.maxabs if rule.on == "input_abs" else x.hi
        if FP16_MAX >= mag > rule.limit:
            side = "output" if rule.on == "output" else "input"
            tail = f": {rule.what}" if rule.what else ""
            c.add(op, var.name, "overflow", severity, mag, rule.limit,
                  f"{op.op_type} {side} may reach {_fmt(mag)}, beyond the Neural Engine limit "
                  f"{_fmt(rule.limit)}{tail} ({rule.source})")


def _static_underflow(c: _Collector, op: Any, ranges: RangeMap) -> None:
    # a small positive epsilon added in fp16 (variance + eps)
    if op.op_type == "add" and dtype_name(op.outputs[0]) == "fp16":
        for a, b in ((op.x, op.y), (op.y, op.x)):
            eps = const_value(a)
            other = ranges.typed.get(b.name)
            if eps is not None and other is not None and const_value(b) is None and other.lo >= 0:
                _eps_finding(c, op, a, eps)
    if op.op_type in EPSILON_OPS:
        x = op.inputs.get("x")
        reach = ranges.typed.get(x.name) if x is not None else None
        _epsilon_param(c, op, reach)
    if op.op_type in LOG_OPS:
        x = op.inputs.get("x")
        iv = ranges.typed.get(x.name) if x is not None else None
        if iv is not None and dtype_name(x) == "fp16" and not iv.is_empty and iv.hi > 0 \
                and iv.lo < FP16_MIN_NORMAL:
            c.add(op, op.outputs[0].name, "underflow", "warning", max(iv.lo, 0.0), FP16_MIN_NORMAL,
                  f"{op.op_type} reads fp16 values that may be below 6.1e-5 (down to "
                  f"{_fmt(max(iv.lo, 0.0))}); they are subnormal or 0 in fp16 and log(0) = -inf")


def _eps_finding(c: _Collector, op: Any, var: Any, eps: np.ndarray, allow_zero: bool = False) -> None:
    e = np.asarray(eps, np.float64).reshape(-1)
    if e.size == 0 or e.size > 16 or np.any(e < 0):
        return
    small = float(e.max())
    if small >= FP16_MIN_NORMAL or (small == 0 and not allow_zero):
        return
    if small == 0:
        msg = f"epsilon of {op.op_type} is 0 in fp16 (a value below 2.98e-8 was rounded away)"
        sev = "warning"
    else:
        bits = max(int(math.floor(math.log2(small / FP16_MIN_SUBNORMAL))) + 1, 1)
        msg = (f"epsilon {small:.3g} is subnormal in fp16 (below 6.1e-5): it keeps only "
               f"{bits} significant bits")
        sev = "info" if bits >= SUBNORMAL_OK_BITS else "warning"
    c.add(op, op.outputs[0].name, "underflow", sev, small, FP16_MIN_NORMAL, msg)


def _epsilon_param(c: _Collector, op: Any, x_reach: Interval | None) -> None:
    """The ``epsilon`` parameter of rsqrt/inverse/log (matters only if x may reach 0) and of
    the norm ops (their variance may always be 0)."""
    e = op.inputs.get("epsilon")
    if e is None or dtype_name(e) != "fp16" or const_value(e) is None:
        return
    if op.op_type in ("rsqrt", "inverse", "log") and x_reach is not None and x_reach.lo > 0:
        return
    _eps_finding(c, op, e, const_value(e), allow_zero=True)


def _accumulation(c: _Collector, op: Any) -> None:
    if op.op_type not in REDUCTIONS:
        return
    x = op.inputs.get("x")
    if x is None or dtype_name(x) != "fp16" or dtype_name(op.outputs[0]) != "fp16":
        return
    from .ranges import Context
    if op.op_type in ("softmax", "cumsum"):
        axis = op.inputs.get("axis")
        axes = [int(np.asarray(const_value(axis)).reshape(-1)[0])] if axis is not None else [-1]
    else:
        a = op.inputs.get("axes")
        axes = None if a is None else [int(v) for v in np.asarray(const_value(a)).reshape(-1)]
    n = Context.count(x, axes)
    if n > ACCUMULATION_LIMIT:
        c.add(op, op.outputs[0].name, "accumulation", "warning", n, ACCUMULATION_LIMIT,
              f"{op.op_type} sums {_fmt(n)} fp16 elements; a running fp16 sum stops absorbing "
              f"terms 2048x smaller than itself")


# ---- calibration -------------------------------------------------------------------------------

def calibrated_findings(fn: Any, cal: Calibration, matches: Mapping[str, Any] | None = None, *,
                        ane_limits: bool = False) -> list[Finding]:
    """Findings from observed values: the fp32 reference says what would overflow, the typed
    run says what went non-finite."""
    c = _Collector(fn, matches or {}, "calibration")
    for name, var in fn.inputs.items():
        ref = cal.reference.get(var.name)
        if ref is not None and dtype_name(var) == "fp16" and ref.maxabs > FP16_MAX:
            c.add(None, var.name, "overflow", "error", ref.maxabs, FP16_MAX,
                  f"input {name} holds {_fmt(ref.maxabs)} > 65504: it is ±inf as fp16")
    for op in iter_ops(fn):
        ins = _float_inputs(op)
        for var in op.outputs:
            if var.name not in cal.actual or dtype_name(var) not in FLOAT_DTYPES:
                continue
            _calibrated_values(c, op, var, cal, ins)
            ref = cal.reference.get(var.name)
            if ane_limits and ref is not None:
                x = op.inputs.get("x")
                _ane(c, op, var, ref,
                     cal.reference.get(x.name) if x is not None and not isinstance(x, (list, tuple)) else None,
                     "error")
        if op.op_type in LOG_OPS:
            x = op.inputs.get("x")
            got = cal.actual.get(x.name) if x is not None else None
            if got is not None and dtype_name(x) == "fp16" and not got.is_empty and got.lo < FP16_MIN_NORMAL:
                out = cal.actual.get(op.outputs[0].name)
                hit = out is not None and out.lo == -math.inf
                c.add(op, op.outputs[0].name, "underflow", "error" if hit else "warning",
                      max(got.lo, 0.0), FP16_MIN_NORMAL,
                      f"{op.op_type} read fp16 values down to {_fmt(max(got.lo, 0.0))} (< 6.1e-5)"
                      + ("; log gave -inf" if hit else ""))
        _static_like_underflow(c, op, cal)
        _accumulation(c, op)
    return c.items


def _calibrated_values(c: _Collector, op: Any, var: Any, cal: Calibration, ins) -> None:
    ref = cal.reference.get(var.name, Interval.empty())
    fp16 = dtype_name(var) == "fp16"
    broken = cal.nonfinite(var.name)
    confirm = "; the fp16 run gives inf/NaN there" if broken else "; the fp16 run stays finite"
    # a reference that is non-finite only because an input already is: propagation, below
    inherited = not ref.is_finite and any(_ref_nonfinite(cal, v.name) for _, v in ins)
    if fp16 and ref.maxabs > FP16_MAX and not inherited:
        if op.op_type == "const":
            c.add(op, var.name, "overflow", "warning", ref.maxabs, FP16_MAX, CONST_INF)
        else:
            c.add(op, var.name, "overflow", "error", ref.maxabs, FP16_MAX,
                  f"{op.op_type} wants values up to {_fmt(ref.maxabs)} (fp32 reference) > 65504"
                  + confirm)
        return
    ref_nan_in = any(cal.reference.get(v.name, Interval.empty()).may_nan for _, v in ins)
    if ref.may_nan and not ref_nan_in and _touches_fp16(op):
        c.add(op, var.name, "nan", "error", ref.maxabs, FP16_MAX,
              f"{op.op_type} produces NaN even in the fp32 reference"
              + (" (an input is ±inf after fp16 rounding)" if any(_ref_nonfinite(cal, v.name) for _, v in ins)
                 else ""))
        return
    if not broken:
        return
    bad_in = [v for _, v in ins if cal.nonfinite(v.name)]
    if bad_in:
        c.add(op, var.name, "nonfinite", "info", math.inf, FP16_MAX,
              f"receives inf/NaN from {_origin(bad_in[0])} in the fp16 run")
    else:
        got = cal.actual[var.name]
        kind = "nan" if got.may_nan and not got.has_inf else "overflow"
        c.add(op, var.name, kind, "error", got.maxabs, FP16_MAX,
              f"{op.op_type} goes non-finite in the fp16 run although its fp32 reference stays "
              f"within {_fmt(ref.maxabs)} (rounding or fp16 accumulation inside the op)")


def _ref_nonfinite(cal: Calibration, name: str) -> bool:
    ref = cal.reference.get(name)
    return ref is not None and (ref.has_inf or ref.may_nan)


def _static_like_underflow(c: _Collector, op: Any, cal: Calibration) -> None:
    """Epsilon checks, with the observed range of x deciding whether it may reach 0."""
    if op.op_type in EPSILON_OPS:
        x = op.inputs.get("x")
        _epsilon_param(c, op, cal.actual.get(x.name) if x is not None else None)


def count(findings: Iterable[Finding]) -> dict[str, dict[str, int]]:
    """{"by_kind": {...}, "by_severity": {...}, "by_source": {...}} over ``findings``."""
    out: dict[str, dict[str, int]] = {"by_kind": {}, "by_severity": {}, "by_source": {}}
    for f in findings:
        for key, val in (("by_kind", f.kind), ("by_severity", f.severity), ("by_source", f.source)):
            out[key][val] = out[key].get(val, 0) + 1
    return out
