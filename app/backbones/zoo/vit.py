"""Small token-based zoo architectures for 32×32×3 input: a ViT and an MLP-Mixer (patch 4 → 64 tokens).

Both use no class token and average the final tokens (timm's ``global_pool='avg'``), so every block tap is
pooled the same way: the mean over tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from app.backbones.zoo.base import Stage, ZooModel, check_positive


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens ``(n, t, dim)``, plus a learned position embedding when asked."""

    def __init__(self, img_size: int, patch: int, in_chans: int, dim: int, pos_embed: bool) -> None:
        super().__init__()
        if img_size % patch:
            raise ValueError(f"img_size {img_size} is not a multiple of patch {patch}")
        self.img_size = img_size
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)
        num_tokens = (img_size // patch) ** 2
        self.pos = nn.Parameter(torch.zeros(1, num_tokens, dim)) if pos_embed else None
        if self.pos is not None:
            nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"expected {self.img_size}×{self.img_size} input, got {tuple(x.shape[-2:])}")
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens + self.pos if self.pos is not None else tokens


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class MixerBlock(nn.Module):
    def __init__(self, num_tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(num_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, num_tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class NormMeanPool(nn.Module):
    """Final LayerNorm, then the mean over tokens: the pre-logits vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x).mean(dim=1)


class VitTiny(ZooModel):
    """ViT with patch 4: taps ``patch_embed``, ``block1..depth`` (tokens) and ``pre_logits``."""

    arch = "vit_tiny"

    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 2.0, patch: int = 4, img_size: int = 32, in_chans: int = 3) -> None:
        check_positive(self.arch, dim=dim, depth=depth, heads=heads, patch=patch, img_size=img_size,
                       in_chans=in_chans)
        if dim % heads:
            raise ValueError(f"{self.arch}: dim {dim} must be divisible by heads {heads}")
        stages = [Stage("patch_embed", PatchEmbed(img_size, patch, in_chans, dim, pos_embed=True), dim, "tokens")]
        stages += [Stage(f"block{i}", Block(dim, heads, mlp_ratio), dim, "tokens") for i in range(1, depth + 1)]
        stages.append(Stage("pre_logits", NormMeanPool(dim), dim, "vector"))
        super().__init__(stages, num_classes)


class MixerTiny(ZooModel):
    """MLP-Mixer with patch 4: taps ``patch_embed``, ``block1..depth`` (tokens) and ``pre_logits``."""

    arch = "mixer_tiny"

    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 4, token_hidden: int = 32,
                 channel_hidden: int = 128, patch: int = 4, img_size: int = 32, in_chans: int = 3) -> None:
        check_positive(self.arch, dim=dim, depth=depth, token_hidden=token_hidden,
                       channel_hidden=channel_hidden, patch=patch, img_size=img_size, in_chans=in_chans)
        num_tokens = (img_size // patch) ** 2
        stages = [Stage("patch_embed", PatchEmbed(img_size, patch, in_chans, dim, pos_embed=False), dim, "tokens")]
        stages += [
            Stage(f"block{i}", MixerBlock(num_tokens, dim, token_hidden, channel_hidden), dim, "tokens")
            for i in range(1, depth + 1)
        ]
        stages.append(Stage("pre_logits", NormMeanPool(dim), dim, "vector"))
        super().__init__(stages, num_classes)
