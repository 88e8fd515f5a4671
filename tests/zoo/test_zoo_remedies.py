"""The same decision everywhere, on whole converted models: fix a default fp16 package, audit the
result with the same options and data, and the audit finds nothing milguard would still fix; a model
that needs nothing (MiniLM on real sentences) converts exactly as without milguard."""
from __future__ import annotations

import numpy as np
import pytest

import milguard
from milguard import zoo
from milguard.mil import load
from programs import signature
from roundtrip import assert_fix_round_trip

pytestmark = pytest.mark.slow


def test_minilm_calibrated_on_real_sentences_converts_exactly_as_the_default():
    from milguard.actions.decide import remembered
    from milguard.zoo import minilm

    entry = zoo.MODELS["minilm"]
    samples = [{n: t.numpy() for n, t in zip(entry.input_names, entry.example_inputs(seed))}
               for seed in range(len(minilm.SENTENCES))]
    guarded = zoo.convert(entry, pass_pipeline=milguard.pipeline(calibration=samples))
    assert {d.remedy for d in remembered(load(guarded).program)} == {"none"}
    assert signature(guarded) == signature(zoo.convert(entry))


@pytest.mark.parametrize("calibrated", [False, True], ids=["static", "calibrated"])
@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_fix_then_audit_finds_nothing_left_to_fix(name, calibrated):
    entry = zoo.MODELS[name]
    inputs = entry.planted_inputs(0)
    sample = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    fixed = assert_fix_round_trip(zoo.convert(entry, inputs), **({"calibration": sample} if calibrated else {}))
    if calibrated:
        out = milguard.run(fixed, sample)[entry.output_names[0]]
        assert np.isfinite(out).all()
