"""The terminal summary of an audit: patterns and their precision, findings by severity, placement.

``render(report_dict)`` reads the dict of ``AuditReport.to_dict()`` (schema in
:mod:`milguard.report.audit`) and returns plain text (no colour codes, so it reads the same in a
CI log). ``compare(before, after)`` is the short before/after table ``milguard fix`` prints.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from ..analysis.findings import is_active
from .display import gating, pass_kind

SEVERITY_ORDER = ("error", "warning", "info")
MAX_FINDINGS = 40          # rows of error/warning findings shown; the rest are counted
MAX_SEGMENTS = 12
ORIGIN_NOTE = {"default": " (default)", "indices": " (gather indices)", "dtype": " (dtype range)"}


def render(d: Mapping[str, Any], *, max_findings: int = MAX_FINDINGS, title: str = "milguard audit") -> str:
    """The summary of one audit as text."""
    parts = [_header(d, title), _patterns(d), _findings(d, max_findings), _placement(d)]
    return "\n\n".join(p for p in parts if p) + "\n"


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Counts before and after a repair: ops by precision, findings by severity and kind."""
    def counts(d: Mapping[str, Any]) -> dict[str, int]:
        s = d["summary"]
        by_sev, by_kind = s["findings"]["by_severity"], s["findings"]["by_kind"]
        counted = gating(d)
        return {"fp16 ops": s["fp16_ops"], "fp32 ops": s["fp32_ops"],
                **{f"{k} findings": by_sev.get(k, 0) for k in SEVERITY_ORDER},
                **{f"  {k} (error/warning)": sum(f["kind"] == k for f in counted)
                   for k in sorted(set(by_kind))},
                "transitions": ((d.get("placement") or {}).get("summary") or {}).get("transitions", 0)}

    b, a = counts(before), counts(after)
    rows = [(name, str(b.get(name, 0)), str(a.get(name, 0))) for name in dict.fromkeys([*b, *a])
            if not name.startswith("  ") or b.get(name, 0) or a.get(name, 0)]
    return "\n".join(table(rows, ("", "before", "after")))


# ---- sections ------------------------------------------------------------------------------

def remedies(done: Sequence[Mapping[str, Any]]) -> str:
    """'2 regions rescaled, 1 kept fp32' for the decisions a repair applied (none: 'no region changed')."""
    rescaled = sum(d["remedy"] == "rescale" for d in done)
    kept = sum(d["remedy"] == "fp32" for d in done)
    parts = [f"{n} region{'s' * (n != 1)} {what}" for n, what in ((rescaled, "rescaled"), (kept, "kept fp32")) if n]
    return ", ".join(parts) or "no region changed"


def _header(d: Mapping[str, Any], title: str) -> str:
    s, opts = d["summary"], d["options"]
    origins = opts.get("input_range_origins", {})
    ranges = ", ".join(f"{n}=[{_num(lo)}, {_num(hi)}]{ORIGIN_NOTE.get(origins.get(n), '')}"
                       for n, (lo, hi) in opts["input_ranges"].items())
    samples = opts.get("calibration_samples")
    cal = f"{samples} calibration sample{'s' if samples != 1 else ''}" if samples else "no calibration"
    lines = [f"{title}: {d['model']} (function {d['function']})",
             f"  {s['ops']} ops: {s['fp16_ops']} fp16, {s['fp32_ops']} fp32, {s['other_ops']} other",
             f"  input ranges: {ranges or '-'}; {cal}"]
    if opts.get("ignore"):
        lines.append(f"  ignoring: {', '.join(opts['ignore'])}")
    if s.get("unknown_ops"):
        types = sorted({u["op_type"] for u in d.get("unknown_ops", [])})
        lines.append(f"  {s['unknown_ops']} ops without a range rule ({', '.join(types)}): "
                     "static bounds after them are unbounded")
    return "\n".join(lines)


def _patterns(d: Mapping[str, Any]) -> str:
    pats = d["patterns"]
    if not pats:
        return "Regions: no norm or softmax pattern found"
    modules = any(p.get("module") for p in pats)
    rows = [(p["kind"], p["variant"], p["precision"], p.get("verdict", "-"), str(len(p["ops"])),
             p["ops"][0] if p["ops"] else "-", *((p.get("module") or "-",) if modules else ())) for p in pats]
    head = ("kind", "variant", "precision", "decision", "ops", "first op", *(("module",) if modules else ()))
    evidence = d["summary"].get("decisions", {}).get("evidence") or "-"
    lines = [f"Regions ({len(pats)}): what milguard decides for each, from {evidence}",
             *table(rows, head, indent=2)]
    notable = [p for p in pats if p.get("risk") or p.get("remedy", "none") != "none"]
    for p in notable[:MAX_FINDINGS]:
        cost = p.get("cost") or {}
        price = (f"; +{cost['transitions']} transitions, +{cost['relative']:.3g} relative cost"
                 if cost else "")
        lines.append(f"  {p['kind']} at {p['ops'][0]}: {p.get('verdict')}. risk: {p.get('risk') or 'none'}. "
                     f"why: {p.get('why')}{price}")
    if len(notable) > MAX_FINDINGS:
        lines.append(f"  ... and {len(notable) - MAX_FINDINGS} more regions (see --json or --html)")
    fixable = d["summary"].get("decisions", {}).get("fixable", 0)
    lines.append(f"  milguard fix would change {fixable} region{'s' * (fixable != 1)}" if fixable
                 else "  milguard fix would change nothing")
    legend = d.get("families") or {}
    for kind in dict.fromkeys(p["kind"] for p in pats):
        if kind in legend:
            lines.append(f"  {kind}: {legend[kind]['summary']}")
    return "\n".join(lines)


def _findings(d: Mapping[str, Any], max_findings: int) -> str:
    items = [f for f in d["findings"] if is_active(f)]
    counts = d["summary"]["findings"]
    by_sev = counts["by_severity"]
    head = "Findings: " + (", ".join(f"{by_sev.get(s, 0)} {s}" for s in SEVERITY_ORDER) if items else "none")
    quiet = _suppressed(counts)
    shown = sorted((f for f in items if f["severity"] != "info"),
                   key=lambda f: SEVERITY_ORDER.index(f["severity"]))
    if not shown:
        return "\n".join([head, *quiet])
    modules = any(f.get("module") for f in shown)       # a saved package carries no torch scopes
    rows = [(f["severity"], f["kind"], f["op"], f["op_type"], *((f.get("module") or "-",) if modules else ()),
             f["source"], pass_kind(f.get("covered_by")), f["message"]) for f in shown[:max_findings]]
    head_row = ("severity", "kind", "op", "type", *(("module",) if modules else ()), "source", "fix", "message")
    lines = [head, *table(rows, head_row, indent=2)]
    if len(shown) > max_findings:
        lines.append(f"  ... and {len(shown) - max_findings} more error/warning findings (see --json or --html)")
    if by_sev.get("info"):
        lines.append(f"  {by_sev['info']} info findings (inf/NaN passed on from the causes above, additive "
                     "masks, epsilons that keep enough bits) are listed in --json and --html")
    lines.extend(quiet)
    lines.append("  fix: the milguard pass whose remedy covers the op (milguard fix MODEL -o OUT); - : none")
    return "\n".join(lines)


def _suppressed(counts: Mapping[str, Any]) -> list[str]:
    """A line for the findings that are listed but not counted: superseded and ignored."""
    parts = []
    if counts.get("superseded"):
        parts.append(f"{counts['superseded']} static findings superseded by calibration (the samples "
                     "stayed finite and within the limit there)")
    if counts.get("ignored"):
        parts.append(f"{counts['ignored']} ignored")
    return [f"  {' and '.join(parts)}: listed in --json and --html, not counted"] if parts else []


def _placement(d: Mapping[str, Any]) -> str:
    placement = d.get("placement")
    if not placement:
        return "Expected placement: not available"
    s = placement["summary"]
    segs = s["segments"]
    chain = " -> ".join(f"{g['device']} ({len(g['ops'])} ops)" for g in segs[:MAX_SEGMENTS])
    if len(segs) > MAX_SEGMENTS:
        chain += f" -> ... ({len(segs) - MAX_SEGMENTS} more)"
    pairs = ", ".join(f"{k} {v}" for k, v in sorted(s.get("transitions_by_pair", {}).items()))
    share = ", ".join(f"{dev} {100 * v:.0f}%" for dev, v in s["flops_share"].items())
    return "\n".join([
        f"Expected placement (compute units {d['options']['compute_units']}; a static prediction):",
        f"  segments ({s['segment_count']}): {chain or '-'}",
        f"  transitions: {s['transitions']}" + (f" ({pairs})" if pairs else "")
        + f"; fp32 islands: {s['fp32_islands']}",
        f"  FLOP share: {share}; relative cost {s['relative_cost']:.4g} ({s['relative_cost_unit']})",
    ])


# ---- helpers -------------------------------------------------------------------------------

def table(rows: Iterable[Sequence[str]], headers: Sequence[str], indent: int = 0) -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        body = "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths[:-1]))
        return (pad + body + "  " + cells[-1]).rstrip() if len(cells) > 1 else pad + cells[0]

    return [line(headers), *(line(r) for r in rows)]


def _num(x: Any) -> str:
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:g}"
