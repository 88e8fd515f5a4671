"""One decision per matched region, shared by the pipeline, ``keep_fp32`` / ``milguard fix`` and
``milguard audit``.

For every match of the registered families (``milguard.families``):

1. **state** — what the region is now: "rescaled" (milguard's fp16-safe form), "fp32" (an fp32
   island, or a model computing in fp32) or "fp16" (it computes, or is about to compute, in fp16).
2. **risk** — the family's ``risk(match, evidence)``: why fp16 is unsafe there, naming the bound or
   the calibrated value, or None when the evidence shows it safe (:mod:`milguard.analysis.evidence`).
3. **remedy** — for a region in fp16: "none" when safe; when at risk, the cheapest of the remedies
   the member allows ("rescale": its rewrite, "fp32": an island), by the relative cost model for the
   target compute units (:mod:`milguard.placement.remedy_cost`); ``Options.remedy`` may force one.

Regions already remedied, excluded by the options, or of a family the options leave out get "none".
The same evidence, options and program give the same decisions wherever they are made, which is
what makes ``audit`` suggest exactly what ``fix`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..analysis.evidence import Evidence, calibrated_evidence, static_evidence
from ..families import Member, family as family_of, find_patterns, member as member_of
from ..mil import dtype_name, iter_ops, module_path, program_state
from ..mil.shapes import numel
from ..pattern import Match, replaced_op
from ..placement.remedy_cost import RemedyCost, island_cost, rescale_cost
from .options import Options

STATE_KEY = "milguard.decide"
VERDICTS = {("fp16", "none", False): "safe in fp16", ("fp16", "none", True): "at risk, no remedy",
            ("fp16", "rescale", True): "rescale", ("fp16", "rescale", False): "rescale",
            ("fp16", "fp32", True): "fp32 island", ("fp16", "fp32", False): "fp32 island",
            ("rescaled", "none", False): "rescaled", ("fp32", "none", False): "fp32",
            ("fp32", "none", True): "fp32"}


@dataclass(frozen=True)
class Decision:
    """What milguard decides for one region, and why."""

    function: str
    family: str
    rule: str
    variant: str
    ops: tuple[str, ...]
    module: str | None
    state: str                         # "fp16" | "rescaled" | "fp32"
    remedy: str                        # "none" | "rescale" | "fp32"
    risk: str | None                   # why fp16 is unsafe here; None when the evidence shows it safe
    why: str                           # why this remedy
    evidence: str                      # where the bounds came from
    cost: RemedyCost | None = None     # what the chosen remedy adds (None for "none")
    considered: dict[str, RemedyCost] = field(default_factory=dict)
    island: tuple[str, ...] = ()       # the ops an fp32 island keeps (remedy "fp32")

    @property
    def verdict(self) -> str:
        """One phrase for tables: "safe in fp16", "rescale", "fp32 island", "rescaled", "fp32", ..."""
        return VERDICTS.get((self.state, self.remedy, self.risk is not None), self.remedy)

    @property
    def fixable(self) -> bool:
        """Whether ``milguard fix`` would change this region."""
        return self.remedy != "none"

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "family": self.family, "rule": self.rule, "variant": self.variant,
                "ops": list(self.ops), "module": self.module, "state": self.state, "remedy": self.remedy,
                "verdict": self.verdict, "risk": self.risk, "why": self.why, "evidence": self.evidence,
                "cost": self.cost.to_dict() if self.cost else None,
                "considered": {k: v.to_dict() for k, v in self.considered.items()},
                "island": list(self.island)}


class Context:
    """What deciding needs about a program, computed once: evidence and expected devices per function."""

    def __init__(self, program: Any, options: Options, *, casting: bool = False):
        self.program, self.options, self.casting = program, options, casting
        self._evidence: dict[str, Evidence] = {}
        self._devices: dict[str, dict[str, Any]] = {}
        self._fp16: dict[str, bool] = {}
        self._matches: dict[str | None, list[Match]] = {}

    def matches(self, function: str | None = None) -> list[Match]:
        """The matches of every family (in ``function``, or all), found once until a rewrite
        changes the program (:meth:`changed`)."""
        if function not in self._matches:
            self._matches[function] = find_patterns(self.program, function=function)
        return self._matches[function]

    def changed(self) -> None:
        """The program was rewritten: matches must be found again."""
        self._matches.clear()

    def use(self, evidence: Evidence) -> None:
        """Decide from ``evidence`` for its function (e.g. a calibration already run)."""
        self._evidence[evidence.function] = evidence

    def evidence(self, function: str) -> Evidence:
        if function not in self._evidence:
            opts = self.options
            if opts.calibration is not None and function == "main":
                ev = calibrated_evidence(self.program, opts.calibration, function, opts.accumulate)
            else:
                ev = static_evidence(self.program, function, opts.ranges if function == "main" else None,
                                     opts.accumulate)
            self._evidence[function] = ev
        return self._evidence[function]

    def device(self, match: Match) -> str:
        """Where the region is expected to run once it is fp16."""
        from ..placement import PlacementOptions, predict

        fn = match.function
        if fn not in self._devices:
            self._devices[fn] = predict(self.program.functions[fn], compute_units=self.options.compute_units,
                                        options=PlacementOptions(assume_fp16=True))
        places = self._devices[fn]
        for op in (match.root, *match.ops):
            if op.name in places:
                return places[op.name].device
        return "cpu"

    def computes_fp16(self, function: str) -> bool:
        """Whether the function computes in fp16 anywhere (or is about to, inside a conversion)."""
        if self.casting:
            return True
        if function not in self._fp16:
            self._fp16[function] = any(_compute_dtype(op) == "fp16" for op in iter_ops(self.program.functions[function]))
        return self._fp16[function]


def _compute_dtype(op) -> str | None:
    """The float dtype an op computes in (its first output's); None for consts, casts and the rest."""
    if op.op_type in ("const", "cast") or not op.outputs:
        return None
    dt = dtype_name(op.outputs[0])
    return dt if dt in ("fp16", "fp32") else None


def _compute_dtypes(match: Match) -> set[str]:
    return {dt for dt in map(_compute_dtype, match.ops) if dt is not None}


def _state(match: Match, member: Member, ctx: Context) -> str:
    if member.safe:
        return "rescaled"
    if ctx.casting:
        return "fp16"
    return "fp32" if _compute_dtypes(match) == {"fp32"} else "fp16"


def _costs(match: Match, member: Member, allowed: tuple[str, ...], ctx: Context) -> dict[str, RemedyCost]:
    device = ctx.device(match)
    out: dict[str, RemedyCost] = {}
    if "rescale" in allowed:
        x = replaced_op(match).outputs[0]
        out["rescale"] = rescale_cost(device, numel(x), member.rescale_passes)
    if "fp32" in allowed:
        out["fp32"] = island_cost(match.ops, [*match.entries, *match.exits], device, ctx.options.compute_units)
    return out


def _island(match: Match, member: Member, options: Options) -> tuple[str, ...]:
    ops = match.named(member.core) if options.scope == "core" and member.core else match.ops
    return tuple(op.name for op in ops)


def decide_match(match: Match, ctx: Context) -> Decision:
    """The decision for one match (see the module docstring)."""
    opts = ctx.options
    member = member_of(match)
    fam = family_of(match.kind)
    state = _state(match, member, ctx)
    module = next((p for p in (module_path(op) for op in match.ops) if p), None)
    ev = ctx.evidence(match.function)
    try:
        risk = (member.risk or fam.risk)(match, ev) if state != "rescaled" else None
    except Exception as exc:  # noqa: BLE001 - a failing risk test must not read as "safe"
        risk = f"the risk check failed ({type(exc).__name__}: {exc}); treated as at risk"

    def made(remedy: str, why: str, considered: dict[str, RemedyCost] | None = None) -> Decision:
        considered = considered or {}
        return Decision(match.function, match.kind, match.rule.name, match.variant,
                        tuple(op.name for op in match.ops), module, state, remedy, risk, why, ev.describe(),
                        considered.get(remedy), considered,
                        _island(match, member, opts) if remedy == "fp32" else ())

    if state == "rescaled":
        return made("none", "milguard's fp16-safe rescaled form")
    if state == "fp32":
        return made("none", "computes in fp32" + ("" if ctx.computes_fp16(match.function) else " (the whole model)"))
    if not opts.acts_on(match.kind):
        return made("none", f"the {match.kind} family is not selected")
    if opts.excludes(match):
        return made("none", "excluded by the options")
    if member.native and opts.keep_native == "never":
        return made("none", "native op left alone (keep_native=never)")

    allowed = member.remedies if member.remedies is not None else fam.remedies
    blocker = member.rescale_blocker(match) if "rescale" in allowed else None
    available = tuple(r for r in allowed if r != "rescale" or blocker is None)
    considered = _costs(match, member, available, ctx)

    if member.native and opts.keep_native == "always" and "fp32" in available:
        return made("fp32", "native op kept fp32 (keep_native=always)", considered)
    if opts.remedy == "fp32" and "fp32" in available and (not member.native or risk):
        return made("fp32", "remedy=fp32: " + ("every decomposed region is kept fp32" if not member.native
                                               else "native op at risk"), considered)
    if opts.remedy == "rescale" and "rescale" in available:
        return made("rescale", "remedy=rescale: every region with a rewrite is rewritten", considered)
    if risk is None:
        return made("none", "safe in fp16", considered)
    if not available:
        reason = blocker or f"{match.rule.name} has no remedy milguard applies (reported for audits)"
        return made("none", reason, considered)
    best = min(available, key=lambda r: (considered[r].relative, considered[r].transitions))
    others = ", ".join(f"{r} +{c.transitions} transitions, +{c.relative:.3g}" for r, c in considered.items()
                       if r != best)
    why = (f"cheapest remedy on {opts.compute_units} ({ctx.device(match)}): {best} (vs {others})" if others
           else f"the family's only remedy: {best}")
    return made(best, why, considered)


def decide(ctx: Context, family: str | None = None) -> list[tuple[Match, Decision]]:
    """A decision for every match of every registered family in ``ctx``'s program, or of one
    ``family``. Matches are found among all families at once, as the audit finds them, so both see
    the same regions."""
    return [(m, decide_match(m, ctx)) for m in ctx.matches() if family is None or m.kind == family]


def remember(program: Any, decisions: list[Decision]) -> None:
    """Keep the decisions made for ``program`` (the report of a conversion reads them)."""
    program_state(program).setdefault(STATE_KEY, []).extend(decisions)


def remembered(program: Any) -> list[Decision]:
    return list(program_state(program).get(STATE_KEY, []))
