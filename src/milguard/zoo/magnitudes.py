"""Activation magnitudes from the literature, planted into the zoo's inputs. Data, with sources.

A ``Scenario`` says how large the input of one module (``where``, a dotted module path; "" is the
model input) gets, in which channels and at which tokens/pixels, and where that number comes from.
The planting code (``planting.py``) calibrates the model input so that the hooked input of
``where`` reaches exactly ``magnitude`` (max |x|) in fp32.

fp16 landmarks (:mod:`milguard.fp16`): max 65504; x^2 overflows for |x| > 255.9 (``SQUARE_LIMIT``);
exp overflows for x > 11.09 (``EXP_LIMIT``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    key: str
    magnitude: float                    # max |x| at the input of ``where`` after planting (fp32)
    where: str                          # module whose input carries the magnitude ("" = model input)
    channels: tuple[int, ...]           # feature / channel indices that carry it
    positions: tuple[int, ...] | None   # token indices (or flattened pixel indices); None = all
    source: str                         # paper / issue with table, figure or comment
    certainty: str                      # H / M / L as in the research notes
    note: str = ""


SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario(
        key="llama2_massive_activations", magnitude=2.6e3, where="input_layernorm",
        channels=(17, 93), positions=(0, 5),
        source=("Sun, Chen, Kolter, Liu, 'Massive Activations in Large Language Models', COLM 2024, "
                "arXiv:2402.17762, Fig. 1 and Table 1 (LLaMA2-7B: two fixed feature dims 1415 and 2533, "
                "on the start token and the first '.' or newline; top magnitude about 2.6e3)"),
        certainty="H for dims/tokens and the 1e5x ratio, M for the exact top value",
        note="two residual channels on two tokens, as in the paper; positive and negative signs"),
    Scenario(
        key="t5_v11_residual", magnitude=3.2e4, where="attention_layer_norm",
        channels=(5, 77, 101), positions=(0, 7),
        source=("huggingface/transformers PR #10956 (T5 v1.1 hidden states between -2.77e5 and 2.75e5, "
                "T5LayerNorm variance up to 6.9e8) and the fp16 clamp in transformers' T5Block "
                "(finfo(float16).max - 1000)"),
        certainty="M",
        note=("the documented 2.75e5 does not fit in fp16 at all; 3.2e4 (half the fp16 max) is the "
              "largest value whose residual additions stay finite, so only the norm's square overflows")),
    Scenario(
        key="gemma3_residual_peak", magnitude=61040.0, where="input_layernorm",
        channels=(3, 64), positions=(0,),
        source=("ANEMLL docs/FP16_SCALING.md (zkh2016/Anemll fork): peak residual of Gemma3-1B is "
                "61,040 = 0.93x the fp16 max (Gemma3-270M 104,162; Gemma3-4B-QAT 292,969)"),
        certainty="M"),
    Scenario(
        key="vit_output_high_norm", magnitude=5.4e4, where="",
        channels=(11, 42), positions=(0, 129),
        source=("vllm-project/vllm#40290: the SigLIP vision tower of Gemma 4 reaches |x| ~ 5.4e4 before its "
                "final standardisation, which overflows fp16; facebookresearch/segment-anything#540 and "
                "#696: the SAM ViT-H encoder gives garbage in fp16 and is fixed by keeping LayerNorm and "
                "LayerNorm2d fp32"),
        certainty="M",
        note="planted on the ViT output that feeds SAM's neck, at two spatial positions"),
    Scenario(
        key="conv_features_into_channel_norm", magnitude=940.0, where="norm",
        channels=(2, 31), positions=None,
        source=("neuroneural/brainchop-cli PR #56: conv outputs entering a channel norm reach ~940 at "
                "layer 1 of a 24-channel model (~375 in the shipped one); every value above ~256 squares "
                "to inf in fp16"),
        certainty="M",
        note="whole channel maps, as conv features are dense"),
    Scenario(
        key="vit_register_tokens", magnitude=2.6e3, where="norm1",
        channels=(7, 70), positions=(0, 9),
        source=("Sun et al. 2024 (arXiv:2402.17762) Sec. 6: ViTs (CLIP ViT-L, DINOv2 with registers) carry "
                "massive activations in fixed feature dims on a few tokens, like LLMs; Darcet et al., "
                "'Vision Transformers Need Registers', ICLR 2024: high-norm outlier tokens"),
        certainty="H for existence, L for the value: no per-element ViT value was verified, so the LLaMA2-7B "
                  "magnitude of the same paper is reused",
        note="the class token and one patch token"),
    Scenario(
        key="minilm_real", magnitude=0.0, where="", channels=(), positions=None,
        source="measured here: trained all-MiniLM-L6-v2 weights on real sentences (minilm_ranges.json)",
        certainty="H", note="nothing is planted: the real-weights control that should stay fp16-safe"),
)}
