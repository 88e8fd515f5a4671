"""The HTML figure and page, the terminal text, assert_fp16_safe and the progress lines."""
from __future__ import annotations

import copy
import io
import sys

import pytest

from milguard.errors import MilguardError
from milguard.progress import Progress
from milguard.report import html, text
from milguard.report.audit import audit
from milguard.testing import FAIL_ON, assert_fp16_safe, failing


@pytest.fixture(scope="module")
def calibrated(rms, planted) -> dict:
    return audit(rms(), calibration=planted).to_dict()


def _by_gid(ax, prefix):
    return {c.get_gid(): c for c in ax.get_children() if (c.get_gid() or "").startswith(prefix)}


def test_figure_marks_limits_overflow_and_precision(calibrated):
    fig = html.figure(calibrated)
    ax, strip = fig.axes
    assert ax.get_yscale() == "log"
    lines = _by_gid(ax, "fp16-")
    assert lines["fp16-max"].get_ydata()[0] == 65504.0
    assert lines["fp16-min-normal"].get_ydata()[0] == pytest.approx(6.1035e-5, rel=1e-4)
    rows = [r["var"] for r in calibrated["ranges"]]
    x_pow = rows.index("pow")
    ref = [c for gid, c in _by_gid(ax, "calibrated:").items() if gid.startswith("calibrated:fp16:")]
    points = {int(x): y for c in ref for x, y in c.get_offsets()}
    assert points[x_pow] == pytest.approx(90000, rel=1e-3) and points[x_pow] > 65504   # above the line
    assert not _by_gid(ax, "calibrated:fp32:")                                        # an fp16 program
    assert x_pow in {int(x) for x, _ in _by_gid(ax, "nonfinite")["nonfinite"].get_offsets()}
    assert {int(x) for x, _ in _by_gid(ax, "finding:error")["finding:error"].get_offsets()} == {x_pow}


def test_device_strip_shows_segments(calibrated):
    d = copy.deepcopy(calibrated)
    names = [r["op"] for r in d["ranges"]]
    for i, name in enumerate(names[1:], start=1):              # inputs carry no device
        d["placement"]["ops"][name]["device"] = "ane" if i < 4 else "cpu"
    _, strip = html.figure(d).axes
    spans = sorted(gid for gid in _by_gid(strip, "segment:"))
    assert spans == [f"segment:ane:1:3", f"segment:cpu:4:{len(names) - 1}"]


def test_static_only_has_no_calibrated_points(rms):
    d = audit(rms(), {"x": (-300, 300)}).to_dict()
    ax, _ = html.figure(d).axes
    assert not _by_gid(ax, "calibrated:") and not _by_gid(ax, "nonfinite")
    assert _by_gid(ax, "static:fp16:") and _by_gid(ax, "finding:warning")


def test_page_escapes_and_survives_missing_placement(calibrated):
    d = copy.deepcopy(calibrated)
    d["model"] = "<script>alert(1)</script>.mlpackage"
    d["placement"] = None
    page = html.render(d)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Not available." in page and "data:image/png;base64," in page
    assert "class='verdict bad'" in page


def test_page_without_matplotlib_is_a_one_line_error(calibrated, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MilguardError, match=r"^the HTML report needs matplotlib: pip install 'milguard\[html\]'$"):
        html.render(calibrated)


def test_page_verdict_ok_without_findings(rms):
    page = html.render(audit(rms(eps=1e-3)).to_dict())
    assert "class='verdict ok'" in page and "No error or warning findings." in page


def test_text_summary_sections(calibrated):
    out = text.render(calibrated)
    assert "Regions (1): what milguard decides for each, from calibration (1 sample)" in out
    assert "rms_norm at " in out and ": rescale. risk: x² may reach" in out
    assert "milguard fix would change 1 region" in out and "Findings: 1 error, 0 warning, 3 info" in out
    assert "3 info findings" in out and "Expected placement" in out
    short = text.render(calibrated, max_findings=0)
    assert "... and 1 more error/warning findings" in short
    none = copy.deepcopy(calibrated)
    none.update(findings=[], patterns=[], placement=None)
    none["summary"]["findings"]["by_severity"] = {}
    out = text.render(none)
    assert "Regions: no norm or softmax pattern found" in out and "Findings: none" in out
    assert "not available" in out


def test_compare_counts(calibrated, rms):
    clean = audit(rms(eps=1e-3)).to_dict()
    rows = {line[:27].strip(): line[27:].split() for line in text.compare(calibrated, clean).splitlines()[1:]}
    assert rows["error findings"] == ["1", "0"] and rows["overflow (error/warning)"] == ["1", "0"]


def test_assert_fp16_safe(rms, planted):
    assert assert_fp16_safe(rms(eps=1e-3)).summary["findings"]["total"] == 0
    with pytest.raises(AssertionError) as err:
        assert_fp16_safe(rms(), calibration=planted)
    msg = str(err.value)
    assert "1 finding(s) reach fail_on='overflow'" in msg and "error overflow at pow (pow)" in msg
    assert_fp16_safe(rms(eps=1e-7))                                  # an underflow is not an overflow
    with pytest.raises(AssertionError, match="underflow at add_eps"):
        assert_fp16_safe(rms(eps=1e-7), fail_on="any")
    with pytest.raises(MilguardError, match="fail_on must be one of"):
        assert_fp16_safe(rms(), fail_on="sometimes")


def test_fail_on_levels_are_data():
    f = {"severity": "warning", "kind": "nan"}
    assert [lvl for lvl in FAIL_ON if failing([f], lvl)] == ["overflow", "any"]
    info = {"severity": "info", "kind": "overflow"}
    assert not any(failing([info], lvl) for lvl in FAIL_ON)
    under = {"severity": "error", "kind": "underflow"}
    assert [lvl for lvl in FAIL_ON if failing([under], lvl)] == ["any"]


def test_fail_on_skips_superseded_and_ignored_findings():
    f = {"severity": "error", "kind": "overflow"}
    assert failing([f], "overflow") == [f]
    assert failing([{**f, "superseded_by": "calibration"}], "any") == []
    assert failing([{**f, "ignored_by": "overflow"}], "any") == []
    analysis = {"severity": "warning", "kind": "analysis"}
    assert [lvl for lvl in FAIL_ON if failing([analysis], lvl)] == ["any"]


@pytest.fixture(scope="module")
def quiet(rms, planted) -> dict:
    """Static bounds for |x| <= 300, a tame sample, and the epsilon finding ignored."""
    tame = {"x": planted["x"].clip(-2, 2)}
    return audit(rms(eps=1e-7), {"x": (-300, 300)}, tame, ignore=["underflow:add_*"]).to_dict()


def test_text_counts_superseded_and_ignored_findings(quiet):
    counts = quiet["summary"]["findings"]
    assert counts["superseded"] >= 1 and counts["ignored"] == 1
    out = text.render(quiet)
    assert "Findings: none" in out
    assert (f"{counts['superseded']} static findings superseded by calibration (the samples stayed finite "
            "and within the limit there) and 1 ignored: listed in --json and --html, not counted") in out
    assert "ignoring: underflow:add_*" in out and "add_eps" not in out.split("Findings:")[1]


def test_page_folds_superseded_and_ignored_findings(quiet):
    page = html.render(quiet)
    assert "class='verdict ok'" in page and "class='quiet-findings'" in page
    quiet_rows = page.split("class='quiet-findings'")[1]
    assert "superseded by calibration" in quiet_rows and "ignored (<code>underflow:add_*</code>)" in quiet_rows
    ax, _ = html.figure(quiet).axes
    assert not _by_gid(ax, "finding:")                 # no ring for a finding that is not counted


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines():
    quiet = io.StringIO()
    with Progress(stream=quiet).step("loading"):
        pass
    assert quiet.getvalue() == ""                                    # not a terminal
    tty = _Tty()
    with Progress(stream=tty).step("loading m.mlpackage"):
        pass
    assert tty.getvalue().startswith("milguard: loading m.mlpackage ... done (") and tty.getvalue().endswith(" s)\n")
    forced = io.StringIO()
    with pytest.raises(ValueError):
        with Progress(force=True, stream=forced).step("calibrating"):
            raise ValueError("boom")
    assert forced.getvalue() == "milguard: calibrating ... failed\n"
    assert not Progress(enabled=False, stream=_Tty()).enabled


def test_torch_modules_shown_when_present(calibrated):
    d = copy.deepcopy(calibrated)
    for f in d["findings"]:
        f["module"] = "model.layers.0.input_layernorm"
    d["patterns"][0]["module"] = "model.layers.0.input_layernorm"
    out = text.render(d)
    row = next(line for line in out.splitlines() if line.strip().startswith("error"))
    assert row.split()[4] == "model.layers.0.input_layernorm"
    assert "<th>torch module</th>" in html.render(d) and "<th>torch module</th>" not in html.render(calibrated)
    assert "module" not in text.render(calibrated).split("Findings")[1].splitlines()[1]
