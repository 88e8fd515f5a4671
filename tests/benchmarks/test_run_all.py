"""run_all: discovery, the dirty-tree refusal, the revision stamp, script isolation (no benchmark runs)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from bench_modules import load_bench_module

run_all = load_bench_module("run_all")
common = load_bench_module("common")


def test_discovers_every_bench_script_and_not_itself():
    names = {p.stem for p in run_all.discover()}
    assert {"bench_passes", "bench_policies", "bench_placement_agreement"} <= names and "run_all" not in names


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git checkout holding a copy of common.py under benchmarks/, committed."""
    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    (bench / "common.py").write_text((run_all.HERE / "common.py").read_text())
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    spec = importlib.util.spec_from_file_location("copy_common", bench / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tmp_path, module


def test_source_state_ignores_results_and_sees_everything_else(repo):
    root, copy = repo
    assert copy.source_state()["dirty"] is False and copy.source_state()["revision"]
    (root / "benchmarks" / "results" / "x.json").write_text("{}")
    assert copy.source_state()["dirty"] is False                  # results are what a run writes
    (root / "untracked.py").write_text("")
    assert copy.source_state()["dirty"] is True                   # untracked files count


def test_save_results_stamps_revision_and_dirty(tmp_path):
    common.save_results(tmp_path, "probe", {"x": 1}, "# probe\n")
    data = json.loads((tmp_path / "probe.json").read_text())
    assert set(data) == {"x", "revision", "dirty"} and isinstance(data["dirty"], bool)


def test_refuses_a_dirty_tree_unless_allowed(monkeypatch, capsys, tmp_path):
    ran = []
    monkeypatch.setattr(run_all.common, "source_state", lambda: {"revision": "abc1234", "dirty": True})
    monkeypatch.setattr(run_all, "run_one", lambda path: ran.append(path) or {"name": path.stem, "script": path.name,
                                                                                "ok": True, "seconds": 0.0})
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    assert run_all.main(["--only", "bench_engine", "--no-docs"]) == 2
    assert ran == [] and "uncommitted changes" in capsys.readouterr().err
    assert not (tmp_path / "run_all.json").exists()                                   # nothing written
    assert run_all.main(["--only", "bench_engine", "--no-docs", "--allow-dirty"]) == 0
    status = json.loads((tmp_path / "run_all.json").read_text())
    assert status["dirty"] is True and status["revision"] == "abc1234"
    assert [s["name"] for s in status["scripts"]] == ["bench_engine"]


def test_summary_states_the_revision_of_every_result(tmp_path):
    (tmp_path / "engine.json").write_text(json.dumps({"revision": "abc1234", "dirty": True}))
    (tmp_path / "placement.json").write_text(json.dumps({"revision": "def5678", "dirty": False}))
    text = run_all.summary([], tmp_path)
    assert "engine abc1234 (uncommitted changes)" in text and "placement def5678 (clean)" in text


def test_run_one_hides_run_all_options_from_scripts(tmp_path, monkeypatch):
    script = tmp_path / "bench_probe.py"
    script.write_text("import sys\nSEEN = []\ndef main():\n    SEEN.append(list(sys.argv[1:]))\n")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--skip", "bench_passes"])
    status = run_all.run_one(script)
    assert status["ok"], status.get("error")
    assert sys.modules["benchmarks_bench_probe"].SEEN == [[]]
    assert sys.argv == ["run_all.py", "--skip", "bench_passes"]
    broken = tmp_path / "bench_broken.py"
    broken.write_text("def main(argv=None):\n    raise RuntimeError('boom')\n")
    failed = run_all.run_one(broken)
    assert not failed["ok"] and "RuntimeError: boom" in failed["error"]
