"""``--ignore KIND | GLOB | KIND:GLOB``: silenced findings stay listed with ``ignored_by`` and leave
the counts and ``--fail-on``; every form has a rule that matches and one that does not."""
from __future__ import annotations

import json

import pytest

from milguard.analysis.findings import Finding, apply_ignores, parse_ignore


def _audit(cli, packages, tmp_path, *extra):
    out = tmp_path / "a.json"
    code, text, err = cli("audit", packages["eps"], "--fail-on", "any", "--json", out, *extra)
    return code, text, err, json.loads(out.read_text()) if out.exists() else None


def test_without_ignore_the_epsilon_fails_any(cli, packages, tmp_path):
    code, _, _, d = _audit(cli, packages, tmp_path)
    assert code == 1 and d["options"]["ignore"] == [] and d["summary"]["findings"]["ignored"] == 0


@pytest.mark.parametrize("rule,silenced", [
    ("underflow", True), ("overflow", False),                    # KIND
    ("add_*", True), ("rsqrt*", False),                          # GLOB on the op name
    ("underflow:add_eps", True), ("accumulation:add_eps", False),  # KIND:GLOB
])
def test_ignore_forms(cli, packages, tmp_path, rule, silenced):
    code, text, _, d = _audit(cli, packages, tmp_path, "--ignore", rule)
    eps = next(f for f in d["findings"] if f["op"] == "add_eps" and f["kind"] == "underflow")
    assert (code == 0) is silenced
    assert eps["ignored_by"] == (rule if silenced else None)
    assert d["options"]["ignore"] == [rule]
    assert d["summary"]["findings"]["ignored"] == int(silenced)
    assert d["summary"]["findings"]["by_kind"].get("underflow", 0) == int(not silenced)
    assert f"ignoring: {rule}" in text and ("1 ignored" in text) is silenced


def test_ignore_is_repeatable(cli, packages, tmp_path):
    code, _, _, d = _audit(cli, packages, tmp_path, "--ignore", "overflow", "--ignore", "underflow")
    assert code == 0 and d["options"]["ignore"] == ["overflow", "underflow"]


def test_ignoring_overflow_does_not_hide_a_planted_overflow_from_other_kinds(cli, packages):
    code, _, _ = cli("audit", packages["rms"], "--calibration", packages["planted"], "--fail-on", "overflow",
                     "--ignore", "underflow")
    assert code == 1
    assert cli("audit", packages["rms"], "--calibration", packages["planted"], "--fail-on", "overflow",
               "--ignore", "overflow")[0] == 0


@pytest.mark.parametrize("rule,message", [
    ("", "bad --ignore '': expected KIND, GLOB or KIND:GLOB"),
    ("overfl0w:add_*", "bad --ignore 'overfl0w:add_*': 'overfl0w' is not a finding kind (overflow, nan, "
                       "nonfinite, underflow, accumulation, analysis)"),
    ("nan:", "bad --ignore 'nan:': no glob after 'nan:'"),
])
def test_bad_rules_are_one_line_errors(cli, packages, tmp_path, rule, message):
    out = tmp_path / "a.json"
    code, text, err = cli("audit", packages["eps"], "--ignore", rule, "--json", out)
    assert code == 2 and text == "" and not out.exists()
    assert err == f"milguard: error: {message}\n"


def _finding(module):
    return Finding(kind="overflow", severity="warning", op="op_7", op_type="matmul", var="v", module=module,
                   magnitude=1e5, limit=65504.0, source="static", covered_by=None, message="m")


@pytest.mark.parametrize("rule,module,matched", [
    ("model.layers.*.self_attn", "model.layers.3.self_attn", True),
    ("model.layers.*.self_attn", "model.layers.3.mlp", False),
    ("overflow:*.self_attn", "model.layers.3.self_attn", True),
    ("nan:*.self_attn", "model.layers.3.self_attn", False),
    ("*.self_attn", None, False),
])
def test_globs_match_torch_module_paths(rule, module, matched):
    [f] = apply_ignores([_finding(module)], [parse_ignore(rule)])
    assert (f.ignored_by == rule) is matched


def test_a_superseded_finding_is_not_also_ignored():
    from dataclasses import replace
    [f] = apply_ignores([replace(_finding(None), superseded_by="calibration")], [parse_ignore("overflow")])
    assert f.superseded_by == "calibration" and f.ignored_by is None


def test_help_states_the_defaults_and_the_ignore_forms(cli):
    code, out, _ = cli("audit", "--help")
    flat = " ".join(out.split())
    assert code == 0
    assert ("defaults: -1:1 for float inputs in the findings, unbounded in the decisions; 0:N-1 for "
            "integer inputs read as gather indices of an axis of N, the dtype's full range for other "
            "integers, 0:1 for bool") in flat
    assert "--ignore RULE" in flat and "KIND:GLOB" in flat and "[tool.milguard]" in flat
