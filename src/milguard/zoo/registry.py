"""The zoo's registry: one ``ZooEntry`` per model, and ``convert`` (trace + ct.convert)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from . import minilm
from .magnitudes import SCENARIOS, Scenario
from .planting import plant
from .text import GemmaDecoderLayer, LlamaDecoderLayer, T5EncoderLayer
from .vision import ConvNeXtBlock, SamNeck, ViTBlock


SIZES = ("small", "realistic")


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model in two sizes: "small" (fast tests) and "realistic" (widths where the default fp16
    conversion is expected on the Neural Engine, for placement and cost measurements: hidden >= 512
    and sequence >= 64 for the text blocks, ConvNeXt-T's stage 1 at 56x56, SAM's neck at 256
    channels). ``realistic`` holds the constructor keyword arguments and the input shapes of that size."""

    name: str
    description: str
    make: Callable[..., nn.Module] = field(repr=False)
    input_shapes: tuple[tuple[int, ...], ...]
    input_names: tuple[str, ...]
    scenario: Scenario
    patterns: tuple[str, ...]                   # pattern kinds the converted program must contain
    output_names: tuple[str, ...] = ("output",)
    real_inputs: Callable[[int], tuple[torch.Tensor, ...]] | None = field(default=None, repr=False)
    realistic: tuple[dict[str, Any], tuple[tuple[int, ...], ...]] | None = None

    def shapes(self, size: str = "small") -> tuple[tuple[int, ...], ...]:
        _check(size)
        return self.realistic[1] if size == "realistic" and self.realistic else self.input_shapes

    def build(self, seed: int = 0, size: str = "small") -> nn.Module:
        """The model in eval mode with deterministic weights for ``seed``."""
        _check(size)
        kwargs = self.realistic[0] if size == "realistic" and self.realistic else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.make(seed, **kwargs).float().eval()

    def example_inputs(self, seed: int = 0, size: str = "small") -> tuple[torch.Tensor, ...]:
        """Ordinary inputs: N(0, 1) residual streams / feature maps, or real sentences for MiniLM."""
        if self.real_inputs is not None:
            return self.real_inputs(seed)
        g = torch.Generator().manual_seed(10_000 + seed)
        return tuple(torch.randn(shape, generator=g) for shape in self.shapes(size))

    def planted_inputs(self, seed: int = 0, size: str = "small") -> tuple[torch.Tensor, ...]:
        """``example_inputs`` with ``scenario`` planted (its magnitude reached at ``scenario.where``)."""
        return plant(self.build(seed, size), self.example_inputs(seed, size), self.scenario)

    @property
    def source(self) -> str:
        return self.scenario.source


def _check(size: str) -> None:
    if size not in SIZES:
        from ..errors import MilguardError
        raise MilguardError(f"unknown zoo size '{size}' (expected one of {', '.join(SIZES)})")


def _seeded(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    return lambda seed, **kwargs: cls(torch.Generator().manual_seed(seed), **kwargs)


def _minilm_inputs(seed: int) -> tuple[torch.Tensor, ...]:
    ids = minilm.tokenize(minilm.SENTENCES[seed % len(minilm.SENTENCES)], max_len=minilm.SEQ)
    return (minilm.embed(ids),)


_ENTRIES = (
    ZooEntry("llama_decoder",
             "LLaMA decoder layer (hidden 128, 4 heads, 2 KV heads, RoPE, SiLU MLP) + final RMSNorm",
             _seeded(LlamaDecoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["llama2_massive_activations"], ("rms_norm", "softmax"),
             realistic=(dict(hidden=512, heads=8, kv_heads=4, intermediate=1376, seq=64), ((1, 64, 512),))),
    ZooEntry("t5_encoder", "T5 encoder layer (d_model 128, 4 heads, ReLU FFN 256, T5LayerNorm) + final norm",
             _seeded(T5EncoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["t5_v11_residual"], ("rms_norm", "softmax"),
             realistic=(dict(d_model=512, heads=8, d_ff=1024, seq=64), ((1, 64, 512),))),
    ZooEntry("gemma_decoder",
             "Gemma2/3 sandwich decoder layer with (1 + w) RMSNorms (hidden 128, MQA, GeGLU)",
             _seeded(GemmaDecoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["gemma3_residual_peak"], ("rms_norm", "softmax"),
             realistic=(dict(hidden=512, heads=8, kv_heads=1, intermediate=1376, seq=64), ((1, 64, 512),))),
    ZooEntry("sam_neck",
             "SAM image-encoder neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d (128 -> 64 ch, 16x16)",
             _seeded(SamNeck), ((1, 128, 16, 16),), ("image_embeddings",),
             SCENARIOS["vit_output_high_norm"], ("layer_norm",),
             realistic=(dict(embed_dim=256, out_chans=256), ((1, 256, 32, 32),))),
    ZooEntry("convnext_block", "ConvNeXt-T stage-1 block (96 ch, 16x16, channels_first LayerNorm) + downsampling layer",
             _seeded(ConvNeXtBlock), ((1, 96, 16, 16),), ("features",),
             SCENARIOS["conv_features_into_channel_norm"], ("layer_norm",),
             realistic=({}, ((1, 96, 56, 56),))),
    ZooEntry("vit_block",
             "ViT block (128 dim, 17 tokens) with hand-written LayerNorm and softmax + final norm",
             _seeded(ViTBlock), ((1, 17, 128),), ("tokens",),
             SCENARIOS["vit_register_tokens"], ("layer_norm", "softmax"),
             realistic=(dict(dim=512, heads=8, tokens=65), ((1, 65, 512),))),
    ZooEntry("minilm", "all-MiniLM-L6-v2 encoder with its trained weights (6 layers, hidden 384, 16 tokens)",
             lambda seed, **_: minilm.build(), ((1, minilm.SEQ, minilm.HIDDEN),), ("embeddings",),
             SCENARIOS["minilm_real"], ("layer_norm", "softmax"), real_inputs=_minilm_inputs),
)

MODELS: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}

#: The bundled example for the README's main job: a LLaMA layer fed LLaMA2-7B-sized massive activations.
EXAMPLE = "llama_decoder"


def convert(entry: ZooEntry | str, inputs: tuple[torch.Tensor, ...] | None = None, *, seed: int = 0,
            input_types: list[Any] | None = None, size: str = "small", **ct_kwargs: Any) -> Any:
    """torch.jit.trace + ct.convert to an ML program (iOS17, skip_model_load) -> ct.models.MLModel.

    ``inputs`` are the torch tensors to trace with (default ``example_inputs(seed)``); ``input_types``
    replaces the default ``ct.TensorType(name=..., shape=...)`` list given to ct.convert (to set a
    dtype, say). ``ct_kwargs`` override the other defaults (``compute_precision``, ``pass_pipeline``, ...).
    """
    import coremltools as ct

    entry = MODELS[entry] if isinstance(entry, str) else entry
    inputs = tuple(inputs) if inputs is not None else entry.example_inputs(seed, size)
    model = entry.build(seed, size)
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs)
    default_types = [ct.TensorType(name=n, shape=tuple(t.shape)) for n, t in zip(entry.input_names, inputs)]
    kwargs: dict[str, Any] = dict(
        convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
        inputs=input_types or default_types,
        outputs=[ct.TensorType(name=n) for n in entry.output_names])
    kwargs.update(ct_kwargs)
    return ct.convert(traced, **kwargs)
