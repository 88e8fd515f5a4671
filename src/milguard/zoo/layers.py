"""Norms, rotary embeddings and attention written the way widely used libraries write them.

Every norm is spelled out op by op (never ``nn.LayerNorm``/``F.rms_norm``), so tracing gives the
decomposed MIL subgraphs milguard protects:

- ``LlamaRMSNorm``   y = w * (x * rsqrt(mean(x^2) + eps))           (transformers LlamaRMSNorm)
- ``T5LayerNorm``    the same RMS form, no mean subtraction, no bias  (transformers T5LayerNorm)
- ``GemmaRMSNorm``   y = x * rsqrt(mean(x^2) + eps) * (1 + w)        (transformers GemmaRMSNorm)
- ``LayerNorm2d``    channel-axis LayerNorm with sqrt + division      (SAM / ConvNeXt channels_first)
- ``LayerNorm``      last-axis LayerNorm with sqrt + division         (pytorch-pretrained-BERT style)

fp16 hazard shared by all of them: the square overflows once |x| > 255.9 (sqrt(65504)), so the
mean of squares becomes inf and rsqrt/sqrt turns the whole token (or pixel) to 0 or NaN.
"""
from __future__ import annotations

import torch
from torch import nn


def _affine_init(n: int, generator: torch.Generator, centre: float = 1.0,
                 spread: float = 0.1) -> torch.Tensor:
    """Trained-looking norm weights: centre + spread * N(0, 1), so gamma's exactness matters."""
    return centre + spread * torch.randn(n, generator=generator)


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden: int, generator: torch.Generator, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(_affine_init(hidden, generator))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class T5LayerNorm(nn.Module):
    def __init__(self, hidden: int, generator: torch.Generator, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(_affine_init(hidden, generator))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


class GemmaRMSNorm(nn.Module):
    def __init__(self, hidden: int, generator: torch.Generator, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(_affine_init(hidden, generator, centre=0.0))  # stored as w, used as 1 + w
        self.eps = eps

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self._norm(x.float())
        output = output * (1.0 + self.weight.float())
        return output.type_as(x)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of NCHW maps (SAM ``LayerNorm2d``, ConvNeXt channels_first)."""

    def __init__(self, channels: int, generator: torch.Generator, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(_affine_init(channels, generator))
        self.bias = nn.Parameter(_affine_init(channels, generator, centre=0.0))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class LayerNorm(nn.Module):
    """Last-axis LayerNorm written out (the original pytorch-pretrained-BERT ``BertLayerNorm``)."""

    def __init__(self, hidden: int, generator: torch.Generator | None = None, eps: float = 1e-12):
        super().__init__()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(_affine_init(hidden, g))
        self.bias = nn.Parameter(_affine_init(hidden, g, centre=0.0))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.variance_epsilon)
        return self.weight * x + self.bias


def rotary_tables(seq: int, dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed RoPE cos/sin of shape (seq, dim), as transformers' LlamaRotaryEmbedding returns them."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(b, kv_heads, s, d) -> (b, kv_heads * n_rep, s, d), transformers' grouped-query expansion."""
    if n_rep == 1:
        return hidden_states
    b, kv, s, d = hidden_states.shape
    hidden_states = hidden_states[:, :, None, :, :].expand(b, kv, n_rep, s, d)
    return hidden_states.reshape(b, kv * n_rep, s, d)


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Hand-written softmax over the last axis: exp(x - max) / sum (fp16-safe only if x is finite)."""
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


class GroupedQueryAttention(nn.Module):
    """LLaMA/Gemma eager attention: RoPE on q and k, grouped-query heads, causal mask, fp32 softmax."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, seq: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.seq = heads, kv_heads, head_dim, seq
        self.scaling = head_dim ** -0.5
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        cos, sin = rotary_tables(seq, head_dim)
        self.register_buffer("cos", cos[None, None], persistent=False)
        self.register_buffer("sin", sin[None, None], persistent=False)
        mask = torch.full((seq, seq), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("causal_mask", mask[None, None], persistent=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = (1, self.seq, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        q = q * self.cos + rotate_half(q) * self.sin
        k = k * self.cos + rotate_half(k) * self.sin
        k = repeat_kv(k, self.heads // self.kv_heads)
        v = repeat_kv(v, self.heads // self.kv_heads)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scaling + self.causal_mask
        probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(1, self.seq, -1)
        return self.o_proj(out)
