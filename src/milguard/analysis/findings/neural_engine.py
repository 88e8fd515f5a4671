"""Neural Engine value limits below fp16's own (``ane_limits=True``), reported as ``overflow``.

Each limit applies to an op's output or to its ``x`` input (its largest value, or largest |value|);
values between the limit and 65504 fit fp16 but not the Neural Engine's datapath.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import fp16
from ...mil import dtype_name
from ..interval import Interval
from .finding import Collector, fmt


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
    AneLimit(("matmul", "linear", "einsum"), fp16.MAX / 2, "output", "sbryngelson/ANEForge#115"),
    # the pre-A16 slice path clamps |x| > 4094
    AneLimit(("slice_by_index", "slice_by_size"), 4094.0, "output", "sbryngelson/ANEForge#178"),
    # native softplus overflows on the ANE from x ~ 10.4
    AneLimit(("softplus",), 10.4, "input", "apple/coremltools#2687"),
    # the fused layer_norm overflowed fp16 on the ANE for large inputs (fixed in macOS Sonoma);
    # (x - mean)² leaves fp16 once |x - mean| > sqrt(65504) = 255.9
    AneLimit(("layer_norm", "instance_norm"), fp16.SQUARE_LIMIT, "input_abs",
             "smpanaro/more-ane-transformers NOTES, Aug 2023", "its internal (x - mean)² may overflow"),
)


def check(c: Collector, op: Any, var: Any, out: Interval, x: Interval | None, severity: str) -> None:
    """``out``: the output's (wanted or reference) interval; ``x``: the ``x`` input's, if any."""
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
        if fp16.MAX >= mag > rule.limit:
            side = "output" if rule.on == "output" else "input"
            tail = f": {rule.what}" if rule.what else ""
            c.add(op, var.name, "overflow", severity, mag, rule.limit,
                  f"{op.op_type} {side} may reach {fmt(mag)}, beyond the Neural Engine limit "
                  f"{fmt(rule.limit)}{tail} ({rule.source})")
