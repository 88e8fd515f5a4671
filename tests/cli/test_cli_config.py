"""``[tool.milguard]`` in pyproject.toml: found from the current directory upwards, keys mirror the
command line, the command line wins, and a bad table is a one-line error naming the file."""
from __future__ import annotations

import json
import textwrap

import pytest

from milguard.config import find_config, load_config
from milguard.errors import MilguardError
from milguard.testing import assert_fp16_safe


def _project(root, table: str, name: str = "pyproject.toml"):
    (root / name).write_text("[project]\nname = 'demo'\n\n" + textwrap.dedent(table))
    return root / name


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder that is the current directory."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_fail_on_and_ignore_from_the_file(cli, packages, project):
    assert cli("audit", packages["eps"])[0] == 0                    # no table: default never
    _project(project, """
        [tool.milguard]
        fail-on = "any"
    """)
    assert cli("audit", packages["eps"])[0] == 1
    _project(project, """
        [tool.milguard]
        fail-on = "any"
        ignore = ["underflow:add_eps"]
    """)
    code, out, _ = cli("audit", packages["eps"])
    assert code == 0 and "ignoring: underflow:add_eps" in out


def test_the_command_line_wins(cli, packages, project, tmp_path):
    _project(project, """
        [tool.milguard]
        fail-on = "any"
        ignore = ["overflow"]
        input-range = ["x=-2:2"]
    """)
    assert cli("audit", packages["eps"], "--fail-on", "never")[0] == 0
    out = tmp_path / "a.json"
    code, _, _ = cli("audit", packages["eps"], "--fail-on", "never", "--ignore", "nan", "--json", out)
    d = json.loads(out.read_text())
    assert d["options"]["ignore"] == ["overflow", "nan"]              # rules add up
    assert d["options"]["input_ranges"] == {"x": [-2.0, 2.0]}
    cli("audit", packages["eps"], "--input-range", "x=-3:3", "--json", out)
    assert json.loads(out.read_text())["options"]["input_ranges"] == {"x": [-3.0, 3.0]}


def test_found_from_a_subfolder_passing_over_a_pyproject_without_the_table(cli, packages, project, monkeypatch):
    _project(project, """
        [tool.milguard]
        fail-on = "any"
    """)
    inner = project / "sub" / "pkg"
    inner.mkdir(parents=True)
    _project(project / "sub", "[tool.ruff]\nline-length = 100\n")
    monkeypatch.chdir(inner)
    assert find_config() == project / "pyproject.toml"
    assert cli("audit", packages["eps"])[0] == 1


def test_calibration_is_relative_to_the_file(cli, packages, project, monkeypatch):
    data = project / "data"
    data.mkdir()
    (data / "planted.npz").write_bytes(packages["planted"].read_bytes())
    _project(project, """
        [tool.milguard]
        calibration = ["data/planted.npz"]
        fail-on = "overflow"
    """)
    (project / "elsewhere").mkdir()
    monkeypatch.chdir(project / "elsewhere")
    code, out, _ = cli("audit", packages["rms"])
    assert code == 1 and "1 calibration sample" in out


def test_ane_limits_compute_units_and_function(cli, packages, project, tmp_path):
    _project(project, """
        [tool.milguard]
        ane-limits = true
        compute-units = "CPU_ONLY"
        function = "main"
    """)
    out = tmp_path / "a.json"
    assert cli("audit", packages["clean"], "--json", out)[0] == 0
    options = json.loads(out.read_text())["options"]
    assert options["ane_limits"] is True and options["compute_units"] == "CPU_ONLY"


@pytest.mark.parametrize("table,message", [
    ('fail_on = "any"', "unknown key 'fail_on' in [tool.milguard] (known: fail-on, ignore, input-range, "
                        "calibration, ane-limits, compute-units, function)"),
    ('ignore = "underflow"', "[tool.milguard] ignore must be a list of strings, got 'underflow'"),
    ('ane-limits = "yes"', "[tool.milguard] ane-limits must be true or false, got 'yes'"),
    ('fail-on = "sometimes"', "[tool.milguard] fail-on must be one of overflow, any, never, got 'sometimes'"),
    ('compute-units = "NE"', "[tool.milguard] compute-units must be one of ALL, CPU_AND_NE, CPU_AND_GPU, "
                             "CPU_ONLY, got 'NE'"),
    ('ignore = ["kind:x"]', "[tool.milguard] bad ignore rule 'kind:x': 'kind' is not a finding kind"),
    ('input-range = ["x=1"]', "[tool.milguard] bad input-range 'x=1': expected NAME=LO:HI, e.g. x=-30:30"),
    ('input-range = ["x=3:1"]', "[tool.milguard] bad input range for 'x': 3.0 > 1.0"),
    ('input-range = ["y=0:1"]', "bad input-range in {path} 'y=0:1': the model has no input 'y' (inputs: x)"),
    ("[broken", "not valid TOML"),
])
def test_a_bad_table_is_a_one_line_error_naming_the_file(cli, packages, project, tmp_path, table, message):
    path = project / "pyproject.toml"
    path.write_text(table if table.startswith("[") else f"[tool.milguard]\n{table}\n")
    out = tmp_path / "a.json"
    code, text, err = cli("audit", packages["eps"], "--json", out)
    assert code == 2 and text == "" and not out.exists()
    assert err.startswith("milguard: error: ") and err.count("\n") == 1
    assert str(path) in err and message.format(path=path) in err


def test_fix_reads_the_file_too(cli, packages, project, tmp_path):
    _project(project, """
        [tool.milguard]
        fail-on = "any"
    """)
    code, _, _ = cli("fix", packages["eps"], "-o", tmp_path / "fixed.mlpackage", "--families", "softmax")
    assert code == 1                                       # the epsilon stays fp16: --fail-on any
    _project(project, """
        [tool.milguard]
        fail-on = "any"
        ignore = ["underflow"]
    """)
    assert cli("fix", packages["eps"], "-o", tmp_path / "fixed2.mlpackage", "--families", "softmax")[0] == 0


# ---- assert_fp16_safe ----------------------------------------------------------------------------

def test_assert_fp16_safe_reads_the_file(rms, project):
    _project(project, """
        [tool.milguard]
        fail-on = "any"
    """)
    with pytest.raises(AssertionError, match="reach fail_on='any'"):
        assert_fp16_safe(rms(eps=1e-7))
    _project(project, """
        [tool.milguard]
        fail-on = "any"
        ignore = ["underflow"]
    """)
    assert assert_fp16_safe(rms(eps=1e-7)).to_dict()["summary"]["findings"]["ignored"] == 1
    with pytest.raises(AssertionError):                     # config=False: the file is not read
        assert_fp16_safe(rms(eps=1e-7), fail_on="any", config=False)


def test_assert_fp16_safe_arguments_win(rms, planted, project):
    _project(project, """
        [tool.milguard]
        fail-on = "never"
        input-range = ["x=-300:300"]
    """)
    assert_fp16_safe(rms(), calibration=planted)           # never: passes despite the overflow
    with pytest.raises(AssertionError, match="error overflow at pow"):
        assert_fp16_safe(rms(), calibration=planted, fail_on="overflow")
    report = assert_fp16_safe(rms(), input_ranges={"x": (-1, 1)})
    assert report.to_dict()["options"]["input_ranges"] == {"x": [-1.0, 1.0]}


def test_assert_fp16_safe_takes_a_file(rms, project, tmp_path):
    path = _project(tmp_path, """
        [tool.milguard]
        fail-on = "any"
    """, name="settings.toml")
    with pytest.raises(AssertionError):
        assert_fp16_safe(rms(eps=1e-7), config=path)
    with pytest.raises(MilguardError, match="no such configuration file"):
        assert_fp16_safe(rms(), config=tmp_path / "missing.toml")


def test_load_config_without_a_file_is_empty(project):
    settings = load_config()
    assert settings.path is None and settings.values == {} and settings.ignore == ()
    assert settings.calibration_paths() == [] and settings.input_ranges() == {}
