"""Pattern families: each declared once, in its module under ``milguard.passes``, and registered here.

A family says what it matches (its members: engine rules, each a pattern, a check and an optional
fp16-safe rewrite), how analysis decides a match is in danger (``risk``) and which remedies may be
applied to it. Everything else derives from the registry: the registered coremltools passes
(``milguard::keep_fp32_<family>``), the accepted option values, the CLI help and the report's
legend. Adding a family is one new module in ``passes/`` that defines ``FAMILY``. ``import milguard``
imports the rule library, which registers its families here (this module never imports it).

    register(FAMILY)                 # passes/__init__.py does this for every module it holds
    families()                       # {name: Family}, in registration order
    find_patterns(program)           # every registered rule over a program
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .errors import MilguardError
from .pattern import Match, Rule, Tracer, find_matches

if TYPE_CHECKING:
    from .analysis.evidence import Evidence

REMEDIES = ("rescale", "fp32")          # the remedies a family may allow, besides leaving it fp16


@dataclass(frozen=True)
class Member:
    """A rule of a family with its precision policy.

    ``core``: the named op patterns of the overflow-prone chain (an fp32 island of ``scope="core"``
    keeps only those). ``native``: a single native op (``keep_native`` decides about it).
    ``safe``: milguard's own fp16-safe form, never at risk (the output of a rescale rewrite).
    ``rescale_passes``: how many passes over the whole tensor the rule's rewrite adds (the cost
    model charges them as element-wise ops). ``rescalable(match)``: why the rewrite does not apply
    to this match, or None (every match of a rule with a rewrite qualifies when it is not given).
    ``remedies``: the remedies this member allows, when it allows fewer than its family (a member
    kept for audits only allows none). ``risk``: the member's own risk test, when it is not its
    family's (see :class:`Family`).
    """

    rule: Rule
    core: tuple[str, ...] = ()
    native: bool = False
    safe: bool = False
    rescale_passes: int = 0
    rescalable: Callable[[Match], str | None] | None = None
    remedies: tuple[str, ...] | None = None
    risk: Callable[[Match, "Evidence"], str | None] | None = None

    def rescale_blocker(self, match: Match) -> str | None:
        """Why the rescale rewrite cannot be applied to ``match`` (None when it can)."""
        if self.rule.rewrite is None:
            return f"{self.rule.name} has no fp16-safe rewrite"
        return self.rescalable(match) if self.rescalable is not None else None


@dataclass(frozen=True)
class Family:
    """A pattern family: its members, its risk and the remedies it allows.

    ``risk(match, evidence)`` returns why the match is in danger in fp16 (naming the bound or the
    calibrated value), or None when the evidence shows it safe; a member may bring its own. ``remedies`` lists what may be
    applied when it is at risk, among ``"rescale"`` (the member's rewrite, when it has one) and
    ``"fp32"`` (an fp32 island).
    """

    name: str
    title: str
    summary: str
    members: tuple[Member, ...]
    risk: Callable[[Match, "Evidence"], str | None]
    remedies: tuple[str, ...] = REMEDIES

    def __post_init__(self) -> None:
        unknown = set(self.remedies) - set(REMEDIES)
        if unknown:
            raise MilguardError(f"family {self.name}: unknown remedies {sorted(unknown)}")
        for m in self.members:
            if m.rule.family != self.name:
                raise MilguardError(f"family {self.name}: rule {m.rule.name} is named for another family")

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(m.rule for m in self.members)

    @property
    def pass_name(self) -> str:
        return f"milguard::keep_fp32_{self.name}"


_FAMILIES: dict[str, Family] = {}
_MEMBERS: dict[str, Member] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (re-registering the same family is a no-op)."""
    known = _FAMILIES.get(family.name)
    if known is not None and known is not family:
        raise MilguardError(f"a pattern family named '{family.name}' is already registered")
    _FAMILIES[family.name] = family
    for m in family.members:
        _MEMBERS[m.rule.name] = m
    return family


def families() -> dict[str, Family]:
    """Every registered family by name, in registration order."""
    return dict(_FAMILIES)


def family(name: str) -> Family:
    if name not in _FAMILIES:
        raise MilguardError(f"unknown pattern family '{name}'; known: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def member(match: Match) -> Member:
    """The family member (rule and policy) a match was found by."""
    return _MEMBERS[match.rule.name]


def library_rules(kinds: Iterable[str] | None = None) -> list[Rule]:
    """The rules of the given families (all when None)."""
    wanted = None if kinds is None else set(kinds)
    return [r for name, f in families().items() if wanted is None or name in wanted for r in f.rules]


def find_patterns(model: Any, *, kinds: Iterable[str] | None = None, rules: Iterable[Rule] | None = None,
                  tracer: Tracer | None = None, function: str | None = None) -> list[Match]:
    """Matches of the registered pattern families (LayerNorm, RMSNorm, softmax, ...).

    ``model`` is a pymil Program, an ML-program MLModel or a path to a ``.mlpackage``.
    ``kinds`` restricts the families; ``rules`` replaces the rule library; a ``Tracer`` collects the
    reason each rule failed where it came closest. Matches never share ops; they are returned per
    function, per block, in program order of their roots.
    """
    chosen = library_rules(kinds) if rules is None else [
        r for r in rules if kinds is None or r.family in set(kinds)]
    return find_matches(model, chosen, tracer=tracer, function=function)


def explain(model: Any, rule_or_kind: str, **kwargs: Any) -> str | None:
    """Why ``rule_or_kind`` did not match where it came closest; None if it matched or was never tried.

    For a whole family, the rules of milguard's own rescaled forms are left out: a near miss of a
    norm is explained by the spelling it almost was, not by the rewrite it is not."""
    tracer = Tracer()
    matches = find_patterns(model, tracer=tracer, **kwargs)
    if any(m.rule.name == rule_or_kind or m.kind == rule_or_kind for m in matches):
        return None
    return tracer.reason(rule_or_kind, ignore=rescaled_rules() - {rule_or_kind})


def rescaled_rules() -> frozenset[str]:
    """Names of the rules that recognise milguard's own fp16-safe forms."""
    return frozenset(name for name, m in _MEMBERS.items() if m.safe)
