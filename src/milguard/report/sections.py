"""The HTML sections of the audit page, each a function of the audit dict returning HTML.

``verdict`` (one line: how many fp16 findings, how many of them ``milguard fix`` covers),
``cards`` (the counts), ``findings_section``, ``patterns_section`` and ``placement_section``
(tables), ``options_line`` and ``caption`` (text around the figure). Every value from the report
is escaped.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..analysis.findings import is_active
from .display import DEVICE_NAME, esc, fmt, gating, pass_code, pass_kind


def verdict(d: Mapping[str, Any]) -> str:
    """The headline: how many overflow/NaN findings, and how many of them ``milguard fix`` covers."""
    findings = gating(d)
    over = [f for f in findings if f["kind"] in ("overflow", "nan")]
    covered = [f for f in over if f.get("covered_by")]
    if not findings:
        return "<div class='verdict ok'>No fp16 error or warning findings.</div>"
    regions = sorted({pass_kind(f["covered_by"]) for f in covered})
    text = (f"{len(over)} overflow/NaN finding{'s' * (len(over) != 1)} (error or warning)"
            f", {len(findings) - len(over)} other")
    if covered:
        text += (f". {len(covered)} of them are inside {', '.join(regions)} regions that "
                 f"<code>milguard fix</code> remedies")
    cls = "bad" if over else "warn"
    return f"<div class='verdict {cls}'>{text}.</div>"


def cards(d: Mapping[str, Any]) -> str:
    s = d["summary"]
    sev = s["findings"]["by_severity"]
    place = (d.get("placement") or {}).get("summary")
    cards = [
        ("ops", f"{s['ops']}", f"{s['fp16_ops']} fp16 &middot; {s['fp32_ops']} fp32"),
        ("patterns", f"{s['patterns']}", ", ".join(sorted({p['kind'] for p in d['patterns']})) or "none"),
        ("errors", f"{sev.get('error', 0)}", f"{sev.get('warning', 0)} warnings &middot; {sev.get('info', 0)} info"),
    ]
    if place:
        cards.append(("device segments", f"{place['segment_count']}",
                      f"{place['transitions']} transitions &middot; {place['fp32_islands']} fp32 islands"))
    return "<div class=cards>" + "".join(
        f"<div class=card><div class=k>{k}</div><div class=v>{v}</div><div class=s>{sub}</div></div>"
        for k, v, sub in cards) + "</div>"


def findings_section(d: Mapping[str, Any]) -> str:
    order = {"error": 0, "warning": 1, "info": 2}
    listed = sorted(d["findings"], key=lambda f: order.get(f["severity"], 3))
    items = [f for f in listed if is_active(f)]
    quiet = [f for f in listed if not is_active(f)]
    modules = any(f.get("module") for f in items)       # a saved package may carry no torch scopes
    head = ("severity", "kind", "op", "type", *(("torch module",) if modules else ()), "magnitude", "limit",
            "source", "kept fp32 by", "message")

    def rows(fs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        return [[f"<span class='sev {f['severity']}'>{f['severity']}</span>", esc(f["kind"]),
                 f"<code>{esc(f['op'])}</code>", esc(f["op_type"]),
                 *((esc(f.get("module") or "–"),) if modules else ()),
                 f"<span class=num>{fmt(f['magnitude'])}</span>", f"<span class=num>{fmt(f['limit'], 6)}</span>",
                 esc(f["source"]), pass_code(f.get("covered_by")), esc(f["message"])] for f in fs]

    main = [f for f in items if f["severity"] != "info"]
    info = [f for f in items if f["severity"] == "info"]
    out = [f"<h2>Findings ({len(items)})</h2>"]
    if items and not modules:
        out.append("<p class=note>The model carries no torch module names (they are kept in a model fresh "
                   "from <code>ct.convert</code>, not in a saved package).</p>")
    out.append(table(head, rows(main), "findings") if main else "<p>No error or warning findings.</p>")
    if info:
        out.append(f"<details><summary>{len(info)} info findings: inf/NaN passed on from upstream, "
                   "additive masks, epsilons that keep enough bits"
                   f"</summary>{table(head, rows(info), 'info-findings')}</details>")
    if quiet:
        folded = table(("not counted", *head), [[_not_counted(f), *r] for f, r in zip(quiet, rows(quiet))],
                       "quiet-findings")
        out.append(f"<details><summary>{len(quiet)} findings not counted: static bounds superseded by "
                   f"calibration, or ignored</summary>{folded}</details>")
    return "\n".join(out)


def _not_counted(f: Mapping[str, Any]) -> str:
    if f.get("superseded_by"):
        return f"superseded by {esc(f['superseded_by'])}"
    return f"ignored (<code>{esc(f.get('ignored_by'))}</code>)"


def patterns_section(d: Mapping[str, Any]) -> str:
    pats = d["patterns"]
    modules = any(p.get("module") for p in pats)
    head = ("kind", "variant", "precision", "ops", *(("torch module",) if modules else ()), "decision", "why",
            "first op … last op")
    rows = [[esc(p["kind"]), esc(p["variant"]), f"<span class='prec {esc(p['precision'])}'>{esc(p['precision'])}</span>",
             str(len(p["ops"])), *((esc(p.get("module") or "–"),) if modules else ()),
             f"<b>{esc(p.get('verdict', '–'))}</b>", esc("; ".join(s for s in (p.get("risk"), p.get("why")) if s)),
             f"<code>{esc(p['ops'][0])}</code> … <code>{esc(p['ops'][-1])}</code>" if p["ops"] else "–"]
            for p in pats]
    decisions = d["summary"].get("decisions", {})
    fixable = decisions.get("fixable", 0)
    note = (f"<p class=note><code>milguard fix</code> would change {fixable} region{'s' * (fixable != 1)} "
            f"(decided from {esc(decisions.get('evidence') or '–')}).</p>")
    return f"<h2>Regions ({len(pats)})</h2>" + (note + table(head, rows, "patterns") if rows else "<p>None found.</p>")


def placement_section(d: Mapping[str, Any]) -> str:
    place = d.get("placement")
    if not place:
        return "<h2>Expected placement</h2><p>Not available.</p>"
    s = place["summary"]
    share = ", ".join(f"{DEVICE_NAME[k]} {100 * v:.0f}%" for k, v in s["flops_share"].items())
    pairs = ", ".join(f"{k}: {v}" for k, v in sorted(s["transitions_by_pair"].items())) or "–"
    summary = table(("segments", "transitions", "by pair", "fp32 islands", "crossings", "FLOP share",
                      "relative cost"),
                     [[str(s["segment_count"]), str(s["transitions"]), esc(pairs), str(s["fp32_islands"]),
                       str(s["crossings"]), esc(share), f"{s['relative_cost']:.4g}"]], "placement")
    segs = table(("#", "device", "ops", "FLOPs", "first op … last op"),
                  [[str(i), f"<span class='dev {g['device']}'>{DEVICE_NAME[g['device']]}</span>",
                    str(len(g["ops"])), f"{g['flops']:.3g}",
                    f"<code>{esc(g['ops'][0])}</code> … <code>{esc(g['ops'][-1])}</code>" if g["ops"] else "–"]
                   for i, g in enumerate(s["segments"])], "segments")
    return ("<h2>Expected placement</h2>"
            f"<p class=note>A static prediction for compute units {esc(d['options']['compute_units'])} "
            f"(only MLComputePlan on a Mac measures it). Relative cost is in "
            f"{esc(s['relative_cost_unit'])}.</p>" + summary + segs)


def options_line(d: Mapping[str, Any]) -> str:
    o = d["options"]
    ranges = ", ".join(f"{esc(k)}=[{fmt(lo)}, {fmt(hi)}]" for k, (lo, hi) in o["input_ranges"].items())
    n = o.get("calibration_samples")
    cal = f"{n} calibration sample{'s' * (n != 1)}" if n else "no calibration"
    return (f"input ranges {ranges or '–'} &middot; {cal} &middot; compute units {esc(o['compute_units'])}"
            + (" &middot; Neural Engine limits" if o.get("ane_limits") else ""))


def caption(d: Mapping[str, Any]) -> str:
    cal = d["options"].get("calibration_samples")
    return ("Each column is one float value of the program, in program order. Hollow markers: the static "
            "bound from the input ranges; " + ("filled markers: the largest |value| the fp32 reference "
            "reached on the calibration samples; red crosses: inf/NaN in the fp16 run; " if cal else "")
            + "rings: error and warning findings. Colour is the value's precision, the marker shape its "
            "expected device; shaded columns are the matched patterns. Anything in the red band does not "
            "fit in fp16.")


def table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
