"""One fp16 risk at one op (:class:`Finding`), and the collector every rule adds findings through."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from ...families import family
from ...mil import module_path

KINDS = ("overflow", "nan", "nonfinite", "underflow", "accumulation", "analysis")


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
    superseded_by: str | None = None     # "calibration": the samples stayed within the static bound
    ignored_by: str | None = None        # the --ignore rule (or [tool.milguard] ignore entry) that matched

    @property
    def active(self) -> bool:
        return not self.superseded_by and not self.ignored_by

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


def is_active(finding: Mapping[str, Any]) -> bool:
    """Neither superseded by calibration nor ignored: the findings that are counted and gated on."""
    return not finding.get("superseded_by") and not finding.get("ignored_by")


def count(findings: Iterable[Finding]) -> dict[str, dict[str, int]]:
    """{"by_kind": {...}, "by_severity": {...}, "by_source": {...}} over ``findings``."""
    out: dict[str, dict[str, int]] = {"by_kind": {}, "by_severity": {}, "by_source": {}}
    for f in findings:
        for key, val in (("by_kind", f.kind), ("by_severity", f.severity), ("by_source", f.source)):
            out[key][val] = out[key].get(val, 0) + 1
    return out


def covering(matches: Mapping[str, Any], op_name: str) -> str | None:
    """The pass of the pattern family the op belongs to (the audit narrows this to the regions its
    decisions remedy: milguard.report.audit)."""
    m = matches.get(op_name)
    return family(m.kind).pass_name if m is not None else None


def fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else ("inf" if x > 0 else "-inf")


class Collector:
    """Findings of one analysis (``source``), at most one per (op, var, kind)."""

    def __init__(self, matches: Mapping[str, Any], source: str):
        self.matches, self.source = matches, source
        self.items: list[Finding] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, op: Any, var: str, kind: str, severity: str, magnitude: float, limit: float,
            message: str) -> None:
        """``op`` None: a finding on the function input ``var``."""
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
