"""Tiny backbones and synthetic targets for the probe tests (no downloads, CPU, seconds).

``MlpAdapter`` implements the ``BackboneAdapter`` contract over a 2-layer MLP on vectors; ``ConvAdapter``
over a 2-layer conv net on 8×8 single-channel images. "Pretrained" weights are whatever state dict the test
hands in — trained in the test on a source task, or built to be adversarial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from app.backbones.base import BackboneSpec, LayerSpec, Preprocessing


class _Cut(nn.Module):
    """The trunk: the first ``depth`` blocks, pooled to (n, dim)."""

    def __init__(self, blocks: nn.ModuleList, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(list(blocks)[:depth])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3)) if x.ndim == 4 else x


class _TinyAdapter:
    arch = "tiny"
    layer_names: tuple[str, ...] = ()

    def __init__(self, name: str, state: dict[str, torch.Tensor] | None = None, *,
                 pretrained_like_scratch: bool = False, family: str = "zoo") -> None:
        self.state = state
        self.pretrained_like_scratch = pretrained_like_scratch
        self.trunk_calls: list[tuple[str, bool, int]] = []
        self.spec = BackboneSpec(
            id=f"{family}:{self.arch}.{name}", family=family, modality="image",
            preprocessing=Preprocessing(), extra={"arch": self.arch},
            layers=tuple(LayerSpec(n, self.dims[i], "vector", (i + 1) / len(self.layer_names))
                         for i, n in enumerate(self.layer_names)))

    # -- contract ----------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return list(self.layer_names)

    @property
    def transform(self):
        return lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        return torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in samples])

    def to(self, device):
        return self

    def embed(self, batch, layers):
        return {ly: self.trunk(ly).eval()(batch).detach() for ly in layers}

    @property
    def has_source_head(self) -> bool:
        return False

    def source_logits(self, batch):
        raise ValueError(f"{self.spec.id} has no source head")

    def trunk(self, layer: str, *, pretrained: bool = True, seed: int = 0) -> nn.Module:
        self.trunk_calls.append((layer, pretrained, seed))
        depth = self.layer_names.index(layer) + 1
        use_scratch = not pretrained or self.state is None or self.pretrained_like_scratch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed if use_scratch else 0)
            blocks = self.build()
        if not use_scratch:
            blocks.load_state_dict(self.state)
        return _Cut(blocks, depth)

    def build(self) -> nn.ModuleList:
        raise NotImplementedError  # each tiny architecture below defines its blocks


class MlpAdapter(_TinyAdapter):
    arch = "mlp_tiny"
    layer_names = ("fc1", "fc2")
    in_dim, dims = 8, (32, 32)

    def build(self) -> nn.ModuleList:
        return nn.ModuleList([nn.Sequential(nn.Linear(self.in_dim, 32), nn.ReLU()),
                              nn.Sequential(nn.Linear(32, 32), nn.ReLU())])


class ConvAdapter(_TinyAdapter):
    arch = "conv_tiny"
    layer_names = ("conv1", "conv2")
    dims = (8, 16)

    def build(self) -> nn.ModuleList:
        return nn.ModuleList([nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                              nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())])


# -- synthetic tasks --------------------------------------------------------------------------------
def xor_task(n: int, seed: int, *, in_dim: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    """4 classes from the signs of two products (x0·x1, x2·x3): non-linear, hard from few samples."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, in_dim)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] * x[:, 3] > 0).astype(np.int64)
    return torch.from_numpy(x), y


def pretrain(adapter_cls: type[_TinyAdapter], x: torch.Tensor, y: np.ndarray, *, steps: int = 600,
             lr: float = 3e-3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Train the full network plus a throwaway head on a source task; return the blocks' state."""
    torch.manual_seed(seed)
    probe = adapter_cls("tmp")
    blocks = probe.build()
    head = nn.Linear(probe.dims[-1], int(y.max()) + 1)
    net = nn.Sequential(_Cut(blocks, len(blocks)), head)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    yt = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in blocks.state_dict().items()}


def dead_relu_state(adapter_cls: type[_TinyAdapter]) -> dict[str, torch.Tensor]:
    """Adversarial "pretrained" weights: every first-layer unit is switched off (large negative bias), so
    the features carry nothing and no gradient flows back through them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        blocks = adapter_cls("tmp").build()
    state = blocks.state_dict()
    state["0.0.bias"] = torch.full_like(state["0.0.bias"], -50.0)
    return state
