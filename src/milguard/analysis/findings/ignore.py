"""Silencing known-harmless findings, the way linters do: ``--ignore RULE`` or ``ignore = [...]`` in
``[tool.milguard]``.

A rule is one of

* ``KIND`` — every finding of that kind (``overflow``, ``nan``, ``nonfinite``, ``underflow``,
  ``accumulation``, ``analysis``);
* ``GLOB`` — every finding whose op name or torch module path matches the shell glob
  (``causal_mask*``, ``model.layers.*.self_attn``); a word that names a kind is the kind;
* ``KIND:GLOB`` — findings of that kind at the ops or modules the glob matches.

An ignored finding stays in the report with ``ignored_by`` set to the rule that matched; like a
superseded one it is neither counted nor gated on. Findings already superseded by calibration
are left as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Iterable, Sequence

from ...errors import MilguardError
from .finding import KINDS, Finding


@dataclass(frozen=True)
class IgnoreRule:
    text: str
    kind: str | None
    glob: str | None

    def matches(self, f: Finding) -> bool:
        if self.kind is not None and f.kind != self.kind:
            return False
        return self.glob is None or fnmatchcase(f.op, self.glob) or \
            (f.module is not None and fnmatchcase(f.module, self.glob))


def parse_ignore(text: str, label: str = "ignore rule") -> IgnoreRule:
    """``KIND``, ``GLOB`` or ``KIND:GLOB``; a one-line error for an empty rule or an unknown kind
    (``label`` names where the rule came from: ``--ignore``, ...)."""
    rule = str(text).strip()
    if not rule:
        raise MilguardError(f"bad {label} '': expected KIND, GLOB or KIND:GLOB")
    if rule in KINDS:
        return IgnoreRule(rule, rule, None)
    kind, sep, glob = rule.partition(":")
    if not sep:
        return IgnoreRule(rule, None, rule)
    if kind not in KINDS:
        raise MilguardError(f"bad {label} '{rule}': '{kind}' is not a finding kind "
                            f"({', '.join(KINDS)})")
    if not glob:
        raise MilguardError(f"bad {label} '{rule}': no glob after '{kind}:'")
    return IgnoreRule(rule, kind, glob)


def parse_ignores(texts: Iterable[str]) -> tuple[IgnoreRule, ...]:
    return tuple(parse_ignore(t) for t in texts)


def apply_ignores(findings: Sequence[Finding], rules: Sequence[IgnoreRule]) -> list[Finding]:
    """``findings`` with ``ignored_by`` set on every active finding the first matching rule names."""
    out = []
    for f in findings:
        rule = next((r for r in rules if r.matches(f)), None) if f.active else None
        out.append(replace(f, ignored_by=rule.text) if rule is not None else f)
    return out
