"""Audits a CI can gate on: static "may" findings superseded by calibration, constants reported
once, the finfo(float32).min additive mask, and what still fails ``--fail-on overflow``.

The attention program is the pattern of a default fp16 conversion of a HF LLaMA: q·kᵀ logits, the
causal mask ``finfo(float32).min`` (-inf in fp16) added, softmax. With q, k in [-40, 40] the
static bound of a logit is 64·40² = 102400 > 65504: a sound warning that real activations
(N(0, 1)) never come near.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from milguard import fp16
from milguard.analysis.findings import Finding, combine
from milguard.analysis.calibrate import Calibration
from milguard.analysis.interval import Interval
from milguard.mil import Function, Program, mb, types
from milguard.report.audit import audit
from milguard.testing import failing

SEQ, DIM = 8, 64
RANGES = {"q": (-40.0, 40.0), "k": (-40.0, 40.0)}
F32_MIN = np.float32(np.finfo(np.float32).min)


def causal(fully_masked_row: bool = False) -> np.ndarray:
    mask = np.triu(np.full((SEQ, SEQ), F32_MIN, np.float32), 1)
    if fully_masked_row:
        mask[0, :] = F32_MIN
    with np.errstate(over="ignore"):
        return mask[None].astype(np.float16)             # finfo(float32).min is -inf in fp16


def attention(mask: np.ndarray | None = None, use: str = "add") -> Program:
    mask = causal() if mask is None else mask
    prog = Program()
    spec = {n: mb.placeholder(shape=(1, SEQ, DIM), dtype=types.fp16) for n in ("q", "k")}
    with Function(spec) as fn:
        logits = mb.matmul(x=fn.inputs["q"], y=fn.inputs["k"], transpose_y=True, name="logits")
        masked = getattr(mb, use)(x=logits, y=mb.const(val=mask, name="causal_mask"), name="masked")
        probs = mb.softmax(x=masked, axis=-1, name="probs")
        fn.set_outputs([mb.relu(x=probs, name="out")])
    prog.add_function("main", fn)
    return prog


def tame(seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    return {n: g.normal(0, 1, (1, SEQ, DIM)).astype(np.float16) for n in ("q", "k")}


def planted() -> dict[str, np.ndarray]:
    sample = tame()
    sample["q"][0, 3, :4] = sample["k"][0, 1, :4] = 160.0        # a logit of 4·160² = 102400
    return sample


def by_op(d, op):
    return [f for f in d["findings"] if f["op"] == op]


def test_static_bound_alone_fails_overflow():
    d = audit(attention(), RANGES).to_dict()
    assert {(f["op"], f["kind"]) for f in failing(d["findings"], "overflow")} == {
        ("logits", "overflow"), ("masked", "nan")}


def test_calibration_supersedes_static_warnings_and_the_model_passes():
    d = audit(attention(), RANGES, [tame(0), tame(1)]).to_dict()
    assert failing(d["findings"], "overflow") == []
    logits = by_op(d, "logits")
    assert [(f["source"], f["severity"], f["superseded_by"]) for f in logits] == [
        ("static", "warning", "calibration")]
    # the masked logits hold -inf (the mask) but never NaN: the static "may produce NaN" is cleared
    nan = [f for f in by_op(d, "masked") if f["kind"] == "nan"]
    assert [f["superseded_by"] for f in nan] == ["calibration"]
    counts = d["summary"]["findings"]
    assert counts["superseded"] >= 2 and counts["active"] + counts["superseded"] == counts["total"]
    assert counts["by_kind"].get("nan", 0) == 0                   # by_* count active findings only


def test_planted_overflow_still_fails_and_the_static_bound_stays():
    d = audit(attention(), RANGES, [planted()]).to_dict()
    bad = failing(d["findings"], "overflow")
    assert ("logits", "calibration", "error") in {(f["op"], f["source"], f["severity"]) for f in bad}
    static = [f for f in by_op(d, "logits") if f["source"] == "static"]
    assert [f["superseded_by"] for f in static] == [None]          # calibration confirms it


def test_the_causal_mask_is_one_info_finding():
    d = audit(attention(), RANGES, [tame()]).to_dict()
    mask = by_op(d, "causal_mask")
    assert [(f["kind"], f["severity"], f["source"]) for f in mask] == [("overflow", "info", "static")]
    assert "every row" in mask[0]["message"] and mask[0]["superseded_by"] is None


@pytest.mark.parametrize("mask,use,why", [
    (causal(fully_masked_row=True), "add", "a whole row along the softmax axis of probs is -inf"),
    (causal(), "mul", "it is used by mul, not only added"),
    (-causal(), "add", "it holds +inf or NaN"),
])
def test_a_mask_that_can_break_softmax_stays_a_warning(mask, use, why):
    d = audit(attention(mask, use), RANGES, [tame()]).to_dict()
    consts = by_op(d, "causal_mask")
    assert [(f["severity"], f["source"]) for f in consts] == [("warning", "static")]
    assert why in consts[0]["message"]
    assert consts[0] in failing(d["findings"], "overflow")


def test_a_fully_masked_row_gives_nan_that_calibration_reports():
    d = audit(attention(causal(fully_masked_row=True)), RANGES, [tame()]).to_dict()
    probs = [f for f in by_op(d, "probs") if f["source"] == "calibration"]
    assert [(f["kind"], f["severity"]) for f in probs] == [("nan", "error")]


# ---- supersession rules, one kind at a time -----------------------------------------------------

def _finding(kind, op="op", var="v", severity="warning", limit=fp16.MAX, source="static"):
    return Finding(kind=kind, severity=severity, op=op, op_type="add", var=var, module=None,
                   magnitude=1e5, limit=limit, source=source, covered_by=None, message=kind)


def _fn_with(var_names, op_type="add"):
    """A stand-in function: one op of ``op_type`` producing every var of ``var_names``."""
    class _Var:
        def __init__(self, name):
            self.name = name

    class _Op:
        def __init__(self):
            self.op_type, self.name, self.blocks = op_type, "op", []
            self.outputs = [_Var(n) for n in var_names]
            self.inputs = {}

    class _Fn:
        operations = [_Op()]
    return _Fn()


FINITE, WITH_INF, WITH_NAN = Interval(-3, 3), Interval(-math.inf, 3), Interval(-3, 3, True)


@pytest.mark.parametrize("kind,ref,got,cleared", [
    ("overflow", FINITE, FINITE, True),
    ("overflow", Interval(-7e4, 7e4), FINITE, False),       # the reference wants more than 65504
    ("overflow", FINITE, WITH_INF, False),                  # the typed run is not finite there
    ("nan", FINITE, WITH_INF, True),                        # -inf (a mask) is not NaN
    ("nan", FINITE, WITH_NAN, False),
    ("nonfinite", FINITE, FINITE, True),
    ("nonfinite", FINITE, WITH_INF, False),
    ("accumulation", FINITE, FINITE, False),                # structural: never superseded
    ("analysis", FINITE, FINITE, False),
])
def test_supersession_per_kind(kind, ref, got, cleared):
    cal = Calibration(function="main", samples=1, reference={"v": ref}, actual={"v": got})
    out = combine([_finding(kind)], [], cal, _fn_with(["v"]))
    assert (out[0].superseded_by == "calibration") is cleared


def test_errors_constants_and_unseen_vars_are_never_superseded():
    cal = Calibration(function="main", samples=1, reference={"v": FINITE}, actual={"v": FINITE})
    assert combine([_finding("overflow", severity="error")], [], cal, _fn_with(["v"]))[0].superseded_by is None
    assert combine([_finding("overflow")], [], cal, _fn_with(["v"], "const"))[0].superseded_by is None
    assert combine([_finding("overflow", var="w")], [], cal, _fn_with(["w"]))[0].superseded_by is None
    assert combine([_finding("overflow")], [], None, _fn_with(["v"]))[0].superseded_by is None


def test_a_finding_calibration_confirms_is_not_superseded():
    cal = Calibration(function="main", samples=1, reference={"v": FINITE}, actual={"v": FINITE})
    confirmed = _finding("overflow", severity="error", source="calibration")
    out = combine([_finding("overflow")], [confirmed], cal, _fn_with(["v"]))
    assert [f.superseded_by for f in out] == [None, None] and out[1] is confirmed


def test_identical_findings_of_both_analyses_are_one():
    cal = Calibration(function="main", samples=1)
    static, observed = _finding("underflow", severity="info"), _finding("underflow", severity="info",
                                                                       source="calibration")
    assert combine([static], [observed], cal, _fn_with(["v"])) == [static]
    other = _finding("underflow", severity="warning", source="calibration")     # says something else
    assert combine([static], [other], cal, _fn_with(["v"])) == [static, other]


def _log_program():
    prog = Program()
    with Function({"p": mb.placeholder(shape=(2, 16), dtype=types.fp16)}) as fn:
        fn.set_outputs([mb.log(x=fn.inputs["p"], epsilon=np.float16(0.0), name="logp")])
    prog.add_function("main", fn)
    return prog


def test_log_underflow_is_superseded_only_when_the_samples_stay_normal():
    ranges = {"p": (0.0, 1.0)}                               # probabilities: may be 0 statically
    normal = {"p": np.full((2, 16), 0.25, np.float16)}
    tiny = {"p": np.full((2, 16), 1e-6, np.float16)}
    log_static = lambda d: [f for f in d["findings"]  # noqa: E731
                            if f["op"] == "logp" and f["source"] == "static" and f["var"] == "logp"
                            and f["kind"] == "underflow"]
    cleared = log_static(audit(_log_program(), ranges, normal).to_dict())
    kept = log_static(audit(_log_program(), ranges, tiny).to_dict())
    assert [f["superseded_by"] for f in cleared] == ["calibration"]
    assert [f["superseded_by"] for f in kept] == [None]


def test_an_epsilon_finding_names_the_constant_and_is_never_superseded():
    d = audit(_log_program(), {"p": (0.0, 1.0)}, {"p": np.full((2, 16), 0.25, np.float16)}).to_dict()
    eps = [f for f in d["findings"] if f["op"] == "logp" and f["var"] != "logp"]
    assert [(f["kind"], f["severity"], f["superseded_by"]) for f in eps] == [("underflow", "warning", None)]
    assert "epsilon of log is 0" in eps[0]["message"]
