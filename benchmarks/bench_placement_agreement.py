"""Placement agreement with published MLComputePlan observations, held-out ones apart.

``milguard.placement.published`` holds every published observation the project could source,
each with the program it was taken on rebuilt. Observations whose source a rule of the predictor
cites are *fitted*: the rule or its threshold was set from them (``size_floor_flops`` between the
Vx#435 matmuls, ``sdpa_min_elements`` between rows of the Vx#437 table), so agreeing with them
measures nothing. Only the *held-out* observations measure the predictor; when there are none
the report says "not validated".

Reported per observation: compute units, ops compared, ops agreeing, provenance (verbatim from a
printed plan or table, or reconstructed from a sentence); per split: observations, ops and
accuracy. No timing.

Run: ``python benchmarks/bench_placement_agreement.py``; writes results/placement_agreement.{json,md}.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))   # common.py and figures.py beside this script
import common  # noqa: E402
import figures  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "placement_agreement"


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Placement agreement with published MLComputePlan observations", "",
             figures.agreement_sentence(result), "",
             "| observation | split (rules citing its source) | provenance | compute units | ops compared | agreeing "
             "| mismatches (op: truth vs predicted) |",
             "|---|---|---|---|---:|---:|---|"]
    for r in result["plans"]:
        mism = "; ".join(f"{o}: {t} vs {p}" for o, t, p in r["mismatches"]) or "–"
        split = r["split"].replace("_", "-") + (f" ({', '.join(r['cited_by'])})" if r["cited_by"] else "")
        lines.append(f"| {r['name']} | {split} | {r['provenance']} | {r['compute_units']} | "
                     f"{r['compared']} | {r['correct']} | {mism} |")
    lines += ["", "Fitted: a rule of the predictor cites the observation's source (the rule or its threshold was set "
                  "from it); agreement there is on the training set. Sources: `src/milguard/placement/"
                  "published_plans/`, each dump with its URL and a note on what was rebuilt.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    common.quiet()
    from milguard.placement.published import agreement_report

    result = {"name": NAME, **agreement_report()}
    common.save_results(RESULTS, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
