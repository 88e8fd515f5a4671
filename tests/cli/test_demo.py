"""The demo: its table says which count is in the output and which op is inside the program, and the
``milguard audit`` command it prints works as printed, from the folder it was started in."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from milguard.demo import command_line


def test_command_line_is_a_path_the_shell_can_run(tmp_path, monkeypatch):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    for name in ("python", "milguard", "activate"):
        (env / "bin" / name).write_text("")
    monkeypatch.setattr(sys, "executable", str(env / "bin" / "python"))
    monkeypatch.chdir(tmp_path)
    assert command_line() == (os.path.join("env", "bin", "milguard"), os.path.join("env", "bin", "activate"))
    monkeypatch.chdir(tmp_path / "env" / "bin")              # beside the script: "./milguard", not a PATH lookup
    assert command_line()[0] == os.path.join(".", "milguard")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert command_line()[0] == str(env / "bin" / "milguard")
    (env / "bin" / "milguard").unlink()                      # not installed: the module
    assert command_line() == (f"{env / 'bin' / 'python'} -m milguard", None)


@pytest.mark.slow
def test_demo_prints_a_command_that_works_as_printed(tmp_path):
    env = {**os.environ, "PATH": os.defpath, "PYTHONWARNINGS": "ignore"}     # milguard not on PATH
    demo = subprocess.run([sys.executable, "-m", "milguard.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    header = next(line for line in lines if line.startswith("conversion"))
    assert "inf/NaN in output" in header and header.endswith("first op giving inf/NaN inside the program")
    default = next(line for line in lines if line.startswith("default fp16"))
    assert default.split()[4] == "0" and default.split()[8] == "pow"      # 0 in the output, pow inside
    rows = {name: next(line for line in lines if line.startswith(name)).split()
            for name in ("milguard", "fp32 islands")}
    assert rows["milguard"][4].startswith("0/") and rows["milguard"][5] == "0"    # no fp32 op, no transition
    assert int(rows["fp32 islands"][7]) > 0 < int(rows["fp32 islands"][6])        # islands cost transitions
    assert any("it can vanish before the output" in line for line in lines)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines()
    table = lines[lines.index(header):lines.index(header) + 5]
    assert table == readme[readme.index(header):readme.index(header) + 5]   # the README quotes this run

    command = lines[lines.index(next(line for line in lines if line.endswith("Audit one with:"))) + 1].strip()
    argv = shlex.split(command)
    assert argv[1:3] == ["audit", os.path.join("out", "demo", "default_fp16.mlpackage")]
    audit = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert audit.returncode == 0, audit.stderr
    assert audit.stdout.startswith("milguard audit: out/demo/default_fp16.mlpackage")
    assert (tmp_path / "out" / "demo" / "report.html").is_file()
    assert Path(argv[0]).name == "milguard"
