"""fp16 risk analysis on a networkx view of MIL programs.

* :func:`to_networkx` — the graph (:mod:`.graph`);
* :func:`propagate` — static :class:`Interval` ranges for every var (:mod:`.ranges`, with the
  transfer functions of :mod:`.transfer`);
* :func:`calibrate` — observed ranges from executor traces (:mod:`.calibrate`);
* :func:`static_findings` / :func:`calibrated_findings` — fp16 overflow, NaN, underflow and
  accumulation findings per op (:mod:`.findings`).

The registered pass ``milguard::check_fp16_overflow`` lives in :mod:`.check_pass`; the report
built on all of this is :func:`milguard.report.audit.audit`.
"""
from __future__ import annotations

from .calibrate import Calibration, calibrate
from .findings import Finding, calibrated_findings, static_findings
from .graph import to_networkx
from .interval import Interval
from .ranges import RangeMap, propagate

__all__ = ["Calibration", "Finding", "Interval", "RangeMap", "calibrate", "calibrated_findings",
           "propagate", "static_findings", "to_networkx"]
