"""``audit``: patterns, precision, fp16 risk findings, ranges and expected placement of a model.

``audit(model, input_ranges=None, calibration=None, *, function="main", ane_limits=False,
compute_units="ALL", accumulate="fp32", remedy="auto", ignore=(), **options)`` returns an
:class:`AuditReport`. ``options`` are the decision options of ``milguard fix`` (scope, families,
exclude, keep_native): each region gets the decision ``fix`` makes with the same options and data.
``to_dict()`` is the schema the CLI, the JSON output and the HTML page read::

    {
      "format": "milguard.audit/3",
      "model": str,                    # the path, or "<Program>" / "<MLModel>"
      "function": str,
      "options": {"input_ranges": {input: [lo, hi]},
                  "input_range_origins": {input: "given" | "default" | "indices" | "dtype"},
                  "ane_limits": bool, "compute_units": str, "accumulate": str,
                  "calibration_samples": int | None,
                  "ignore": [rule]},   # KIND, GLOB or KIND:GLOB (milguard.analysis.findings.ignore)
      "summary": {
        "ops": int,                    # non-const ops
        "op_types": {op type: count},
        "fp16_ops": int, "fp32_ops": int, "other_ops": int,   # by the dtype of the first output
        "patterns": int,
        "findings": {"total": int,     # every listed finding
                     "active": int,    # total - superseded - ignored; by_* count these
                     "superseded": int, "ignored": int,
                     "by_kind": {...}, "by_severity": {...}, "by_source": {...}},
        "unknown_ops": int,
        "decisions": {"by_verdict": {verdict: count}, "fixable": int,    # regions fix would change
                      "evidence": str},                                # what they were decided from
      },
      "patterns": [{"kind", "variant", "rule", "ops": [op names], "precision": "fp32"|"fp16"|"mixed",
                    "module": str | None,
                    "covered_by": pass name | None,   # the family pass, when it remedies (or did)
                    # the decision (milguard.actions.decide), as milguard fix makes it:
                    "state": "fp16" | "rescaled" | "fp32",      # what the region is now
                    "remedy": "none" | "rescale" | "fp32",      # what fix would do
                    "verdict": "safe in fp16" | "rescale" | "fp32 island" | "rescaled" | "fp32"
                               | "at risk, no remedy",
                    "risk": str | None,       # why fp16 is unsafe there: the bound or calibrated value
                    "why": str,               # why this remedy (costs compared, option, ...)
                    "evidence": str,          # calibration, or the static bounds used
                    "cost": {"transitions", "relative"} | None,          # what the remedy adds
                    "considered": {remedy: {"transitions", "relative"}}}],
      "families": {name: {"title", "summary", "pass"}},   # the registered pattern families (legend)
      "findings": [{"kind", "severity", "op", "op_type", "var", "module", "magnitude", "limit",
                    "source": "static"|"calibration"|"pass", "covered_by", "message",
                    "superseded_by": "calibration" | None, "ignored_by": rule | None}],
      "ranges": [{"var", "op", "op_type", "dtype",
                  "lo", "hi", "may_nan",                   # static, before dtype rounding
                  "observed_lo", "observed_hi",            # typed run (calibration only)
                  "reference_lo", "reference_hi"}],        # fp32 reference (calibration only)
      "placement": {"source": "saved" | "predicted",   # saved by milguard::annotate_placement
                    "summary": PlacementSummary.to_dict(),
                    "ops": {op name: {"device", "rule", "certainty"}}} | None,
      "unknown_ops": [{"op", "op_type"}],
    }

Finding kinds, severities and sources: :mod:`milguard.analysis.findings`. A static finding that
the calibration samples clear carries ``superseded_by: "calibration"``
(:mod:`milguard.analysis.findings.supersede`); one an ignore rule matches carries ``ignored_by``.
Both stay listed but are left out of the ``by_*`` counts and of ``--fail-on``.
Format history: ``milguard.audit/1`` had neither field, no ``analysis`` kind, no
``input_range_origins`` or ``ignore`` option, and counted every finding in ``by_*``;
``milguard.audit/2`` had no decision per pattern and ``covered_by`` named the family's pass for
every pattern of the three families it knew.

``ranges`` lists float vars in program order (function inputs first, const ops left out).
Non-finite numbers are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` in JSON (and
in ``to_dict()``), so the output is strict JSON.

Findings a ``milguard::check_fp16_overflow`` pass recorded during conversion travel in the saved
package's metadata under ``milguard.findings`` (:func:`attach`); ``audit`` of such a package
reports them again with ``source == "pass"``.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import coremltools as ct

from ..analysis.calibrate import calibrate
from ..analysis.findings import (
    Finding, apply_ignores, calibrated_findings, combine, count, parse_ignores, static_findings,
)
from ..analysis.graph import pattern_index, placement_index
from ..analysis.ranges import RangeMap, propagate
from ..errors import MilguardError, ModelError
from ..families import families, family
from ..mil import converted_program, dtype_name, iter_ops, load, module_path, program_state
from ..mil.names import sanitized_op_name, sanitized_var_name
from .display import number

log = logging.getLogger("milguard")

FORMAT = "milguard.audit/3"
METADATA_KEY = "milguard.findings"
METADATA_FORMAT = "milguard.findings/1"
_FROM = re.compile(r"(from )(\S+)")          # "receives ±inf/NaN from <op>" names an upstream op


def jsonable(x: Any) -> Any:
    """Replace non-finite floats by "inf"/"-inf"/"nan" (recursively) so JSON stays strict."""
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):       # numpy scalars
        return jsonable(x.item())
    return x


@dataclass
class AuditReport:
    """The result of :func:`audit`; ``to_dict()`` gives the documented schema."""

    data: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    ranges: RangeMap | None = None
    evidence: Any = None          # what the decisions were made from (keep_fp32 can decide from it too)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(jsonable(self.data), indent=indent, allow_nan=False)

    def to_html(self) -> str:
        from .html import render      # the HTML page lives in its own module
        return render(self.to_dict())

    @property
    def summary(self) -> dict[str, Any]:
        return self.data["summary"]


def audit(model: Any, input_ranges: Mapping[str, tuple[float, float]] | None = None,
          calibration: Any = None, *, function: str = "main", ane_limits: bool = False,
          compute_units: str = "ALL", accumulate: str = "fp32", remedy: str = "auto",
          ignore: Sequence[str] = (), **options: Any) -> AuditReport:
    """Audit ``function`` of a Program, MLModel or ``.mlpackage`` path for fp16 risk; ``ignore``
    holds rules (``KIND``, ``GLOB``, ``KIND:GLOB``) for findings known to be harmless.

    Every matched region gets the decision ``milguard fix`` would make with the same options
    (``remedy``, ``compute_units``, ``scope``, ``families``, ``exclude``, ``keep_native``) and data:
    :mod:`milguard.actions.decide`."""
    rules = parse_ignores(ignore)
    loaded = load(model)
    program = loaded.program
    if function not in program.functions:
        raise ModelError(f"no function '{function}' in the program (has {sorted(program.functions)})")
    fn = program.functions[function]
    matches = pattern_index(program, function)
    ranges = propagate(program, input_ranges, function=function, accumulate=accumulate)
    bounds = static_findings(fn, ranges, matches, ane_limits=ane_limits) + \
        _pass_findings(loaded.metadata, function)
    cal, observed = None, []
    if calibration is not None:
        cal = calibrate(program, calibration, function=function, accumulate=accumulate)
        observed = calibrated_findings(fn, cal, matches, ane_limits=ane_limits)
    decisions, evidence = _decisions(program, function, matches, cal, input_ranges, compute_units, accumulate,
                                     remedy, options)
    findings = _covered(apply_ignores(combine(bounds, observed, cal, fn), rules), matches, decisions)
    placement = _placement(fn, compute_units, loaded.metadata, function)
    data = {
        "format": FORMAT,
        "model": _model_name(model, loaded),
        "function": function,
        "options": {"input_ranges": {k: list(v) for k, v in ranges.input_ranges.items()},
                    "input_range_origins": dict(ranges.input_origins),
                    "ane_limits": bool(ane_limits), "compute_units": str(compute_units),
                    "accumulate": accumulate, "calibration_samples": cal.samples if cal else None,
                    "ignore": [r.text for r in rules]},
        "summary": {**_summary(fn, matches, findings, ranges), "decisions": _count_decisions(decisions)},
        "patterns": _patterns(matches, decisions),
        "families": {f.name: {"title": f.title, "summary": f.summary, "pass": f.pass_name}
                     for f in families().values()},
        "findings": [f.to_dict() for f in findings],
        "ranges": _ranges(fn, ranges, cal),
        "placement": placement,
        "unknown_ops": [{"op": n, "op_type": t} for n, t in ranges.unknown_ops],
    }
    return AuditReport(data=data, findings=findings, ranges=ranges, evidence=evidence)


def _model_name(model: Any, loaded: Any) -> str:
    if loaded.path is not None:
        return str(loaded.path)
    return "<MLModel>" if isinstance(model, ct.models.MLModel) else "<Program>"


def _precision(ops: list[Any]) -> str:
    kinds = {dtype_name(op.outputs[0]) for op in ops
             if op.op_type != "const" and op.outputs and dtype_name(op.outputs[0]) in ("fp16", "fp32")}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")


def _summary(fn: Any, matches: Mapping[str, Any], findings: list[Finding], ranges: RangeMap) -> dict:
    ops = [op for op in iter_ops(fn) if op.op_type != "const"]
    types: dict[str, int] = {}
    for op in ops:
        types[op.op_type] = types.get(op.op_type, 0) + 1
    first = [dtype_name(op.outputs[0]) if op.outputs else None for op in ops]
    return {
        "ops": len(ops),
        "op_types": dict(sorted(types.items())),
        "fp16_ops": first.count("fp16"),
        "fp32_ops": first.count("fp32"),
        "other_ops": len(ops) - first.count("fp16") - first.count("fp32"),
        "patterns": len(_unique(matches)),
        "findings": _counts(findings),
        "unknown_ops": len(ranges.unknown_ops),
    }


def _counts(findings: list[Finding]) -> dict[str, Any]:
    active = [f for f in findings if f.active]
    superseded = sum(bool(f.superseded_by) for f in findings)
    return {"total": len(findings), "active": len(active), "superseded": superseded,
            "ignored": len(findings) - len(active) - superseded, **count(active)}


def _unique(matches: Mapping[str, Any]) -> list[Any]:
    return list({id(m): m for m in matches.values()}.values())


def _decisions(program: Any, function: str, matches: Mapping[str, Any], cal: Any, input_ranges: Any,
               compute_units: str, accumulate: str, remedy: str,
               options: Mapping[str, Any]) -> tuple[dict[int, Any], Any]:
    """({id(match): Decision}, the evidence they were made from), made as ``milguard fix`` makes
    them; calibration, when given, is the evidence (the audit's own calibration run is reused)."""
    from ..actions.decide import Context, decide_match
    from ..actions.options import Options
    from ..analysis.evidence import calibration_evidence

    opts = Options.make(remedy=remedy, compute_units=compute_units, accumulate=accumulate,
                        input_ranges=dict(input_ranges) if input_ranges else None, **options)
    ctx = Context(program, opts)
    if cal is not None:
        ctx.use(calibration_evidence(cal, accumulate))
    return {id(m): decide_match(m, ctx) for m in _unique(matches)}, ctx.evidence(function)


def _covered(findings: list[Finding], matches: Mapping[str, Any], decisions: Mapping[int, Any]) -> list[Finding]:
    """A finding inside a region is covered by the family pass when milguard remedies that region
    (or already has); otherwise nothing milguard does covers it."""
    out = []
    for f in findings:
        m = matches.get(f.op)
        d = decisions.get(id(m)) if m is not None else None
        out.append(replace(f, covered_by=_covering_pass(m, d) if d is not None else None))
    return out


def _covering_pass(match: Any, decision: Any) -> str | None:
    """The family pass that covers ``match``: when milguard remedies the region, or already has."""
    return family(match.kind).pass_name if decision.remedy != "none" or decision.state != "fp16" else None


def _count_decisions(decisions: Mapping[int, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for d in decisions.values():
        counts[d.verdict] = counts.get(d.verdict, 0) + 1
    return {"by_verdict": counts, "fixable": sum(d.fixable for d in decisions.values()),
            "evidence": "; ".join(sorted({d.evidence for d in decisions.values()}))}


def _patterns(matches: Mapping[str, Any], decisions: Mapping[int, Any]) -> list[dict[str, Any]]:
    out = []
    for m in _unique(matches):
        module = next((module_path(op) for op in m.ops if module_path(op)), None)
        d = decisions[id(m)]
        out.append({"kind": m.kind, "variant": m.variant, "rule": getattr(m.rule, "name", m.kind),
                    "ops": [op.name for op in m.ops], "precision": _precision(m.ops),
                    "module": module, "covered_by": _covering_pass(m, d),
                    "state": d.state, "remedy": d.remedy, "verdict": d.verdict, "risk": d.risk, "why": d.why,
                    "evidence": d.evidence, "cost": d.cost.to_dict() if d.cost else None,
                    "considered": {k: v.to_dict() for k, v in d.considered.items()}})
    return out


def _ranges(fn: Any, ranges: RangeMap, cal: Any) -> list[dict[str, Any]]:
    rows = []

    def row(var: Any, op_name: str, op_type: str) -> None:
        dt = dtype_name(var)
        if dt not in ("fp16", "fp32") or var.name not in ranges:
            return
        w = ranges.wanted[var.name]
        r = {"var": var.name, "op": op_name, "op_type": op_type, "dtype": dt,
             "lo": w.lo if not w.is_empty else None, "hi": w.hi if not w.is_empty else None,
             "may_nan": w.may_nan}
        if cal is not None:
            for prefix, table in (("observed", cal.actual), ("reference", cal.reference)):
                iv = table.get(var.name)
                r[f"{prefix}_lo"] = iv.lo if iv is not None and not iv.is_empty else None
                r[f"{prefix}_hi"] = iv.hi if iv is not None and not iv.is_empty else None
        rows.append(r)

    for name, var in fn.inputs.items():
        row(var, name, "input")
    for op in iter_ops(fn):
        if op.op_type == "const":
            continue
        for var in op.outputs:
            row(var, op.name, op.op_type)
    return rows


def _placement(fn: Any, compute_units: str, metadata: Mapping[str, str],
               function: str) -> dict[str, Any] | None:
    """Expected placement: the annotations a ``milguard::annotate_placement`` run saved in the
    package when there are some (``source: "saved"``), else predicted now (``source: "predicted"``)."""
    from ..placement import summarize
    from ..placement.persist import METADATA_KEY as PLACEMENT_KEY, from_metadata

    source = "predicted"
    if PLACEMENT_KEY in metadata:
        places, source = from_metadata(metadata[PLACEMENT_KEY], function), "saved"
    else:
        places = placement_index(fn, compute_units)
    if not places:
        return None
    return {"source": source, "summary": summarize(fn, places).to_dict(),
            "ops": {name: p.to_dict() for name, p in places.items()}}


# ---- findings that travel in a saved package ---------------------------------------------------

def _pass_findings(metadata: Mapping[str, str], function: str) -> list[Finding]:
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return []
    try:
        record = json.loads(raw)
        items = record["functions"].get(function, [])
        out = []
        for d in items:
            d = dict(d, source="pass")
            d["magnitude"], d["limit"] = number(d.get("magnitude")), number(d.get("limit"))
            out.append(Finding.from_dict(d))
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"unreadable '{METADATA_KEY}' metadata in the model ({exc})") from None


def attach(mlmodel: "ct.models.MLModel") -> dict[str, list[Finding]]:
    """Copy the findings a ``milguard::check_fp16_overflow`` pass recorded during ``ct.convert``
    into ``mlmodel.user_defined_metadata["milguard.findings"]`` so they survive ``save``.

    Keys are the final names: ops that survived the rest of the pipeline are looked up by
    identity in the converted program (renamed ops get their new names); ops removed later get
    the name ``mil_backend::sanitize_name_strings`` would give them. Returns {function: findings}.
    """
    if not isinstance(mlmodel, ct.models.MLModel):
        raise MilguardError(f"attach needs an MLModel, got a {type(mlmodel).__name__}")
    program = converted_program(mlmodel)
    state = program_state(program).get("findings") if program is not None else None
    if state is None:
        raise MilguardError("attach: the model carries no findings; convert it with the "
                            "milguard::check_fp16_overflow pass in its pipeline")
    recorded, refs = state["by_function"], state["ops_by_name"]
    alive = {id(op) for fn in program.functions.values() for op in iter_ops(fn)}
    final = {old: op.name if id(op) in alive else sanitized_op_name(old) for old, op in refs.items()}
    out: dict[str, list[Finding]] = {}
    for fname, items in recorded.items():
        renamed = []
        for op, var, f in items:
            if op is not None and id(op) in alive:
                op_name, var_name = op.name, var.name if var is not None else f.var
            else:
                op_name, var_name = sanitized_op_name(f.op), sanitized_var_name(f.var)
            message = _FROM.sub(lambda m: m.group(1) + final.get(m.group(2), m.group(2)), f.message)
            renamed.append(Finding.from_dict({**f.to_dict(), "op": op_name, "var": var_name,
                                              "message": message}))
        out[fname] = renamed
    record = {"format": METADATA_FORMAT,
              "options": state["options"],
              "functions": {k: [f.to_dict() for f in v] for k, v in out.items()}}
    mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(jsonable(record), separators=(",", ":"),
                                                             allow_nan=False)
    return out
