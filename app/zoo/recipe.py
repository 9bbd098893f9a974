"""The zoo's training recipe: plain supervised training, reproducible bit for bit on one CPU kind.

Why each knob: ``torch.use_deterministic_algorithms(True)`` refuses kernels without a deterministic
implementation; a fixed thread count (1 by default) fixes the order of floating-point reductions inside
oneDNN / MKL kernels, which is what makes repeated runs bitwise identical; the model is initialised from
``torch.manual_seed(seed)`` and the batch order comes from its own ``torch.Generator`` seeded with ``seed``,
so nothing depends on global state a caller may have touched. Different CPU instruction sets (AVX2 vs
AVX-512) or another torch version may pick other kernels: digests are promised for the same machine kind
and torch version, which the cards record.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from app.backbones.preprocess import pool
from app.backbones.zoo import ZooModel


@dataclass(frozen=True)
class Recipe:
    """AdamW with a linear warm-up (one epoch) into a cosine decay; cross-entropy on the source labels."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"recipe needs epochs >= 0, batch_size >= 1 and threads >= 1, got {self}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"recipe needs lr > 0, weight_decay >= 0, label_smoothing in [0, 1), got {self}")

    def to_dict(self) -> dict:
        return {**asdict(self), "optimizer": "adamw", "schedule": "linear warm-up 1 epoch, cosine to 0",
                "loss": "cross-entropy", "augmentation": "none"}


@contextlib.contextmanager
def deterministic(threads: int = 1) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count for the duration; the previous state is restored."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int) -> list[float]:
    """Train ``model`` in place on ``(x, y)``; returns the mean loss of every epoch."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs (> 0), got {len(x)} inputs and {len(y)} labels")
    if recipe.epochs == 0:
        return []
    gen = torch.Generator().manual_seed(int(seed))
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    losses: list[float] = []
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        running = 0.0
        for start in range(0, len(x), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
        losses.append(running / len(x))
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def pooled_features(model: ZooModel, x: torch.Tensor, layers: Sequence[str] | None = None,
                    batch_size: int = 256) -> dict[str, np.ndarray]:
    """``{layer: (n, dim) float32}`` pooled the way the zoo adapter pools them (``app.backbones.preprocess``)."""
    model.eval()
    specs = {t.name: t for t in model.layer_specs()}
    names = list(layers) if layers is not None else list(specs)
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i in range(0, len(x), batch_size):
        raw = model.forward_taps(x[i:i + batch_size], names)
        for n in names:
            chunks[n].append(pool(raw[n], specs[n].kind).float())
    return {n: torch.cat(v).numpy() for n, v in chunks.items()}
