"""A healthy converted model passes ``--fail-on overflow``: MiniLM (real trained weights) converted
with coremltools' default fp16, calibrated on real sentences. Its static bounds alone do not pass
(the default input range [-1, 1] is not what embeddings hold): calibration supersedes them."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from milguard import zoo
    from milguard.mil import write_package

    entry = zoo.MODELS["minilm"]
    root = tmp_path_factory.mktemp("minilm")
    pkg = write_package(zoo.convert(entry), root / "minilm.mlpackage")
    samples = []
    for seed in range(len(zoo.minilm.SENTENCES)):
        path = root / f"sentence{seed}.npz"
        np.savez(path, **{n: t.numpy() for n, t in zip(entry.input_names, entry.example_inputs(seed))})
        samples += ["--calibration", path]
    return pkg, samples


def test_minilm_with_real_sentences_passes_fail_on_overflow(cli, minilm, tmp_path):
    pkg, samples = minilm
    out = tmp_path / "a.json"
    code, text, err = cli("audit", pkg, *samples, "--fail-on", "overflow", "--json", out)
    assert code == 0 and err == ""
    d = json.loads(out.read_text())
    counts = d["summary"]["findings"]
    assert counts["superseded"] > 0 and "superseded by calibration" in text
    superseded = [f for f in d["findings"] if f["superseded_by"]]
    assert {f["source"] for f in superseded} == {"static"}
    assert {f["kind"] for f in superseded if f["severity"] == "warning"} >= {"overflow", "nan"}


def test_minilm_static_bounds_alone_fail_it(cli, minilm):
    pkg, _ = minilm
    code, _, err = cli("audit", pkg, "--fail-on", "overflow")
    assert code == 1 and "--fail-on overflow" in err
