"""Evidence for a decision: what the values of a program may be, per var.

Two sources, one interface (``evidence.interval(var)``):

* **calibration** — the hull of the values each var takes when the program runs in the reference
  executor on the user's samples, with fp16 vars widened to fp32 (:mod:`.reference`): what each op
  *wants* to produce. Exact for the data given, silent about other data.
* **static** — sound interval bounds (:func:`milguard.analysis.ranges.propagate`, ``wanted``: the
  values before rounding to the var's dtype) from the input ranges the user states. A float input
  without a stated range is *unbounded* here, not the analysis' tame default of [-1, 1]: a residual
  stream or an embedding fed to a model may carry activations of thousands (LLaMA2-7B's massive
  activations reach 2.6e3), and a default that assumes them away would leave exactly the norms that
  need a remedy in fp16. Values the structure bounds on its own (a norm's output, a softmax's
  probabilities, integer indices) stay bounded.

A var evidence knows nothing about gets ``Interval.top()``: "unknown" never reads as "safe".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..mil import dtype_name
from .findings.operands import FLOAT_DTYPES
from .interval import Interval



@dataclass
class Evidence:
    """Per-var value intervals from one source, for one function."""

    source: str                                   # "calibration" | "static"
    function: str
    intervals: Mapping[str, Interval]
    accumulate: str = "fp32"
    samples: int = 0                              # calibration samples
    stated: dict[str, tuple[float, float]] = field(default_factory=dict)   # static: ranges given
    unbounded: tuple[str, ...] = ()               # static: float inputs without a range
    aliases: dict[str, str] = field(default_factory=dict)   # a rewrite's new var -> the var it replaced

    def interval(self, var: Any) -> Interval:
        """The values ``var`` may take (``Interval.top()`` when nothing is known)."""
        if var is None:
            return Interval.top()
        got = self.intervals.get(self.aliases.get(var.name, var.name))
        return got if got is not None else Interval.top()

    def describe(self) -> str:
        """Where the bounds come from, in a few words."""
        if self.source == "calibration":
            return f"calibration ({self.samples} sample{'s' * (self.samples != 1)})"
        given = ", ".join(f"{n}={lo:g}:{hi:g}" for n, (lo, hi) in self.stated.items())
        parts = [f"static bounds from {given}" if given else "static bounds"]
        if self.unbounded:
            parts.append(f"no range for {', '.join(self.unbounded)}")
        return "; ".join(parts)

    def bound(self, iv: Interval) -> str:
        """A bound as text for a reason: 'unbounded' or the interval."""
        if iv.is_empty:
            return "no value"
        if not math.isfinite(iv.maxabs):
            return "unbounded" if self.source == "static" else "non-finite"
        return f"[{iv.lo:.4g}, {iv.hi:.4g}]"


def static_evidence(program: Any, function: str = "main",
                    input_ranges: Mapping[str, tuple[float, float]] | None = None,
                    accumulate: str = "fp32") -> Evidence:
    """Sound bounds from the stated input ranges; float inputs without one are unbounded."""
    from .ranges import propagate

    fn = program.functions[function]
    stated = {k: (float(lo), float(hi)) for k, (lo, hi) in (input_ranges or {}).items() if k in fn.inputs}
    unbounded = tuple(n for n, v in fn.inputs.items() if dtype_name(v) in FLOAT_DTYPES and n not in stated)
    ranges = {**stated, **{n: (-math.inf, math.inf) for n in unbounded}}
    rm = propagate(program, ranges, function=function, accumulate=accumulate)
    return Evidence("static", function, rm.wanted, accumulate, stated=stated, unbounded=unbounded)


def calibrated_evidence(program: Any, samples: Any, function: str = "main",
                        accumulate: str = "fp32") -> Evidence:
    """The values the program wants on the samples (fp16 vars widened to fp32)."""
    from .calibrate import calibrate

    return calibration_evidence(calibrate(program, samples, function=function, accumulate=accumulate), accumulate)


def calibration_evidence(cal: Any, accumulate: str = "fp32") -> Evidence:
    """The evidence of a :class:`~milguard.analysis.calibrate.Calibration` already run."""
    return Evidence("calibration", cal.function, cal.reference, accumulate, samples=cal.samples)
