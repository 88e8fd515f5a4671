"""Real Hugging Face architectures, built from small configs with random weights (no downloads).

One row per architecture: the ``transformers`` model class, a small config, the inputs it is traced
with, the output compared, and — where milguard does not match a norm family yet — the expected
gap. ``build(row)`` gives the model in eval mode wrapped to take positional tensors and return one
plain tensor (what ``torch.jit.trace`` and ``ct.convert`` need).

Every model runs eager attention without a cache. Decoders get a precomputed 4D causal mask
(``causal_mask``): transformers' own mask code uses ``diff`` and ``new_ones``, which coremltools
9.0 cannot convert; a 4D mask makes transformers return it as given (see docs/hf-models.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

SEQ = 8                 # tokens of text inputs
VOCAB = 128
HIDDEN = 64
IMAGE = 32              # side of image inputs
MASK_MIN = -1e4         # masked logits: far below any logit here, finite in fp16


@dataclass(frozen=True)
class Arch:
    """One architecture of the corpus."""

    name: str
    kind: str                                   # "encoder" | "decoder" | "vision" | "speech"
    model: str                                  # transformers class name
    config: Callable[[], Any] = field(repr=False)
    inputs: Callable[[torch.Generator], dict[str, torch.Tensor]] = field(repr=False)
    output: str = "last_hidden_state"
    gaps: dict[str, str] = field(default_factory=dict)   # family -> why no torch module of it is matched
    part: str | None = None                     # convert this submodule only ("encoder" of Whisper)
    workaround: Callable[[nn.Module], None] | None = field(default=None, repr=False)
    note: str = ""                              # what the workaround does and why


class Plain(nn.Module):
    """``model(**named inputs).<output>`` with positional tensor inputs."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], output: str):
        super().__init__()
        self.model, self.names, self.output = model, names, output

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.model(**dict(zip(self.names, args)))
        return out[self.output] if not isinstance(out, torch.Tensor) else out


def build(arch: Arch, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """(wrapped model in eval mode with seeded random weights, its inputs).

    Norm weights are drawn around 1 and biases around 0 (transformers initialises them to exactly
    1 and 0): two norms of the same input would otherwise be the same op, which conversion merges.
    """
    import transformers

    config = arch.config()
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, arch.model)(config).float().eval()
        _perturb_norms(model)
    if arch.part is not None:
        model = getattr(model, arch.part)
    if arch.workaround is not None:
        arch.workaround(model)
    inputs = arch.inputs(torch.Generator().manual_seed(1000 + seed))
    return Plain(model, tuple(inputs), arch.output).eval(), inputs


def _perturb_norms(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if "norm" not in type(module).__name__.lower() or any(True for _ in module.children()):
                continue
            for name, param in module.named_parameters(recurse=False):
                param.add_(0.1 * torch.randn_like(param))


# ---- inputs ----------------------------------------------------------------------------------

def token_ids(g: torch.Generator, vocab: int = VOCAB) -> torch.Tensor:
    return torch.randint(3, vocab, (1, SEQ), generator=g, dtype=torch.int32)


def causal_mask(seq: int = SEQ) -> torch.Tensor:
    """(1, 1, seq, seq): 0 where a token may attend, MASK_MIN above the diagonal."""
    return torch.triu(torch.full((seq, seq), MASK_MIN), diagonal=1)[None, None]


def text(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"input_ids": token_ids(g)}


def causal_text(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"input_ids": token_ids(g), "attention_mask": causal_mask()}


def causal_text_positions(g: torch.Generator) -> dict[str, torch.Tensor]:
    """OPT derives positions from a 2D mask (a cumsum); with a 4D mask they are given."""
    return {**causal_text(g), "position_ids": torch.arange(SEQ, dtype=torch.int32)[None]}


def image(g: torch.Generator, channels: int = 3, side: int = IMAGE) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(1, channels, side, side, generator=g)}


def waveform(g: torch.Generator, samples: int = 1600) -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(1, samples, generator=g)}


def mel(g: torch.Generator, bins: int = 16, frames: int = 32) -> dict[str, torch.Tensor]:
    return {"input_features": torch.randn(1, bins, frames, generator=g)}


# ---- workarounds for what coremltools 9.0 cannot convert -------------------------------------

def fixed_position_embeddings(model: nn.Module) -> None:
    """DINOv2 always interpolates its position embeddings while tracing (bicubic, which coremltools
    9.0 cannot convert: 'upsample_bicubic2d'); at the configured image size they are used as they are."""
    embeddings = model.embeddings
    embeddings.interpolate_pos_encoding = lambda emb, height, width: embeddings.position_embeddings


def precomputed_position_bias(model: nn.Module) -> None:
    """BEiT builds its relative-position index with in-place writes while tracing, which coremltools
    9.0 cannot convert ('The updates tensor should have shape []'); at a fixed image size the bias
    depends on the weights only: compute it once in eager mode, trace it as a constant."""
    for module in model.modules():
        if type(module).__name__ == "BeitRelativePositionBias":
            with torch.no_grad():
                bias = module(module.window_size)
            module.forward = lambda *args, bias=bias, **kwargs: bias


# ---- configs ---------------------------------------------------------------------------------

def _cfg(name: str, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import transformers
        return getattr(transformers, name)(**kw)
    return make


_BERT = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, max_position_embeddings=64)
_LLAMA = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, use_cache=False)
_VIT = dict(image_size=IMAGE, patch_size=8, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128)
_CONVNEXT = dict(num_channels=3, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], patch_size=4,
                 image_size=IMAGE)
_WAV2VEC = dict(vocab_size=32, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128, conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=True,
                feat_extract_norm="layer")

ARCHS: tuple[Arch, ...] = (
    # encoders
    Arch("bert", "encoder", "BertModel", _cfg("BertConfig", **_BERT), text),
    Arch("roberta", "encoder", "RobertaModel", _cfg("RobertaConfig", **_BERT, pad_token_id=1), text),
    Arch("distilbert", "encoder", "DistilBertModel",
         _cfg("DistilBertConfig", vocab_size=VOCAB, dim=HIDDEN, n_layers=2, n_heads=4, hidden_dim=128,
              max_position_embeddings=64), text),
    Arch("albert", "encoder", "AlbertModel",
         _cfg("AlbertConfig", **_BERT, embedding_size=32), text),
    Arch("electra", "encoder", "ElectraModel", _cfg("ElectraConfig", **_BERT, embedding_size=32), text),
    Arch("deberta_v2", "encoder", "DebertaV2Model",
         _cfg("DebertaV2Config", **_BERT, relative_attention=True, position_buckets=16,
              pos_att_type=["p2c", "c2p"]), text),
    Arch("mpnet", "encoder", "MPNetModel", _cfg("MPNetConfig", **_BERT), text),
    Arch("t5_encoder", "encoder", "T5EncoderModel",
         _cfg("T5Config", vocab_size=VOCAB, d_model=HIDDEN, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
              use_cache=False), text),
    # decoders
    Arch("llama", "decoder", "LlamaModel", _cfg("LlamaConfig", **_LLAMA), causal_text),
    Arch("mistral", "decoder", "MistralModel", _cfg("MistralConfig", **_LLAMA), causal_text),
    Arch("qwen2", "decoder", "Qwen2Model", _cfg("Qwen2Config", **_LLAMA), causal_text),
    Arch("qwen3", "decoder", "Qwen3Model", _cfg("Qwen3Config", **_LLAMA, head_dim=16), causal_text),
    Arch("gemma", "decoder", "GemmaModel", _cfg("GemmaConfig", **_LLAMA, head_dim=16), causal_text),
    Arch("gemma2", "decoder", "Gemma2Model", _cfg("Gemma2Config", **_LLAMA, head_dim=16), causal_text),
    Arch("phi3", "decoder", "Phi3Model", _cfg("Phi3Config", **_LLAMA, pad_token_id=0), causal_text),
    Arch("gpt2", "decoder", "GPT2Model",
         _cfg("GPT2Config", vocab_size=VOCAB, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=64,
              use_cache=False), causal_text),
    Arch("gpt_neox", "decoder", "GPTNeoXModel",
         _cfg("GPTNeoXConfig", vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=128, max_position_embeddings=64, use_cache=False), causal_text),
    Arch("opt", "decoder", "OPTModel",
         _cfg("OPTConfig", vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
              ffn_dim=128, max_position_embeddings=64, word_embed_proj_dim=HIDDEN, use_cache=False),
         causal_text_positions),
    # vision
    Arch("vit", "vision", "ViTModel", _cfg("ViTConfig", **_VIT), image),
    Arch("deit", "vision", "DeiTModel", _cfg("DeiTConfig", **_VIT), image),
    Arch("dinov2", "vision", "Dinov2Model", _cfg("Dinov2Config", **_VIT), image,
         workaround=fixed_position_embeddings,
         note="position embeddings used as they are at the configured image size (no bicubic interpolation)"),
    Arch("beit", "vision", "BeitModel", _cfg("BeitConfig", **_VIT, use_relative_position_bias=True), image,
         output="pooler_output",
         workaround=precomputed_position_bias,
         note="relative position bias computed once in eager mode and traced as a constant"),
    Arch("swin", "vision", "SwinModel",
         _cfg("SwinConfig", image_size=IMAGE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
              window_size=4), image),
    Arch("convnext", "vision", "ConvNextModel", _cfg("ConvNextConfig", **_CONVNEXT), image,
         output="pooler_output"),
    Arch("convnext_v2", "vision", "ConvNextV2Model", _cfg("ConvNextV2Config", **_CONVNEXT), image,
         output="pooler_output"),
    Arch("segformer", "vision", "SegformerModel",
         _cfg("SegformerConfig", num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
              hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
              mlp_ratios=[2, 2]), image),
    Arch("clip_vision", "vision", "CLIPVisionModel",
         _cfg("CLIPVisionConfig", image_size=IMAGE, patch_size=8, hidden_size=HIDDEN, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=128), image, output="pooler_output"),
    # speech
    Arch("wav2vec2", "speech", "Wav2Vec2Model", _cfg("Wav2Vec2Config", **_WAV2VEC), waveform),
    Arch("hubert", "speech", "HubertModel",
         _cfg("HubertConfig", **{**_WAV2VEC, "feat_extract_norm": "group", "do_stable_layer_norm": False}),
         waveform),
    Arch("whisper_encoder", "speech", "WhisperModel",
         _cfg("WhisperConfig", vocab_size=VOCAB, num_mel_bins=16, d_model=HIDDEN, encoder_layers=2,
              encoder_attention_heads=4, decoder_layers=1, decoder_attention_heads=4, encoder_ffn_dim=128,
              decoder_ffn_dim=128, max_source_positions=16, max_target_positions=16, pad_token_id=0,
              bos_token_id=1, eos_token_id=2, decoder_start_token_id=1), mel, part="encoder"),
)

BY_NAME: dict[str, Arch] = {a.name: a for a in ARCHS}
