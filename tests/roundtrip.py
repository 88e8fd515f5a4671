"""The fix -> audit round trip: what the audit of a model suggests is what ``keep_fp32`` does, and
the audit of the result, with the same options and data, finds nothing left to fix."""
from __future__ import annotations

from typing import Any

import milguard

VERB = {"rescaled": "rescale", "fp32": "fp32"}


def gating(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["severity"] in ("error", "warning")
            and f.get("superseded_by") is None and f.get("ignored_by") is None]


def assert_fix_round_trip(model: Any, **options: Any) -> Any:
    """Audit, fix and audit again with ``options``; returns the fixed model."""
    before = milguard.audit(model, **options).to_dict()
    fixed = milguard.keep_fp32(model, **options)
    after = milguard.audit(fixed, **options).to_dict()
    suggested = sorted((p["kind"], p["remedy"]) for p in before["patterns"] if p["remedy"] != "none")
    done = sorted((p["kind"], VERB[p["state"]]) for p in after["patterns"] if p["state"] != "fp16")
    assert suggested == done
    assert after["summary"]["decisions"]["fixable"] == 0
    assert [(f["op"], f["kind"]) for f in gating(after) if f["covered_by"]] == []
    return fixed
