"""Static range propagation: an :class:`Interval` for every var of a MIL function.

Walk the ops in program order (a topological order; nested block ops follow their parent op),
apply the transfer function of each op (:mod:`milguard.analysis.transfer`) and round the result
to the dtype of each output var. The rounding is where fp16 enters: an fp16-typed var whose
value may exceed ±65504 gets the bound ±inf, exactly as the typed executor does, and the inf
flows on; an fp32-typed var (inside one of milguard's fp32 islands) keeps its finite bound.

For every var two intervals are kept:

* ``wanted`` — the values the op computes from its (typed) inputs before the result is stored,
  i.e. in exact arithmetic; ``wanted.maxabs > 65504`` in an fp16 var is an overflow;
* ``typed`` — ``wanted`` rounded to the var's dtype; this is what consumers see.

Input ranges: the caller's ``input_ranges={"x": (lo, hi)}``, else a default per input that
:mod:`milguard.analysis.input_ranges` chooses and names (``RangeMap.input_origins``): ``[-1, 1]``
for floats, ``[0, n - 1]`` for integers read as gather indices, the dtype's full range for other
integers.

Soundness against the reference executor (property-tested on random fp32 and fp16 programs,
with ``accumulate="fp32"`` and ``"fp16"``): after every op each bound is widened by
``2^-20·|bound| + 1e-40`` to cover the rounding inside the op (never across 0 and never past
the dtype's largest finite value: one rounding cannot do either), accumulating ops add their own
``(n-1)·u·Σ|terms|`` (see :mod:`milguard.analysis.transfer`), and then the bounds are rounded to
nearest in the output dtype (monotone, hence sound). With ``accumulate="fp16"`` (the executor's
pessimistic mode) a reduction whose running sum may pass 65504 may also give ±inf, and the
internal steps of composite ops (norms, softmax) get fp16-sized slack.

Ops without a transfer function get ``Interval.top()`` and are recorded in
``RangeMap.unknown_ops``; every var downstream inherits the unboundedness. A transfer function
or row-norm rule that raises is a bug: the op gets the weaker bound (``Interval.top()``, or no
row-norm bound) and a :class:`RuleFailure` in ``RangeMap.failures``, which the findings report
as kind ``analysis``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .. import fp16
from ..mil import const_value, dtype_name, load
from .input_ranges import input_range
from .interval import INF, Interval
from .norms import NormContext, refine
from .transfer import TRANSFER

OP_SLACK_REL = 2.0 ** -20
OP_SLACK_ABS = 1e-40
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "fp16": fp16.UNIT_ROUNDOFF}
FLOAT_MAX = {"fp16": fp16.MAX, "fp32": float(np.finfo(np.float32).max)}


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised on an op: ``rule`` is ``"range"`` (its transfer function) or
    ``"row-norm"``; ``error`` is ``"ExceptionType: message"``."""

    op: str
    op_type: str
    rule: str
    error: str

    @classmethod
    def of(cls, op: Any, rule: str, exc: BaseException) -> RuleFailure:
        text = " ".join(str(exc).split())
        return cls(op.name, op.op_type, rule, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


@dataclass
class RangeMap:
    """Intervals per var name, in program order, and the ops the analysis could not model."""

    function: str
    typed: dict[str, Interval] = field(default_factory=dict)
    wanted: dict[str, Interval] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)          # var -> op name ("" = input)
    dtypes: dict[str, str | None] = field(default_factory=dict)
    unknown_ops: list[tuple[str, str]] = field(default_factory=list)  # (op name, op type)
    row_norms: Any = None               # NormContext: lazy bounds on the L2 norm of last-axis rows
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    input_origins: dict[str, str] = field(default_factory=dict)     # see milguard.analysis.input_ranges
    failures: list[RuleFailure] = field(default_factory=list)

    def __getitem__(self, var_name: str) -> Interval:
        return self.typed[var_name]

    def failed(self, op: Any, rule: str, exc: BaseException) -> None:
        """Record that ``rule`` ("range" or "row-norm") raised ``exc`` on ``op``."""
        self.failures.append(RuleFailure.of(op, rule, exc))

    def row_norm(self, var_name: str) -> float | None:
        """A bound on the L2 norm of every last-axis row of a var (None when none is known)."""
        if self.row_norms is None or var_name not in self.row_norms.norms:
            return None
        val = self.row_norms.norm(var_name)
        return val if math.isfinite(val) else None

    def __contains__(self, var_name: str) -> bool:
        return var_name in self.typed

    def __iter__(self):
        return iter(self.typed)


class Context:
    """What a transfer function may ask about the op it models."""

    def __init__(self, ranges: RangeMap, accumulate: str):
        self._ranges = ranges
        self._accumulate = accumulate

    def r(self, var: Any) -> Interval:
        if var is None:
            return Interval.point(0.0)
        got = self._ranges.typed.get(var.name)
        if got is not None:
            return got
        val = const_value(var)            # a value known at compile time but not yet visited
        return Interval.of(val) if val is not None else Interval.top()

    @staticmethod
    def val(var: Any) -> np.ndarray | None:
        return const_value(var) if var is not None else None

    @staticmethod
    def count(var: Any, axes) -> float:
        """Number of elements a reduction of ``var`` over ``axes`` (None = all) combines."""
        shape = tuple(var.shape) if getattr(var, "shape", None) is not None else ()
        picked = range(len(shape)) if axes is None else [int(a) % max(len(shape), 1) for a in axes]
        n = 1.0
        for a in set(picked):
            if a >= len(shape):
                continue
            d = shape[a]
            if not isinstance(d, (int, np.integer)):
                return INF
            n *= int(d)
        return n

    def u(self, op: Any) -> float:
        """Unit roundoff of the accumulator the executor uses for this op."""
        out = dtype_name(op.outputs[0]) if op.outputs else None
        return UNIT_ROUNDOFF["fp16" if self._accumulate == "fp16" and out == "fp16" else "fp32"]


def propagate(model: Any, input_ranges: Mapping[str, tuple[float, float]] | None = None, *,
              function: str = "main", accumulate: str = "fp32", norms: bool = True) -> RangeMap:
    """Intervals for every var of ``function``; ``model`` is a Program, MLModel or package path.

    With ``norms`` the intervals are also bounded by row L2 norms (:mod:`milguard.analysis.norms`:
    LayerNorm -> linear -> q·kᵀ chains stay bounded where plain intervals explode).
    """
    program = load(model).program
    if function not in program.functions:
        from ..errors import ModelError
        raise ModelError(f"no function '{function}' in the program (has {sorted(program.functions)})")
    fn = program.functions[function]
    given = dict(input_ranges or {})
    unknown_inputs = set(given) - set(fn.inputs)
    if unknown_inputs:
        from ..errors import ModelError
        raise ModelError(f"input range for unknown input(s) {sorted(unknown_inputs)}; "
                         f"the function takes {sorted(fn.inputs)}")
    rm = RangeMap(function=function)
    for name, var in fn.inputs.items():
        lo, hi, rm.input_origins[name] = input_range(var, given)
        rm.input_ranges[name] = (lo, hi)
        iv = Interval(lo, hi).round_to(dtype_name(var))
        _store(rm, var, iv, iv, "")
    ctx = Context(rm, accumulate)
    rm.row_norms = NormContext(rm, ctx) if norms else None
    _walk(fn, ctx, rm, rm.row_norms)
    return rm


def _walk(block: Any, ctx: Context, rm: RangeMap, nc: NormContext | None) -> None:
    """Visit ops in program order; an op's nested blocks are visited before the op itself
    (their outputs are its outputs); block inputs (loop-carried values) are unbounded."""
    for op in list(block.operations):
        for inner in op.blocks:
            for var in inner.inputs:
                if var.name not in rm.typed:
                    _store(rm, var, Interval.top(), Interval.top(), op.name)
            _walk(inner, ctx, rm, nc)
        _visit(op, ctx, rm, nc)


def _visit(op: Any, ctx: Context, rm: RangeMap, nc: NormContext | None) -> None:
    fn = TRANSFER.get(op.op_type)
    outs = list(op.outputs)
    if fn is None:
        rm.unknown_ops.append((op.name, op.op_type))
        results: list[Interval] = [Interval.top()] * len(outs)
    else:
        try:
            got = fn(op, ctx)
        except Exception as exc:  # noqa: BLE001 - a transfer bug must not make an op look safe
            rm.failed(op, "range", exc)
            got = Interval.top()
        results = list(got) if isinstance(got, (list, tuple)) else [got] * len(outs)
    exact = op.op_type == "const"
    bound = None
    if nc is not None and not exact and fn is not None:
        results, bound = refine(op, nc, results)
    for var, iv in zip(outs, results):
        if var.name in rm.typed:
            continue
        want = iv if exact else _slack(iv, dtype_name(var))
        typed = want.round_to(dtype_name(var))
        _store(rm, var, want, typed, op.name)
        if bound is not None and typed.is_finite and not typed.is_empty:
            nc.norms[var.name] = bound


def _slack(iv: Interval, dtype: str | None) -> Interval:
    """Widen by the rounding of one op. A single rounding never flips a sign (a bound at 0 stays
    there: x² stays >= 0) and never rounds a value within the dtype's range to inf (a bound at
    or inside ±max stays inside)."""
    out = iv.widen(OP_SLACK_REL, OP_SLACK_ABS)
    if out.is_empty:
        return out
    lo = 0.0 if iv.lo >= 0 > out.lo else out.lo
    hi = 0.0 if iv.hi <= 0 < out.hi else out.hi
    big = FLOAT_MAX.get(dtype or "")
    if big is not None:
        lo = -big if iv.lo >= -big > lo else lo
        hi = big if iv.hi <= big < hi else hi
    return Interval(lo, hi, out.may_nan)


def _store(rm: RangeMap, var: Any, wanted: Interval, typed: Interval, producer: str) -> None:
    rm.wanted[var.name] = wanted
    rm.typed[var.name] = typed
    rm.producer[var.name] = producer
    rm.dtypes[var.name] = dtype_name(var)
