"""Norms and softmax written the way libraries write them, traced and converted with ct.convert:
the matches are found in the FLOAT32 program and in a default program stopped before add_fp16_cast."""
from __future__ import annotations

from collections import Counter

import pytest
import coremltools as ct

from milguard import find_patterns, zoo

pytestmark = pytest.mark.slow

RMS = "decomposed/weight/rsqrt/pow/last_axis"
LN2D = "decomposed/batch_norm/sqrt_div/pow/channel_axis"    # the affine tail became batch_norm
LN = "decomposed/affine/sqrt_div/pow/last_axis"
EXPECTED = {
    # the causal mask of finfo(float32).min is an additive-mask member
    "llama_decoder": {("rms_norm", RMS): 3, ("softmax", "native"): 1, ("mask", "additive"): 1},
    "t5_encoder": {("rms_norm", RMS): 3, ("softmax", "native"): 1},
    "gemma_decoder": {("rms_norm", RMS): 5, ("softmax", "native"): 1,      # (1 + w) folds to a const
                      ("mask", "additive"): 1},
    "sam_neck": {("layer_norm", LN2D): 2},
    "convnext_block": {("layer_norm", LN2D): 2},
    "vit_block": {("layer_norm", LN): 3, ("softmax", "decomposed/max_shifted"): 1},
    "minilm": {("layer_norm", LN): 13, ("softmax", "native"): 6},
}


def _before_add_fp16_cast() -> ct.PassPipeline:
    passes = ct.PassPipeline.DEFAULT.passes
    return ct.PassPipeline(passes[: passes.index("common::add_fp16_cast")], pipeline_name="until_fp16")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matches_in_converted_models(name):
    fp32 = zoo.convert(name, compute_precision=ct.precision.FLOAT32)._mil_program
    assert Counter((m.kind, m.variant) for m in find_patterns(fp32)) == EXPECTED[name]
    early = zoo.convert(name, convert_to="milinternal", pass_pipeline=_before_add_fp16_cast())
    assert Counter((m.kind, m.variant) for m in find_patterns(early)) == EXPECTED[name]


def test_matches_carry_their_torch_module():
    prog = zoo.convert("llama_decoder", compute_precision=ct.precision.FLOAT32)._mil_program
    from milguard.mil import module_path, module_type
    norms = [m for m in find_patterns(prog) if m.kind == "rms_norm"]
    assert {module_type(m.root) for m in norms} == {"LlamaRMSNorm"}
    assert len({module_path(m.root) for m in norms}) == 3
