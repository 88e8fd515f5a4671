"""Input value ranges as users write them: ``"x=-30:30,mask=0:1"``, JSON or a dict.

The static range analysis (:func:`milguard.analysis.propagate`) starts from one interval per
input. Users give those on the command line (``--input-range x=-30:30``), as pass options
(coremltools passes options as strings: ``'{"x": [-30, 30]}'`` or ``"x=-30:30"``) or from Python
(``{"x": (-30, 30)}``). :func:`parse_input_ranges` reads all three into ``{name: (lo, hi)}``;
a bad range is a :class:`~milguard.errors.MilguardError` whose one line names it.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

from .errors import MilguardError

EXAMPLE = "x=-30:30"


def parse_input_ranges(value: Any) -> dict[str, tuple[float, float]]:
    """``"x=lo:hi,y=lo:hi"``, ``'{"x": [lo, hi]}'`` or ``{"x": (lo, hi)}`` -> ``{"x": (lo, hi)}``.

    None and "" give {}. Bounds may be infinite ("inf" in the string form); lo <= hi.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        value = _from_json(text) if text.startswith("{") else _from_pairs(text)
    if not isinstance(value, Mapping):
        raise MilguardError(f"bad input ranges: expected NAME=LO:HI pairs or a mapping of input names "
                            f"to [lo, hi], got a {type(value).__name__}")
    return {str(name): _bounds(str(name), pair) for name, pair in value.items()}


def _from_pairs(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, eq, rng = part.partition("=")
        lo, colon, hi = rng.partition(":")
        if not (eq and colon and name.strip()):
            raise MilguardError(f"bad input range '{part}': expected NAME=LO:HI, e.g. {EXAMPLE}")
        try:
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise MilguardError(f"bad input range '{part}': expected NAME=LO:HI, e.g. {EXAMPLE}") from None
    return out


def _from_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MilguardError(f"bad input ranges: not JSON ({exc})") from None


def _bounds(name: str, pair: Any) -> tuple[float, float]:
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise MilguardError(f"bad input range for '{name}': expected [lo, hi], got {pair!r}")
    try:
        lo, hi = float(pair[0]), float(pair[1])
    except (TypeError, ValueError):
        raise MilguardError(f"bad input range for '{name}': expected two numbers, got {pair!r}") from None
    if math.isnan(lo) or math.isnan(hi):
        raise MilguardError(f"bad input range for '{name}': a bound is NaN")
    if lo > hi:
        raise MilguardError(f"bad input range for '{name}': {lo} > {hi}")
    return lo, hi
