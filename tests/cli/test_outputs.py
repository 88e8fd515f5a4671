"""Outputs: refused before any work when they would touch the input or each other, staged privately,
committed together, and nothing left behind by a failing command; messages name the user's paths."""
from __future__ import annotations

import errno
import json
import os
import shutil

import pytest

from file_trees import MODEL_FILE, listing, tree_digest
from milguard.errors import MilguardError
from milguard.outputs import STAGING_PREFIX, Outputs, overlap


@pytest.fixture
def work(packages, tmp_path):
    """A folder holding a copy of the input package and a calibration file, and its digest."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copytree(packages["rms"], folder / "in.mlpackage")
    shutil.copyfile(packages["planted"], folder / "sample.npz")
    return folder


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if the CLI reads a model: refusals come first."""
    import milguard.mil

    def load(*_args, **_kwargs):
        raise AssertionError("a model was loaded before the outputs were checked")

    monkeypatch.setattr(milguard.mil, "load", load)


def _refused(cli, folder, *argv, says: str):
    """exit 2, exactly one stderr line containing ``says``, nothing written or changed in ``folder``."""
    digest, before = tree_digest(folder), listing(folder)
    code, out, err = cli(*argv)
    assert code == 2 and out == "", err
    assert len(err.splitlines()) == 1 and err.startswith("milguard: error: "), err
    assert says in err, err
    assert STAGING_PREFIX not in err and "milguard-view" not in err
    assert tree_digest(folder) == digest and listing(folder) == before
    return err


@pytest.mark.parametrize("command,extra,says", [
    # reports written into the input package overwrite its manifest or its model
    ("audit", ("--json", "{w}/in.mlpackage/Manifest.json"),
     "--json {w}/in.mlpackage/Manifest.json: is inside the input {w}/in.mlpackage"),
    ("fix", ("-o", "{w}/out.mlpackage", "--html", "{w}/in.mlpackage/Data/com.apple.CoreML/model.mlmodel"),
     "--html {w}/in.mlpackage/Data/com.apple.CoreML/model.mlmodel: is inside the input"),
    ("fix", ("-o", "{w}/in.mlpackage/inner.mlpackage"), "-o {w}/in.mlpackage/inner.mlpackage: is inside the input"),
    ("fix", ("-o", "{w}/in.mlpackage"), "-o {w}/in.mlpackage: is the input {w}/in.mlpackage"),
    ("audit", ("--calibration", "{w}/sample.npz", "--json", "{w}/sample.npz"),
     "--json {w}/sample.npz: is the input {w}/sample.npz"),
    ("audit", ("--html", "{w}"), "--html {w}: contains the input {w}/in.mlpackage"),
    # two outputs on one path: the package would be written, then fail and be left behind
    ("fix", ("-o", "{w}/out.mlpackage", "--json", "{w}/out.mlpackage"),
     "--json {w}/out.mlpackage: is also the -o output {w}/out.mlpackage"),
    ("fix", ("-o", "{w}/out.mlpackage", "--json", "{w}/out.mlpackage/r.json"),
     "--json {w}/out.mlpackage/r.json: is inside the -o output {w}/out.mlpackage"),
    ("audit", ("--json", "{w}/r.txt", "--html", "{w}/r.txt"), "--html {w}/r.txt: is also the --json output"),
])
def test_outputs_touching_the_input_or_each_other_are_refused(cli, work, no_load, command, extra, says):
    argv = [a.format(w=work) for a in extra]
    _refused(cli, work, command, work / "in.mlpackage", *argv, says=says.format(w=work))


def test_symbolic_links_are_resolved_before_comparing(cli, work, no_load, tmp_path):
    linked_input = tmp_path / "linked.mlpackage"
    linked_input.symlink_to(work / "in.mlpackage", target_is_directory=True)
    _refused(cli, work, "audit", linked_input, "--json", work / "in.mlpackage" / "Manifest.json",
             says="is inside the input")
    report = tmp_path / "report.json"                    # a link that points into the input
    report.symlink_to(work / "in.mlpackage" / "Manifest.json")
    _refused(cli, work, "audit", work / "in.mlpackage", "--json", report,
             says=f"--json {report}: is inside the input {work / 'in.mlpackage'}")
    assert report.is_symlink()


def test_dangling_output_link_is_refused(cli, work, no_load):
    link = work / "out.mlpackage"
    link.symlink_to(work / "gone" / "out.mlpackage", target_is_directory=True)
    _refused(cli, work, "fix", work / "in.mlpackage", "-o", link,
             says=f"{link}: already exists (a symbolic link); milguard never overwrites a model")
    assert link.is_symlink() and not (work / "gone").exists()


def test_unwritable_folder_is_named_not_the_staging_folder(cli, work, no_load, monkeypatch):
    """Before any work, a staging folder is made next to each output: when that fails the message
    names the user's folder (the error itself names the staging folder)."""
    import tempfile

    def mkdtemp(prefix="", dir=None, **_kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, f"{prefix}abcd1234"))

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    err = _refused(cli, work, "fix", work / "in.mlpackage", "-o", work / "out.mlpackage",
                   says=f"{work / 'out.mlpackage'}: cannot write in {work} (Permission denied)")
    assert "abcd1234" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in any folder")
def test_read_only_folder(cli, work, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _refused(cli, work, "audit", work / "in.mlpackage", "--json", ro / "a.json",
                 says=f"{ro / 'a.json'}: cannot write in {ro}")
        assert listing(ro) == []
    finally:
        ro.chmod(0o755)


def test_failure_after_the_package_is_written_leaves_nothing(cli, work, monkeypatch):
    """The package is staged, then the HTML page fails: no package, no report, no staging folder."""
    from milguard.report.audit import AuditReport

    def broken(self):
        raise MilguardError("the page cannot be drawn")

    monkeypatch.setattr(AuditReport, "to_html", broken)
    _refused(cli, work, "fix", work / "in.mlpackage", "-o", work / "out.mlpackage", "--json", work / "r.json",
             "--html", work / "r.html", says="the page cannot be drawn")


def test_staging_paths_in_errors_name_the_users_path(cli, work, monkeypatch):
    """An OSError raised while writing a staged output (it names the staged file) names the output
    the user asked for."""
    from pathlib import Path

    write_text = Path.write_text

    def disk_full(self, *args, **kwargs):
        if self.name == "r.html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    err = _refused(cli, work, "audit", work / "in.mlpackage", "--html", work / "r.html",
                   says=f"{work / 'r.html'}: {os.strerror(errno.ENOSPC)}")
    assert err == f"milguard: error: {work / 'r.html'}: {os.strerror(errno.ENOSPC)}\n"


def test_reports_replace_existing_files_and_the_package_is_new(cli, work, tmp_path):
    old = work / "r.json"
    old.write_text("old")
    out = tmp_path / "fixed.mlpackage"
    code, _, err = cli("fix", work / "in.mlpackage", "-o", out, "--json", old)
    assert code == 0, err
    assert old.read_text().startswith("{") and out.is_dir()
    assert not [p for p in listing(work) + listing(tmp_path) if STAGING_PREFIX in p]


def test_gating_exit_still_writes_the_reports(cli, work, packages):
    """Exit 1 (findings reach --fail-on) is a verdict, not a failure: the reports are written."""
    report = work / "r.json"
    code, _, err = cli("audit", work / "in.mlpackage", "--calibration", packages["planted"], "--json", report,
                       "--fail-on", "overflow")
    assert code == 1 and report.is_file() and err.endswith("--fail-on overflow\n")


def test_quiet_prints_nothing_but_keeps_the_exit_code(cli, work, packages):
    args = (work / "in.mlpackage", "--calibration", packages["planted"], "--fail-on", "overflow")
    code, out, err = cli("audit", *args, "--quiet")
    assert (code, out) == (1, "") and err == "milguard: 1 finding reaches --fail-on overflow\n"
    code, out, _ = cli("audit", *args, "-q", "--json", "-")
    assert code == 1 and json.loads(out)["format"].startswith("milguard.audit/")
    code, out, err = cli("fix", work / "in.mlpackage", "-o", work / "q.mlpackage", "--quiet")
    assert (code, out, err) == (0, "", "") and (work / "q.mlpackage").is_dir()


def test_python_api_refuses_an_output_touching_its_input(work):
    import milguard

    pkg, digest = work / "in.mlpackage", tree_digest(work)
    with pytest.raises(MilguardError, match=f"{pkg / 'inner.mlpackage'}: is inside the input {pkg}"):
        milguard.keep_fp32(str(pkg), output=pkg / "inner.mlpackage")
    with pytest.raises(MilguardError, match=f"{pkg}: is the input {pkg}"):
        milguard.keep_fp32(str(pkg), output=pkg)
    assert tree_digest(work) == digest


# ---- the helper on its own -------------------------------------------------------------------

def test_overlap_relations(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "pkg", target_is_directory=True)
    assert overlap(tmp_path / "pkg", tmp_path / "pkg") == "is"
    assert overlap(tmp_path / "link", tmp_path / "pkg") == "is"
    assert overlap(tmp_path / "link" / "a" / "b", tmp_path / "pkg") == "is inside"
    assert overlap(tmp_path, tmp_path / "link") == "contains"
    assert overlap(tmp_path / "pkg2", tmp_path / "pkg") is None
    assert overlap(tmp_path / "pkg" / ".." / "pkg2", tmp_path / "pkg") is None


def test_commit_failure_takes_back_the_outputs_already_in_place(tmp_path, monkeypatch):
    """Two outputs; the second rename fails: the first (a replaced report) is restored."""
    first, second = tmp_path / "a.json", tmp_path / "b.mlpackage"
    first.write_text("previous")
    outputs = Outputs()
    outputs.add("--json", first)
    outputs.add("-o", second, model=True)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if str(dst) == str(second):
            raise OSError(18, "Invalid cross-device link", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as err:
        with outputs:
            outputs.path("--json").write_text("new")
            outputs.path("-o").mkdir()
    assert err.value.filename == str(second)                   # the user's path, not the staged one
    assert first.read_text() == "previous" and not second.exists()
    assert listing(tmp_path) == ["a.json"]


def test_nothing_is_staged_when_a_check_fails(tmp_path):
    outputs = Outputs(inputs=[tmp_path / "in.mlpackage"])
    outputs.add("--json", tmp_path / "r.json")
    outputs.add("--html", tmp_path / "missing" / "r.html")
    with pytest.raises(MilguardError, match="the folder .*missing does not exist"):
        with outputs:
            pytest.fail("the block must not run")
    assert listing(tmp_path) == []
