"""`milguard fix`: a new package with the remedies applied, audits before and after, the input untouched."""
from __future__ import annotations

import json

import numpy as np

from file_trees import tree_digest
from milguard.mil import dtype_name, iter_ops, load


def _fix_and_audit(cli, packages, tmp_path, *options):
    """fix the planted-overflow package (calibrated), check the before/after counts, audit the result."""
    out = tmp_path / "fixed.mlpackage"
    digest = tree_digest(packages["rms"])
    assert cli("audit", packages["rms"], "--calibration", packages["planted"], "--fail-on", "overflow")[0] == 1
    code, text, err = cli("fix", packages["rms"], "-o", out, "--calibration", packages["planted"],
                          "--fail-on", "overflow", *options)
    assert code == 0, err
    assert tree_digest(packages["rms"]) == digest                 # the input is never modified
    assert text.startswith(f"before: {packages['rms']}") and f"\nafter: {out}" in text
    compare = {line.rsplit(None, 2)[0].strip(): line.split()[-2:] for line in text.splitlines()
               if line.strip().startswith(("error findings", "fp32 ops", "overflow (error/warning)"))}
    assert compare["error findings"] == ["1", "0"] and compare["overflow (error/warning)"] == ["1", "0"]
    report = tmp_path / "after.json"
    code, after, _ = cli("audit", out, "--calibration", packages["planted"], "--json", report, "--fail-on", "any",
                         *options)
    assert code == 0
    d = json.loads(report.read_text())
    assert [f for f in d["findings"] if f["severity"] != "info"] == []
    assert d["summary"]["decisions"]["fixable"] == 0 and "milguard fix would change nothing" in after
    return out, text, compare, d


def test_fix_rescales_the_norm_and_audit_agrees(cli, packages, tmp_path):
    """The default remedy: the RMSNorm at risk is rewritten fp16-safely, no fp32 op is added."""
    out, text, compare, d = _fix_and_audit(cli, packages, tmp_path)
    assert f"wrote {out}: 1 region rescaled" in text and compare["fp32 ops"] == ["0", "0"]
    ops = [op for op in iter_ops(load(out).program.functions["main"]) if op.op_type != "const"]
    assert "pow" not in {op.op_type for op in ops} and {dtype_name(op.outputs[0]) for op in ops} == {"fp16"}
    assert [(p["verdict"], p["precision"]) for p in d["patterns"]] == [("rescaled", "fp16")]


def test_fix_with_fp32_remedy_keeps_an_island_and_audit_agrees(cli, packages, tmp_path):
    out, text, compare, d = _fix_and_audit(cli, packages, tmp_path, "--remedy", "fp32")
    assert f"wrote {out}: 1 region kept fp32" in text and int(compare["fp32 ops"][1]) >= 5
    pow_op = next(op for op in iter_ops(load(out).program.functions["main"]) if op.op_type == "pow")
    assert dtype_name(pow_op.outputs[0]) == "fp32"
    assert [(p["verdict"], p["precision"]) for p in d["patterns"]] == [("fp32", "fp32")]


def test_fix_options_reach_keep_fp32(cli, packages, tmp_path):
    out = tmp_path / "kept_none.mlpackage"
    code, text, _ = cli("fix", packages["rms"], "-o", out, "--families", "softmax")
    assert code == 0 and "wrote" in text and "no region changed" in text
    ops = [op for op in iter_ops(load(out).program.functions["main"]) if op.op_type != "const"]
    assert {dtype_name(op.outputs[0]) for op in ops} == {"fp16"} and "pow" in {op.op_type for op in ops}
    out2 = tmp_path / "excluded.mlpackage"
    assert cli("fix", packages["rms"], "-o", out2, "--exclude", "pow")[0] == 0
    assert json.loads(load(out2).metadata["milguard.remedies"]) == []
    out3 = tmp_path / "core.mlpackage"
    assert cli("fix", packages["rms"], "-o", out3, "--scope", "core", "--remedy", "fp32")[0] == 0
    (island,) = json.loads(load(out3).metadata["milguard.remedies"])
    assert island["remedy"] == "fp32" and len(island["island"]) == 4 < len(island["ops"])


def test_fix_gates_on_the_repaired_model(cli, packages, tmp_path):
    """--fail-on applies to the audit of the repaired package: the epsilon that underflows fp16 (a
    warning, so `audit --fail-on any` exits 1) is fp32 once its rms_norm region is kept fp32."""
    out = tmp_path / "gated.mlpackage"
    assert cli("audit", packages["eps"], "--fail-on", "any")[0] == 1
    code, _, err = cli("fix", packages["eps"], "-o", out, "--fail-on", "any")
    assert code == 0, err                                     # the underflowing eps is now fp32
    assert out.exists()


def test_fix_reports_describe_the_repaired_package(cli, packages, tmp_path):
    out, report, page = tmp_path / "r.mlpackage", tmp_path / "r.json", tmp_path / "r.html"
    code, text, _ = cli("fix", packages["rms"], "-o", out, "--json", report, "--html", page, "--remedy", "fp32")
    assert code == 0 and "wrote" in text
    d = json.loads(report.read_text())
    assert d["model"] == str(out) and d["summary"]["fp32_ops"] >= 5
    assert f"milguard audit: {out}" in page.read_text()
    code, text, _ = cli("fix", packages["rms"], "-o", tmp_path / "s.mlpackage", "--json", "-")
    assert code == 0 and json.loads(text)["model"] == str(tmp_path / "s.mlpackage")   # JSON only


def test_fix_calibrates_a_stateful_model_from_its_initial_state(cli, stateful, tmp_path):
    _, model = stateful
    sample = tmp_path / "x.npz"
    np.savez(sample, x=np.linspace(-1, 1, 8, dtype=np.float32)[None])
    out = tmp_path / "fixed.mlpackage"
    code, stdout, err = cli("fix", model, "-o", out, "--calibration", sample)
    assert code == 0, err
    assert out.is_dir() and f"wrote {out}" in stdout


def test_fix_decides_from_the_audits_evidence(cli, packages, tmp_path, monkeypatch):
    """The input is calibrated once (the audit before), not again by keep_fp32; the output once more."""
    import importlib

    calibration = importlib.import_module("milguard.analysis.calibrate")   # the package exports a function of that name
    audit = importlib.import_module("milguard.report.audit")

    calls = []
    real = calibration.calibrate

    def counted(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)
    monkeypatch.setattr(calibration, "calibrate", counted)
    monkeypatch.setattr(audit, "calibrate", counted)
    code, _, _ = cli("fix", packages["rms"], "-o", tmp_path / "f.mlpackage", "--calibration", packages["planted"], "-q")
    assert code == 0 and len(calls) == 2
