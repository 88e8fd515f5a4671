"""Checking executed values against propagated intervals (the soundness tests share this)."""
from __future__ import annotations

import numpy as np

from milguard.analysis.interval import Interval


def check_within(ranges, trace) -> int:
    """Assert every float value of an executor ``trace`` lies in its propagated interval (NaN only
    where the interval admits NaN); returns how many vars were checked."""
    checked = 0
    for name, value in trace.items():
        if name not in ranges or np.asarray(value).dtype.kind != "f":
            continue
        got = Interval.of(value)
        assert got.subset_of(ranges[name]), f"{name}: executed {got} outside {ranges[name]}"
        checked += 1
    return checked
