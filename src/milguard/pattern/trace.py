"""Why a near miss did not match: the deepest failure of each rule over every anchor it was tried at."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..mil import Operation
    from .match import Match, Rule


@dataclass(frozen=True)
class NearMiss:
    rule: str
    anchor: str          # name of the op the rule was tried at
    depth: int           # ops matched before the failure
    reason: str

    def __str__(self) -> str:
        return f"{self.rule} at '{self.anchor}' ({self.depth} ops matched): {self.reason}"


class Tracer:
    """Pass to ``find_patterns(..., tracer=Tracer())``; then ask ``reason(rule_or_kind)``."""

    def __init__(self) -> None:
        self.misses: dict[str, NearMiss] = {}
        self.matches: list[Match] = []

    def record_match(self, rule: Rule, match: Match) -> None:
        self.matches.append(match)

    def record_failure(self, rule: Rule, anchor: Operation, depth: int, reason: str) -> None:
        best = self.misses.get(rule.name)
        if best is None or depth > best.depth:
            self.misses[rule.name] = NearMiss(rule.name, anchor.name, depth, reason)

    def best(self, rule_or_kind: str, ignore: frozenset[str] = frozenset()) -> NearMiss | None:
        """The deepest near miss of a rule (``layer_norm.decomposed``) or a whole family (``layer_norm``),
        leaving out the rules named in ``ignore``."""
        pool = [m for name, m in self.misses.items() if name not in ignore
                and (name == rule_or_kind or name.split(".", 1)[0] == rule_or_kind)]
        return max(pool, key=lambda m: m.depth, default=None)

    def reason(self, rule_or_kind: str, ignore: frozenset[str] = frozenset()) -> str | None:
        miss = self.best(rule_or_kind, ignore)
        return miss.reason if miss else None

    def report(self) -> str:
        return "\n".join(str(m) for m in sorted(self.misses.values(), key=lambda m: -m.depth))
