"""``milguard fix`` on the default fp16 conversion of a 2-layer HF ``LlamaForCausalLM`` (hidden 128,
eager attention, a precomputed 4D causal mask): it exited 3 with RecursionError from copying the
program (``copy.deepcopy``), which recursed once per link of a chain of ops."""
from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest
import torch

import milguard
from milguard.actions.repair import METADATA_KEY
from milguard.cli import main
from models.corpus import VOCAB, causal_mask
from models.harness import convert, snr_db

SEQ = 16


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    import transformers

    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                      use_cache=False)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    inputs = {"input_ids": torch.randint(3, VOCAB, (1, SEQ), dtype=torch.int32), "attention_mask": causal_mask(SEQ)}
    wrapped = Logits().eval()
    with torch.no_grad():
        ref = wrapped(*inputs.values()).numpy()
        traced = torch.jit.trace(wrapped, tuple(inputs.values()), check_trace=False)
    mlmodel = convert(traced, inputs)
    path = tmp_path_factory.mktemp("llama") / "llama.mlpackage"
    mlmodel.save(str(path))
    return path, {k: v.numpy() for k, v in inputs.items()}, ref


@pytest.mark.slow
def test_cli_fix_of_a_converted_hf_llama(llama, tmp_path, capsys):
    path, feeds, ref = llama
    out = tmp_path / "fixed.mlpackage"
    code = main(["fix", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    remedies = json.loads(ct.models.MLModel(str(out), skip_model_load=True).user_defined_metadata[METADATA_KEY])
    assert {r["family"] for r in remedies} <= {"rms_norm", "softmax"}
    assert len(milguard.find_patterns(out, kinds=["rms_norm"])) == 5    # 2 per layer and the final norm
    got = list(milguard.run(out, feeds).values())[0]
    default = list(milguard.run(path, feeds).values())[0]
    assert snr_db(ref, got) >= snr_db(ref, default) - 1.0
    assert np.isfinite(got).all()


@pytest.mark.slow
@pytest.mark.parametrize("calibrated", [False, True], ids=["static", "calibrated"])
def test_fix_then_audit_of_a_converted_hf_llama(llama, calibrated):
    from roundtrip import assert_fix_round_trip

    path, feeds, ref = llama
    fixed = assert_fix_round_trip(path, **({"calibration": feeds} if calibrated else {}))
    got = list(milguard.run(fixed, feeds).values())[0]
    assert np.isfinite(got).all() and snr_db(ref, got) >= snr_db(ref, list(milguard.run(path, feeds).values())[0]) - 1.0
