"""``analysis``: a rule of the range analysis raised on an op, so the analysis is weaker there.

A transfer function that raises leaves the op's outputs unbounded (±inf, NaN: never "safe", but
every finding downstream is then only as good as that fallback); a row-norm rule that raises drops
a bound the intervals would have been met with. Either is a milguard bug, reported as a finding of
its own (severity ``warning``) naming the op and the exception instead of hiding in a debug log.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ...mil import iter_ops
from .finding import Collector

FALLBACK = {"range": "its outputs are unbounded (±inf, NaN) from here on",
            "row-norm": "its row-norm bound is dropped and the plain interval bound is used"}


def report(c: Collector, fn: Any, failures: Iterable[Any]) -> None:
    """One finding per :class:`~milguard.analysis.ranges.RuleFailure` of ``fn``."""
    ops = {op.name: op for op in iter_ops(fn)}
    for failure in failures:
        op = ops[failure.op]
        var = op.outputs[0].name if op.outputs else op.name
        c.add(op, var, "analysis", "warning", math.nan, math.nan,
              f"the {failure.rule} rule of {failure.op_type} raised {failure.error}; "
              f"{FALLBACK[failure.rule]} (a milguard bug: please report it)")
