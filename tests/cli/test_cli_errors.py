"""Bad input: one line on stderr naming the problem and the path, exit code 2, no traceback, nothing written."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from file_trees import MODEL_FILE
from milguard.errors import MilguardError, ModelError


def _bad(cli, tmp_path, *argv, says: str, command: str = "audit"):
    """Run with --json/--html outputs; check the one-line error and that nothing was written."""
    json_out, html_out = tmp_path / "report.json", tmp_path / "report.html"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli(command, *argv, "--json", json_out, "--html", html_out)
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("milguard: error: "), err
    assert says in lines[0], lines[0]
    assert not json_out.exists() and not html_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before       # no temporary files left
    return lines[0]


def _copy(pkg, tmp_path, name="copy.mlpackage"):
    return shutil.copytree(pkg, tmp_path / name)


def test_missing_path(cli, tmp_path):
    missing = tmp_path / "missing.mlpackage"
    _bad(cli, tmp_path, missing, says=f"{missing}: no such file or directory")


def test_file_that_is_not_a_model(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    _bad(cli, tmp_path, notes, says=f"{notes}: not a Core ML model")
    fake = tmp_path / "fake.mlmodel"
    fake.write_bytes(b"\x00garbage" * 10)
    _bad(cli, tmp_path, fake, says=f"{fake}: cannot read model")


def test_neural_network_model(cli, tmp_path):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    import coremltools as ct

    builder = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("y", datatypes.Array(4))])
    builder.add_activation("relu", "RELU", "x", "y")
    nn = tmp_path / "nn.mlmodel"
    ct.utils.save_spec(builder.spec, str(nn))
    _bad(cli, tmp_path, nn, says=f"{nn}: a 'neuralNetwork' model, not an ML program")


def test_package_without_manifest(cli, packages, tmp_path):
    pkg = _copy(packages["rms"], tmp_path)
    (pkg / "Manifest.json").unlink()
    _bad(cli, tmp_path, pkg, says=f"{pkg}: corrupt package (Manifest.json missing)")


def test_truncated_model_file(cli, packages, tmp_path):
    pkg = _copy(packages["rms"], tmp_path)
    spec = pkg.joinpath(*MODEL_FILE)
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 2])
    line = _bad(cli, tmp_path, pkg, says=str(pkg))
    assert "cannot read" in line or "corrupt" in line


def test_package_without_weights(cli, packages, tmp_path):
    pkg = _copy(packages["rms"], tmp_path)
    shutil.rmtree(pkg / "Data" / "com.apple.CoreML" / "weights")
    _bad(cli, tmp_path, pkg, says=f"{pkg}: the package has no weights folder")


def test_unsupported_op_during_calibration(cli, packages, tmp_path):
    line = _bad(cli, tmp_path, packages["crop"], "--calibration", packages["crop_npz"],
                says=f"unsupported op type '{packages['unsupported_op']}'")
    assert str(packages["crop"]) in line
    # without calibration the same model audits fine (static ranges only)
    assert cli("audit", packages["crop"])[0] == 0


@pytest.mark.parametrize("value,says", [
    ("x", "bad --input-range 'x': expected NAME=LO:HI"),
    ("x=1", "bad --input-range 'x=1': expected NAME=LO:HI"),
    ("x=a:b", "bad input range 'x=a:b': expected NAME=LO:HI"),
    ("x=3:1", "bad input range for 'x': 3.0 > 1.0"),
    ("y=0:1", "bad --input-range 'y=0:1': the model has no input 'y' (inputs: x)"),
])
def test_bad_input_range(cli, packages, tmp_path, value, says):
    _bad(cli, tmp_path, packages["rms"], "--input-range", value, says=says)


def test_calibration_file_missing_or_not_npz(cli, packages, tmp_path):
    missing = tmp_path / "missing.npz"
    _bad(cli, tmp_path, packages["rms"], "--calibration", missing, says=f"{missing}: no such calibration file")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    _bad(cli, tmp_path, packages["rms"], "--calibration", text, says=f"{text}: not a readable .npz file")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, y=np.zeros((2, 64), np.float16))
    _bad(cli, tmp_path, packages["rms"], "--calibration", wrong,
         says=f"{wrong}: missing input 'x' (given: y)")


def test_report_into_missing_folder(cli, packages, tmp_path):
    target = tmp_path / "nowhere" / "a.json"
    code, out, err = cli("audit", packages["rms"], "--json", target)
    assert code == 2 and out == "" and not target.parent.exists()
    assert err == f"milguard: error: {target}: the folder {target.parent} does not exist\n"


def test_unknown_function(cli, packages, tmp_path):
    _bad(cli, tmp_path, packages["rms"], "--function", "decode", says="no function 'decode' (has main)")


def test_fix_refuses_existing_output_and_its_input(cli, packages, tmp_path):
    existing = _copy(packages["clean"], tmp_path, "existing.mlpackage")
    stamp = existing.joinpath(*MODEL_FILE).read_bytes()
    _bad(cli, tmp_path, packages["rms"], "-o", existing, command="fix",
         says=f"{existing}: already exists; milguard never overwrites a model")
    assert existing.joinpath(*MODEL_FILE).read_bytes() == stamp
    src = _copy(packages["rms"], tmp_path, "src.mlpackage")
    _bad(cli, tmp_path, src, "-o", src, command="fix", says=f"-o {src}: is the input {src}")
    _bad(cli, tmp_path, packages["rms"], "-o", tmp_path / "out.mlmodel", command="fix",
         says="the output must end in .mlpackage")


def test_fix_bad_options_write_nothing(cli, packages, tmp_path):
    out = tmp_path / "out.mlpackage"
    _bad(cli, tmp_path, packages["rms"], "-o", out, "--families", "rms_norm,batch_norm", command="fix",
         says="unknown pattern families ['batch_norm']")
    assert not out.exists()
    _bad(cli, tmp_path, tmp_path / "missing.mlpackage", "-o", out, command="fix", says="no such file")
    _bad(cli, tmp_path, packages["crop"], "-o", out, "--calibration", packages["crop_npz"], command="fix",
         says=f"unsupported op type '{packages['unsupported_op']}'")
    assert not out.exists()


@pytest.mark.parametrize("argv,says", [
    (("audit", "{rms}", "--fail-on", "sometimes"), "argument --fail-on: invalid choice: 'sometimes'"),
    (("fix", "{rms}"), "the following arguments are required: -o/--output"),
    ((), "the following arguments are required: {audit,fix}"),
    (("check", "{rms}"), "argument {audit,fix}: invalid choice: 'check'"),
    (("audit",), "the following arguments are required: MODEL"),
    (("audit", "{rms}", "--colour"), "unrecognized arguments: --colour"),
    (("audit", "{rms}", "--quiet", "--progress"), "argument --progress: not allowed with argument --quiet"),
    (("audit", "{rms}", "--compute-units", "GPU"), "argument --compute-units: invalid choice: 'GPU'"),
])
def test_usage_errors_are_one_line(cli, packages, argv, says):
    """argparse's errors without its usage block: one line naming the problem and where to look."""
    code, out, err = cli(*[a.format(rms=packages["rms"]) for a in argv])
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("milguard: error: ") and says in err, err
    assert "--help'" in err and "Traceback" not in err


def test_debug_shows_the_exception(cli, packages, tmp_path):
    with pytest.raises(ModelError, match="no such file or directory"):
        cli("audit", tmp_path / "missing.mlpackage", "--debug")
    with pytest.raises(MilguardError, match="expected NAME=LO:HI"):
        cli("audit", packages["rms"], "--debug", "--input-range", "x")


def test_manifest_garbage_or_model_file_gone(cli, packages, tmp_path):
    pkg = _copy(packages["rms"], tmp_path, "garbage.mlpackage")
    (pkg / "Manifest.json").write_text("{not json")
    _bad(cli, tmp_path, pkg, says=f"{pkg}: corrupt package (Manifest.json is not a package manifest)")
    gone = _copy(packages["rms"], tmp_path, "gone.mlpackage")
    gone.joinpath(*MODEL_FILE).unlink()
    _bad(cli, tmp_path, gone, says=f"{gone}: corrupt package (com.apple.CoreML/model.mlmodel is listed in "
                                  "Manifest.json but missing)")
    empty = _copy(packages["rms"], tmp_path, "empty.mlpackage")
    empty.joinpath(*MODEL_FILE).write_bytes(b"")
    _bad(cli, tmp_path, empty, says=f"{empty}: corrupt package (com.apple.CoreML/model.mlmodel is empty)")


def test_truncated_weight_file(cli, packages, tmp_path):
    pkg = _copy(packages["rms"], tmp_path)
    weights = pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:40])
    _bad(cli, tmp_path, pkg, says=f"{pkg}: corrupt ML program")


def test_html_without_matplotlib(cli, packages, tmp_path, monkeypatch):
    """matplotlib is the html extra: without it --html fails before any work, naming the fix."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    _bad(cli, tmp_path, packages["rms"], says="the HTML report needs matplotlib: pip install 'milguard[html]'")


def test_calibration_of_strings_is_bad_input(cli, packages, tmp_path):
    strings = tmp_path / "strings.npz"
    np.savez(strings, x=np.array([["a"] * 64] * 2))
    _bad(cli, tmp_path, packages["rms"], "--calibration", strings,
         says=f"{strings}: input 'x' holds strings (<U1); the model takes fp16")
    _bad(cli, tmp_path, packages["rms"], "--calibration", strings, "-o", tmp_path / "fixed.mlpackage",
         command="fix", says=f"{strings}: input 'x' holds strings")


def test_calibration_outside_a_range_dim_or_enumerated_shape_is_bad_input(cli, flexible, tmp_path):
    _, model = flexible
    long = tmp_path / "long.npz"
    np.savez(long, x=np.ones((1, 40, 16), np.float32), y=np.ones((2, 4), np.float32))
    _bad(cli, tmp_path, model, "--calibration", long,
         says=f"{long}: input 'x' has 40 along axis 1, outside the model's range [2, 32] for that dim")
    odd = tmp_path / "odd.npz"
    np.savez(odd, x=np.ones((1, 8, 16), np.float32), y=np.ones((4, 4), np.float32))
    _bad(cli, tmp_path, model, "--calibration", odd, says=f"{odd}: input 'y' has shape (4, 4), not one of")
