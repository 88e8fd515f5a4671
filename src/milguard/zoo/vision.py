"""Vision blocks: a SAM image-encoder neck, a ConvNeXt block with the next downsampling layer, a ViT block."""
from __future__ import annotations

import torch
from torch import nn

from .layers import LayerNorm, LayerNorm2d, softmax_last


class SamNeck(nn.Module):
    """segment-anything ``ImageEncoderViT.neck``: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d."""

    def __init__(self, g: torch.Generator, embed_dim: int = 128, out_chans: int = 64):
        super().__init__()
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans, g),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans, g),
        )

    def forward(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return self.neck(image_embeddings)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block, all in NCHW: dwconv 7x7, channels_first LayerNorm, 1x1 conv, GELU, 1x1 conv,
    layer scale, residual; then the next stage's downsampling layer (LayerNorm2d + 2x2 stride-2 conv)."""

    def __init__(self, g: torch.Generator, dim: int = 96, out_dim: int = 192):   # ConvNeXt-T stage 1
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, g)
        self.pwconv1 = nn.Conv2d(dim, 4 * dim, kernel_size=1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(4 * dim, dim, kernel_size=1)
        self.gamma = nn.Parameter(0.5 * torch.rand(dim, generator=g) + 0.05)
        self.downsample_norm = LayerNorm2d(dim, g)
        self.downsample = nn.Conv2d(dim, out_dim, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        x = shortcut + self.gamma[:, None, None] * x
        return self.downsample(self.downsample_norm(x))


class ViTAttention(nn.Module):
    """q @ k^T * scale followed by a hand-written softmax exp(x - max) / sum."""

    def __init__(self, dim: int, heads: int, tokens: int):
        super().__init__()
        self.heads, self.head_dim, self.tokens = heads, dim // heads, tokens
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x).reshape(1, self.tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = softmax_last((q @ k.transpose(-2, -1)) * self.scale)
        return self.proj((attn @ v).transpose(1, 2).reshape(1, self.tokens, -1))


class ViTBlock(nn.Module):
    """Pre-norm ViT block (timm ``Block`` layout) with hand-written LayerNorms, then the final norm."""

    def __init__(self, g: torch.Generator, dim: int = 128, heads: int = 4, tokens: int = 17):
        super().__init__()
        self.norm1 = LayerNorm(dim, g, eps=1e-6)
        self.attn = ViTAttention(dim, heads, tokens)
        self.norm2 = LayerNorm(dim, g, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.norm = LayerNorm(dim, g, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))
        return self.norm(x)
