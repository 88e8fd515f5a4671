"""The input is only read: every byte of the input tree stays as it was, through the CLI and the
Python API, also for a package whose manifest coremltools would rewrite; bad manifests are named."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from file_trees import MANIFEST, compact_copy, listing, tree_digest
from milguard.errors import ModelError


@pytest.fixture
def compact(packages, tmp_path):
    """A valid package whose Manifest.json is compact JSON, and its digest."""
    pkg = compact_copy(packages["rms"], tmp_path / "in" / "compact.mlpackage")
    return pkg, tree_digest(pkg.parent)


def test_coremltools_itself_rewrites_the_manifest_it_opens(compact):
    """Why milguard reads packages through a private view: opening one with coremltools rewrites
    its manifest (re-indented), so the tests below would fail without the view."""
    import coremltools as ct

    pkg, digest = compact
    manifest = (pkg / MANIFEST).read_bytes()
    ct.models.MLModel(str(pkg), skip_model_load=True)
    assert (pkg / MANIFEST).read_bytes() != manifest
    assert tree_digest(pkg.parent) != digest


def test_python_api_reads_without_writing(compact, tmp_path, planted):
    import milguard
    from milguard.mil import load

    pkg, digest = compact
    assert "pow" in {op.name for op in load(pkg).program.functions["main"].operations}
    assert milguard.audit(str(pkg), calibration=planted).summary["ops"] == 7
    out = tmp_path / "fixed.mlpackage"
    milguard.keep_fp32(str(pkg), output=out)
    milguard.run(pkg, planted)
    assert tree_digest(pkg.parent) == digest
    assert out.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.mlpackage", "in"]


def test_cli_reads_without_writing(cli, compact, packages, tmp_path):
    pkg, digest = compact
    before = listing(pkg.parent)
    code, _, err = cli("audit", pkg, "--calibration", packages["planted"], "--json", tmp_path / "a.json",
                       "--html", tmp_path / "a.html")
    assert code == 0, err
    code, _, err = cli("fix", pkg, "-o", tmp_path / "fixed.mlpackage", "--calibration", packages["planted"])
    assert code == 0, err
    assert tree_digest(pkg.parent) == digest and listing(pkg.parent) == before


def test_symbolic_link_to_the_input_is_read_not_written(cli, compact, tmp_path):
    pkg, digest = compact
    link = tmp_path / "link.mlpackage"
    link.symlink_to(pkg, target_is_directory=True)
    code, out, err = cli("audit", link)
    assert code == 0 and out.startswith(f"milguard audit: {link} "), err
    assert tree_digest(pkg.parent) == digest and link.is_symlink()


def test_single_file_model_is_read_not_written(cli, packages, tmp_path):
    from milguard.mil import load

    spec = tmp_path / "model.mlmodel"
    shutil.copyfile(packages["rms"].joinpath("Data", "com.apple.CoreML", "model.mlmodel"), spec)
    digest = tree_digest(tmp_path)
    with pytest.raises(ModelError, match="no weights folder"):   # an ML program needs its weights
        load(spec)
    assert cli("audit", spec)[0] == 2
    assert tree_digest(tmp_path) == digest


@pytest.mark.parametrize("item_path", ["../../../outside", "/etc/hostname", ".."])
def test_item_path_leading_out_of_the_package_is_named(cli, packages, tmp_path, item_path):
    pkg = shutil.copytree(packages["rms"], tmp_path / "escape.mlpackage")
    manifest = json.loads((pkg / MANIFEST).read_text())
    entry = next(e for e in manifest["itemInfoEntries"].values() if e["name"] == "model.mlmodel")
    entry["path"] = item_path
    (pkg / MANIFEST).write_text(json.dumps(manifest))
    digest = tree_digest(tmp_path)
    code, out, err = cli("audit", pkg)
    assert code == 2 and out == ""
    assert err == (f"milguard: error: {pkg}: corrupt package (the item path '{item_path}' in {MANIFEST} "
                   "leads out of the package)\n")
    assert "protobuf" not in err and tree_digest(tmp_path) == digest
    with pytest.raises(ModelError, match="leads out of the package"):
        from milguard.mil import load
        load(pkg)


@pytest.mark.parametrize("item", [("model.mlmodel",), ("weights", "weight.bin")])
def test_errors_name_the_package_not_the_private_view(cli, packages, tmp_path, item):
    """coremltools' own messages name the file it failed on, inside the private view it was given:
    they name the file inside the user's package instead."""
    pkg = shutil.copytree(packages["rms"], tmp_path / "broken.mlpackage")
    bad = pkg.joinpath("Data", "com.apple.CoreML", *item)
    bad.unlink()
    bad.mkdir()                                    # a folder where coremltools expects a file
    code, _, err = cli("audit", pkg)
    assert code == 2 and err.startswith(f"milguard: error: {pkg}: ") and len(err.splitlines()) == 1
    assert str(bad) in err and "milguard-view" not in err, err
