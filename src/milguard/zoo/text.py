"""Text blocks: a LLaMA decoder layer, a Gemma decoder layer, a T5 encoder layer (small sizes).

Each block ends with its model's final norm (LLaMA ``model.norm``, Gemma ``model.norm``, T5
``final_layer_norm``), so the output is a normalised hidden state: an error in a norm shows in the
output instead of hiding under a residual stream that is 1e3-1e4 times larger.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import GemmaRMSNorm, GroupedQueryAttention, LlamaRMSNorm, T5LayerNorm


class LlamaMLP(nn.Module):
    """SiLU-gated MLP: down(act(gate(x)) * up(x)) with act = silu."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    @staticmethod
    def act(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, g: torch.Generator, hidden: int = 128, heads: int = 4, kv_heads: int = 2,
                 intermediate: int = 352, seq: int = 16):
        super().__init__()
        self.input_layernorm = LlamaRMSNorm(hidden, g)
        self.self_attn = GroupedQueryAttention(hidden, heads, kv_heads, hidden // heads, seq)
        self.post_attention_layernorm = LlamaRMSNorm(hidden, g)
        self.mlp = LlamaMLP(hidden, intermediate)
        self.norm = LlamaRMSNorm(hidden, g)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = residual + self.self_attn(self.input_layernorm(hidden_states))
        residual = hidden_states
        hidden_states = residual + self.mlp(self.post_attention_layernorm(hidden_states))
        return self.norm(hidden_states)


class GemmaMLP(LlamaMLP):
    """GeGLU MLP: the same gated MLP with tanh-approximated GELU, as Gemma's ``gelu_pytorch_tanh``."""

    @staticmethod
    def act(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x, approximate="tanh")


class GemmaDecoderLayer(nn.Module):
    """Gemma2/3 sandwich layer: pre- and post-norms around attention and around the MLP, (1 + w) RMSNorm."""

    def __init__(self, g: torch.Generator, hidden: int = 128, heads: int = 4, kv_heads: int = 1,
                 intermediate: int = 256, seq: int = 16):
        super().__init__()
        self.input_layernorm = GemmaRMSNorm(hidden, g)
        self.self_attn = GroupedQueryAttention(hidden, heads, kv_heads, hidden // heads, seq)
        self.post_attention_layernorm = GemmaRMSNorm(hidden, g)
        self.pre_feedforward_layernorm = GemmaRMSNorm(hidden, g)
        self.mlp = GemmaMLP(hidden, intermediate)
        self.post_feedforward_layernorm = GemmaRMSNorm(hidden, g)
        self.norm = GemmaRMSNorm(hidden, g)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        attn = self.self_attn(self.input_layernorm(hidden_states))
        hidden_states = residual + self.post_attention_layernorm(attn)
        residual = hidden_states
        mlp = self.mlp(self.pre_feedforward_layernorm(hidden_states))
        hidden_states = residual + self.post_feedforward_layernorm(mlp)
        return self.norm(hidden_states)


class T5Attention(nn.Module):
    """T5 self-attention without relative position buckets: no 1/sqrt(d) scaling, fp32 softmax."""

    def __init__(self, d_model: int, heads: int, d_kv: int, seq: int):
        super().__init__()
        self.heads, self.d_kv, self.seq = heads, d_kv, seq
        self.q = nn.Linear(d_model, heads * d_kv, bias=False)
        self.k = nn.Linear(d_model, heads * d_kv, bias=False)
        self.v = nn.Linear(d_model, heads * d_kv, bias=False)
        self.o = nn.Linear(heads * d_kv, d_model, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        def shape(x: torch.Tensor) -> torch.Tensor:
            return x.view(1, self.seq, self.heads, self.d_kv).transpose(1, 2)

        q, k, v = shape(self.q(hidden_states)), shape(self.k(hidden_states)), shape(self.v(hidden_states))
        scores = torch.matmul(q, k.transpose(3, 2))
        attn_weights = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(attn_weights, v).transpose(1, 2).reshape(1, self.seq, -1)
        return self.o(out)


class T5DenseActDense(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(nn.functional.relu(self.wi(x)))


class T5EncoderLayer(nn.Module):
    def __init__(self, g: torch.Generator, d_model: int = 128, heads: int = 4, d_ff: int = 256,
                 seq: int = 16):
        super().__init__()
        self.attention_layer_norm = T5LayerNorm(d_model, g)
        self.attention = T5Attention(d_model, heads, d_model // heads, seq)
        self.ff_layer_norm = T5LayerNorm(d_model, g)
        self.ff = T5DenseActDense(d_model, d_ff)
        self.final_layer_norm = T5LayerNorm(d_model, g)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.attention(self.attention_layer_norm(hidden_states))
        hidden_states = hidden_states + self.ff(self.ff_layer_norm(hidden_states))
        return self.final_layer_norm(hidden_states)
