"""The same decision everywhere, on whole converted models: fix a default fp16 package, audit the
result with the same options and data, and the audit finds nothing milguard would still fix; a model
that needs nothing (MiniLM on real sentences) converts exactly as without milguard."""
from __future__ import annotations

import numpy as np
import pytest

import milguard
from milguard import zoo
from milguard.mil import dtype_name, iter_ops, load

pytestmark = pytest.mark.slow


def signature(model):
    fn = load(model).program.functions["main"]
    return [(op.op_type, dtype_name(op.outputs[0])) for op in iter_ops(fn) if op.op_type != "const"]


def test_minilm_calibrated_on_real_sentences_converts_exactly_as_the_default():
    from milguard.actions.decide import remembered
    from milguard.zoo import minilm

    entry = zoo.MODELS["minilm"]
    samples = [{n: t.numpy() for n, t in zip(entry.input_names, entry.example_inputs(seed))}
               for seed in range(len(minilm.SENTENCES))]
    guarded = zoo.convert(entry, pass_pipeline=milguard.pipeline(calibration=samples))
    assert {d.remedy for d in remembered(load(guarded).program)} == {"none"}
    assert signature(guarded) == signature(zoo.convert(entry))


def _gating(d):
    return [f for f in d["findings"] if f["severity"] in ("error", "warning")
            and f.get("superseded_by") is None and f.get("ignored_by") is None]


@pytest.mark.parametrize("calibrated", [False, True], ids=["static", "calibrated"])
@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_fix_then_audit_finds_nothing_left_to_fix(name, calibrated, tmp_path):
    entry = zoo.MODELS[name]
    inputs = entry.planted_inputs(0)
    sample = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    options = {"calibration": sample} if calibrated else {}
    plain = zoo.convert(entry, inputs)
    before = milguard.audit(plain, **options).to_dict()
    fixed = milguard.keep_fp32(plain, **options)
    after = milguard.audit(fixed, **options).to_dict()

    # what the audit suggested is what fix did
    suggested = sorted((p["kind"], p["remedy"]) for p in before["patterns"] if p["remedy"] != "none")
    done = sorted((p["kind"], {"rescaled": "rescale", "fp32": "fp32"}[p["state"]])
                  for p in after["patterns"] if p["state"] != "fp16")
    assert suggested == done
    # and nothing is left that milguard would fix, nor a finding inside a region it remedied
    assert after["summary"]["decisions"]["fixable"] == 0
    assert [(f["op"], f["kind"]) for f in _gating(after) if f["covered_by"]] == []
    if calibrated:
        out = milguard.run(fixed, sample)[entry.output_names[0]]
        assert np.isfinite(out).all()
