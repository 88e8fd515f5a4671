"""The CLI on a converted zoo model: the bundled example converted with default fp16, planted inputs."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    from milguard import zoo
    from milguard.mil import write_package

    entry = zoo.MODELS[zoo.EXAMPLE]
    root = tmp_path_factory.mktemp("zoo")
    pkg = write_package(zoo.convert(entry), root / f"{entry.name}.mlpackage")
    npz = root / "planted.npz"
    np.savez(npz, **{n: t.numpy() for n, t in zip(entry.input_names, entry.planted_inputs(0))})
    np.savez(root / "ordinary.npz", **{n: t.numpy() for n, t in zip(entry.input_names, entry.example_inputs(0))})
    return pkg, npz


def test_the_example_fed_ordinary_activations_passes_fail_on_overflow(cli, example):
    """The same package: its finfo(float32).min causal mask is one info finding, the static
    logit bound and "may produce NaN" are superseded by calibration."""
    pkg, npz = example
    code, out, _ = cli("audit", pkg, "--calibration", npz.with_name("ordinary.npz"), "--fail-on", "overflow")
    assert code == 0 and "superseded by calibration" in out


def test_audit_of_the_example(cli, example, tmp_path):
    pkg, npz = example
    out_json, out_html = tmp_path / "a.json", tmp_path / "a.html"
    code, out, err = cli("audit", pkg, "--calibration", npz, "--json", out_json, "--html", out_html,
                         "--fail-on", "overflow")
    assert code == 1 and re.fullmatch(r"milguard: \d+ findings reach --fail-on overflow\n", err)
    d = json.loads(out_json.read_text())
    rms = [p for p in d["patterns"] if p["kind"] == "rms_norm"]
    assert len(rms) == 3 and {p["precision"] for p in rms} == {"fp16"}
    pows = {op for p in rms for op in p["ops"][:1]}
    errors = [f for f in d["findings"] if f["severity"] == "error" and f["source"] == "calibration"
              and f["kind"] == "overflow"]
    assert pows <= {f["op"] for f in errors}                     # every RMSNorm square overflows
    assert all(f["covered_by"] == "milguard::keep_fp32_rms_norm" for f in errors if f["op"] in pows)
    assert "Regions (5): what milguard decides for each" in out and "rms_norm" in out
    assert [p["verdict"] for p in d["patterns"] if p["kind"] in ("rms_norm", "mask")] == ["rescale"] * 4
    assert "milguard fix would change 4 regions" in out
    page = out_html.read_text()
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert page.count("<span class='sev error'>") == d["summary"]["findings"]["by_severity"]["error"]


@pytest.mark.parametrize("remedy,verdict,precision", [("auto", "rescaled", "fp16"), ("fp32", "fp32", "fp32")])
def test_fix_then_audit_the_example(cli, example, tmp_path, remedy, verdict, precision):
    """After fix, the audit with the same data finds nothing milguard says it can fix."""
    pkg, npz = example
    fixed = tmp_path / "fixed.mlpackage"
    code, out, _ = cli("fix", pkg, "-o", fixed, "--calibration", npz, "--remedy", remedy)
    assert code == 0 and "wrote" in out
    assert ("1 region rescaled, 3 regions kept fp32" if remedy == "fp32" else "4 regions rescaled") in out
    out_json = tmp_path / "after.json"
    code, _, _ = cli("audit", fixed, "--calibration", npz, "--json", out_json, "--remedy", remedy)
    d = json.loads(out_json.read_text())
    assert code == 0
    norms = [p for p in d["patterns"] if p["kind"] == "rms_norm"]
    assert [(p["verdict"], p["precision"]) for p in norms] == [(verdict, precision)] * 3
    assert d["summary"]["decisions"]["fixable"] == 0
    assert [f for f in d["findings"] if f["severity"] == "error"] == []
    gating = [f for f in d["findings"] if f["severity"] in ("error", "warning")]
    assert [f for f in gating if f["covered_by"]] == []         # nothing left inside the remedied regions
    assert [f for f in gating if f["source"] == "calibration"] == []


def test_neural_network_conversion_is_rejected(cli, capsys, tmp_path):
    import coremltools as ct
    import torch

    traced = torch.jit.trace(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval(),
                             torch.zeros(1, 4))
    nn = tmp_path / "nn.mlmodel"
    ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 4))], convert_to="neuralnetwork").save(str(nn))
    capsys.readouterr()                                          # the converter's own progress output
    code, out, err = cli("audit", nn, "--json", tmp_path / "r.json")
    assert code == 2 and out == "" and not (tmp_path / "r.json").exists()
    assert err == (f"milguard: error: {nn}: a 'neuralNetwork' model, not an ML program; "
                   "milguard reads ML programs only\n")
