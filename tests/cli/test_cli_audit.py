"""`milguard audit` on saved packages: terminal summary, JSON, HTML, exit codes per --fail-on level."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest

SCHEMA = {"format", "model", "function", "options", "summary", "patterns", "findings", "ranges",
          "placement", "unknown_ops"}


def test_terminal_summary(cli, packages):
    code, out, err = cli("audit", packages["rms"], "--calibration", packages["planted"])
    assert code == 0 and err == ""                       # default --fail-on never; no TTY: no progress
    assert out.startswith(f"milguard audit: {packages['rms']} (function main)")
    assert "7 ops: 7 fp16, 0 fp32" in out and "1 calibration sample" in out
    pattern_row = next(line for line in out.splitlines() if line.strip().startswith("rms_norm"))
    assert pattern_row.split()[2] == "fp16"               # the region's precision
    error_row = next(line for line in out.splitlines() if line.strip().startswith("error"))
    assert error_row.split()[:5] == ["error", "overflow", "pow", "pow", "calibration"]   # no module column:
    assert error_row.split()[5] == "rms_norm"             # the pass that keeps it fp32  (no torch scopes)
    assert "Findings: 1 error, 0 warning, 3 info" in out
    assert re.search(r"segments \(\d+\): (ane|gpu|cpu) \(7 ops\)", out)


def test_json_schema(cli, packages, tmp_path):
    out_json = tmp_path / "audit.json"
    code, out, _ = cli("audit", packages["rms"], "--calibration", packages["planted"], "--json", out_json,
                       "--input-range", "x=-2:2")
    assert code == 0 and out
    d = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert SCHEMA <= set(d) and d["format"] == "milguard.audit/3"
    assert d["model"] == str(packages["rms"]) and d["options"]["input_ranges"] == {"x": [-2.0, 2.0]}
    assert d["options"]["calibration_samples"] == 1
    assert [(p["kind"], p["precision"]) for p in d["patterns"]] == [("rms_norm", "fp16")]
    assert {(f["kind"], f["severity"], f["op"]) for f in d["findings"] if f["source"] == "calibration"} >= \
        {("overflow", "error", "pow")}
    assert set(d["placement"]["ops"]) == {"pow", "variance", "add_eps", "rsqrt", "normed", "scaled", "out"}
    assert oct(out_json.stat().st_mode & 0o077) != "0o0"  # a normal file, not a private temp file


def test_json_to_stdout_has_no_summary(cli, packages):
    code, out, _ = cli("audit", packages["clean"], "--json", "-")
    assert code == 0
    d = json.loads(out)                                   # only JSON on stdout
    assert d["findings"] == [] and d["summary"]["patterns"] == 1


def test_html_dash_is_a_file_named_dash(cli, packages, tmp_path, monkeypatch):
    """Only --json takes "-" for stdout; --html - writes the page to a file named -, as staged."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("audit", packages["clean"], "--html", "-", "-q")
    assert (code, out, err) == (0, "", "")
    assert (tmp_path / "-").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_html_report_is_self_contained(cli, packages, tmp_path):
    page = tmp_path / "audit.html"
    code, _, _ = cli("audit", packages["rms"], "--calibration", packages["planted"], "--html", page)
    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    png = re.search(r'id="magnitude-plot"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert png and base64.b64decode(png.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    for table in ("findings", "patterns", "placement", "segments"):
        assert f"<table class='{table}'>" in text
    assert "<code>pow</code>" in text and "milguard::keep_fp32_rms_norm" in text
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)=["']?(?!data:)[a-z]""", text)   # nothing fetched


@pytest.mark.parametrize("package,extra,codes", [
    # {level: exit code}: clean model; an epsilon that underflows (a warning, not an overflow);
    # a calibrated overflow (error); a static overflow from a wide input range (warning)
    ("clean", (), {"never": 0, "overflow": 0, "any": 0}),
    ("eps", (), {"never": 0, "overflow": 0, "any": 1}),
    ("rms", ("--calibration", "planted"), {"never": 0, "overflow": 1, "any": 1}),
    ("clean", ("--input-range", "x=-300:300"), {"never": 0, "overflow": 1, "any": 1}),
    ("rms", ("--calibration", "tame"), {"never": 0, "overflow": 0, "any": 0}),
])
def test_exit_codes_per_fail_on_level(cli, packages, package, extra, codes):
    extra = [packages.get(a, a) if a in ("planted", "tame") else a for a in extra]
    for level, want in codes.items():
        code, out, err = cli("audit", packages[package], *extra, "--fail-on", level)
        assert code == want, (level, out)
        assert (f"--fail-on {level}" in err) == (want == 1)


def test_default_fail_on_is_never(cli, packages):
    assert cli("audit", packages["rms"], "--calibration", packages["planted"])[0] == 0


def test_progress_when_forced(cli, packages):
    code, _, err = cli("audit", packages["clean"], "--progress", "--calibration", packages["tame"])
    assert code == 0
    lines = err.splitlines()
    assert lines[0].startswith("milguard: loading ") and lines[0].endswith(" s)")
    assert lines[1].startswith("milguard: auditing ") and "(calibrating on 1 sample)" in lines[1]


def test_subprocess_entry_point(packages, tmp_path):
    """`python -m milguard` runs the same main and exits with its code."""
    out_json = tmp_path / "a.json"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "milguard", "audit", str(packages["rms"]), "--calibration",
                           str(packages["planted"]), "--json", str(out_json), "--fail-on", "overflow"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("milguard audit: ") and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "milguard: 1 finding reaches --fail-on overflow"
    assert json.loads(out_json.read_text())["summary"]["findings"]["by_severity"]["error"] == 1
    bad = subprocess.run([sys.executable, "-m", "milguard", "audit", str(tmp_path / "nope.mlpackage")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == f"milguard: error: {tmp_path / 'nope.mlpackage'}: no such file or directory"


def test_cli_leaves_logging_and_warnings_as_they_were(cli, packages, tmp_path):
    import logging
    import warnings

    ct_log = logging.getLogger("coremltools")
    level, filters = ct_log.level, list(warnings.filters)
    assert cli("audit", packages["clean"])[0] == 0
    assert cli("audit", tmp_path / "nope.mlpackage")[0] == 2
    assert ct_log.level == level and warnings.filters == filters
