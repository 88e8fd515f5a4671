"""How the HTML page and its figure show the audit dict's values.

Numbers arrive as :func:`milguard.report.audit.jsonable` wrote them (non-finite ones as the strings
"inf", "-inf", "nan"); :func:`number` reads both forms back. ``gating`` findings are the errors and
warnings (info findings only pass on upstream inf/NaN).
"""
from __future__ import annotations

import html
import math
from typing import Any, Mapping

from ..analysis.findings import is_active

DEVICE_NAME = {"ane": "Neural Engine", "gpu": "GPU", "cpu": "CPU"}


def devices_of(d: Mapping[str, Any]) -> dict[str, str]:
    """{op name: expected device} from the report's placement (empty without one)."""
    place = d.get("placement") or {}
    return {name: p["device"] for name, p in (place.get("ops") or {}).items()}


def gating(d: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The error and warning findings that count (not superseded or ignored)."""
    return [f for f in d["findings"] if f["severity"] in ("error", "warning") and is_active(f)]


def pass_kind(name: str | None) -> str:
    """``milguard::keep_fp32_rms_norm`` -> ``rms_norm``."""
    return name.split("::keep_fp32_")[-1] if name else "-"


def number(x: Any) -> float:
    return float(x) if x is not None else math.nan      # "inf", "-inf", "nan" parse as floats


def magnitude(lo: Any, hi: Any) -> float | None:
    """max(|lo|, |hi|) over the bounds that are present and not NaN; None without any."""
    vals = [abs(number(v)) for v in (lo, hi) if v is not None and not math.isnan(number(v))]
    return max(vals) if vals else None


def nonfinite(lo: Any, hi: Any) -> bool:
    return any(v is not None and not math.isfinite(number(v)) for v in (lo, hi))


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a table cell: 4 significant digits (3 below 1), ∞ and – for inf and NaN."""
    v = number(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits if abs(v) >= 1 else 3}g}"


def pass_code(name: str | None) -> str:
    """``milguard::keep_fp32_rms_norm`` shown as code without the namespace (full name on hover)."""
    if not name:
        return "–"
    return f"<code title='{esc(name)}'>{esc(name.split('::')[-1])}</code>"


def esc(x: Any) -> str:
    """``x`` as HTML text (quotes escaped too: safe inside attributes)."""
    return html.escape(str(x), quote=True)
