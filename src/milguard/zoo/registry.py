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


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    make: Callable[[int], nn.Module] = field(repr=False)
    input_shapes: tuple[tuple[int, ...], ...]
    input_names: tuple[str, ...]
    scenario: Scenario
    patterns: tuple[str, ...]                   # pattern kinds the converted program must contain
    output_names: tuple[str, ...] = ("output",)
    real_inputs: Callable[[int], tuple[torch.Tensor, ...]] | None = field(default=None, repr=False)

    def build(self, seed: int = 0) -> nn.Module:
        """The model in eval mode with deterministic weights for ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.make(seed).float().eval()

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Ordinary inputs: N(0, 1) residual streams / feature maps, or real sentences for MiniLM."""
        if self.real_inputs is not None:
            return self.real_inputs(seed)
        g = torch.Generator().manual_seed(10_000 + seed)
        return tuple(torch.randn(shape, generator=g) for shape in self.input_shapes)

    def planted_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``example_inputs`` with ``scenario`` planted (its magnitude reached at ``scenario.where``)."""
        return plant(self.build(seed), self.example_inputs(seed), self.scenario)

    @property
    def source(self) -> str:
        return self.scenario.source


def _seeded(cls: type[nn.Module]) -> Callable[[int], nn.Module]:
    return lambda seed: cls(torch.Generator().manual_seed(seed))


def _minilm_inputs(seed: int) -> tuple[torch.Tensor, ...]:
    ids = minilm.tokenize(minilm.SENTENCES[seed % len(minilm.SENTENCES)], max_len=minilm.SEQ)
    return (minilm.embed(ids),)


_ENTRIES = (
    ZooEntry("llama_decoder",
             "LLaMA decoder layer (hidden 128, 4 heads, 2 KV heads, RoPE, SiLU MLP) + final RMSNorm",
             _seeded(LlamaDecoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["llama2_massive_activations"], ("rms_norm", "softmax")),
    ZooEntry("t5_encoder", "T5 encoder layer (d_model 128, 4 heads, ReLU FFN 256, T5LayerNorm) + final norm",
             _seeded(T5EncoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["t5_v11_residual"], ("rms_norm", "softmax")),
    ZooEntry("gemma_decoder",
             "Gemma2/3 sandwich decoder layer with (1 + w) RMSNorms (hidden 128, MQA, GeGLU)",
             _seeded(GemmaDecoderLayer), ((1, 16, 128),), ("hidden_states",),
             SCENARIOS["gemma3_residual_peak"], ("rms_norm", "softmax")),
    ZooEntry("sam_neck",
             "SAM image-encoder neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d (128 -> 64 ch, 16x16)",
             _seeded(SamNeck), ((1, 128, 16, 16),), ("image_embeddings",),
             SCENARIOS["vit_output_high_norm"], ("layer_norm",)),
    ZooEntry("convnext_block", "ConvNeXt-T stage-1 block (96 ch, 16x16, channels_first LayerNorm) + downsampling layer",
             _seeded(ConvNeXtBlock), ((1, 96, 16, 16),), ("features",),
             SCENARIOS["conv_features_into_channel_norm"], ("layer_norm",)),
    ZooEntry("vit_block",
             "ViT block (128 dim, 17 tokens) with hand-written LayerNorm and softmax + final norm",
             _seeded(ViTBlock), ((1, 17, 128),), ("tokens",),
             SCENARIOS["vit_register_tokens"], ("layer_norm", "softmax")),
    ZooEntry("minilm", "all-MiniLM-L6-v2 encoder with its trained weights (6 layers, hidden 384, 16 tokens)",
             lambda seed: minilm.build(), ((1, minilm.SEQ, minilm.HIDDEN),), ("embeddings",),
             SCENARIOS["minilm_real"], ("layer_norm", "softmax"), real_inputs=_minilm_inputs),
)

MODELS: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}

#: The bundled example for the README's main job: a LLaMA layer fed LLaMA2-7B-sized massive activations.
EXAMPLE = "llama_decoder"


def convert(entry: ZooEntry | str, inputs: tuple[torch.Tensor, ...] | None = None, *, seed: int = 0,
            input_types: list[Any] | None = None, **ct_kwargs: Any) -> Any:
    """torch.jit.trace + ct.convert to an ML program (iOS17, skip_model_load) -> ct.models.MLModel.

    ``inputs`` are the torch tensors to trace with (default ``example_inputs(seed)``); ``input_types``
    replaces the default ``ct.TensorType(name=..., shape=...)`` list given to ct.convert (to set a
    dtype, say). ``ct_kwargs`` override the other defaults (``compute_precision``, ``pass_pipeline``, ...).
    """
    import coremltools as ct

    entry = MODELS[entry] if isinstance(entry, str) else entry
    inputs = tuple(inputs) if inputs is not None else entry.example_inputs(seed)
    model = entry.build(seed)
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs)
    default_types = [ct.TensorType(name=n, shape=tuple(t.shape)) for n, t in zip(entry.input_names, inputs)]
    kwargs: dict[str, Any] = dict(
        convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
        inputs=input_types or default_types,
        outputs=[ct.TensorType(name=n) for n in entry.output_names])
    kwargs.update(ct_kwargs)
    return ct.convert(traced, **kwargs)
