"""Sample preprocessing and per-layer pooling, shared by every adapter family.

:class:`ImageTransform` is a plain picklable object (DataLoader workers receive it); it resizes, centre-
crops, scales to ``[0, 1]`` and normalises, giving a ``(c, h, w)`` float32 tensor. It works in two halves,
also usable apart: :meth:`ImageTransform.pixels` (PIL: mode, resize, crop → raw uint8 bytes) per image and
:meth:`ImageTransform.batch` (uint8 → normalised float32, one vectorised pass) per batch, which is how the
embedding pipeline uses it; ``transform(image)`` is ``batch([pixels(image)])[0]``, so both give the same
bits. :func:`pool` reduces a raw tap to ``(n, d)``: global average for conv maps, CLS or (masked) mean for
token sequences.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from app.backbones.base import Preprocessing

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def preprocess_digest(pre: Preprocessing) -> str:
    """sha256 of the preprocessing, canonical JSON (part of an embedding cache key)."""
    return hashlib.sha256(json.dumps(asdict(pre), sort_keys=True, default=list).encode()).hexdigest()


class ImageTransform:
    """PIL RGB image → normalised float32 tensor ``(c, h, w)`` per :class:`Preprocessing`."""

    def __init__(self, pre: Preprocessing) -> None:
        if pre.input_size is None or len(pre.input_size) != 3:
            raise ValueError(f"image preprocessing needs input_size (c, h, w), got {pre.input_size!r}")
        if pre.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {pre.interpolation!r}")
        if not 0 < pre.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {pre.crop_pct!r}")
        self.channels, self.height, self.width = (int(v) for v in pre.input_size)
        self.interpolation = pre.interpolation
        self.crop_pct = float(pre.crop_pct)
        mean = pre.mean or (0.0,) * self.channels
        std = pre.std or (1.0,) * self.channels
        if len(mean) != self.channels or len(std) != self.channels or any(s <= 0 for s in std):
            raise ValueError(f"mean/std must have {self.channels} entries (std > 0), got {mean!r} / {std!r}")
        # x = (pixel / 255 - mean) / std  ==  pixel * scale + shift
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(-1, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32).view(-1, 1, 1)
        self._scale = list(self.scale.flatten().numpy())  # the same float32 values, as numpy scalars
        self._shift = list(self.shift.flatten().numpy())

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise TypeError(f"image transform expects a PIL image, got {type(image).__name__}")
        return self.batch([self.pixels(image)])[0]

    @property
    def mode(self) -> str:
        """The PIL mode the pixels are taken in: ``L`` for one channel, else ``RGB``."""
        return "L" if self.channels == 1 else "RGB"

    def pixels(self, image: Any) -> bytes:
        """The integer half: ``image`` (PIL) in :attr:`mode`, resized and centre-cropped, as raw uint8
        ``(h, w, c)`` bytes, row-major (what :meth:`batch` takes)."""
        from PIL import Image

        if image.mode != self.mode:
            image = image.convert(self.mode)
        return self._resize_crop(image, Image).tobytes()

    def batch(self, pixels: Sequence[Any]) -> torch.Tensor:
        """The float half, once for a batch: ``n`` raw uint8 ``(h, w, c)`` buffers (:meth:`pixels`; bytes or
        any C-contiguous buffer) → normalised float32 ``(n, c, h, w)``, contiguous.

        Every element goes through the same two float32 roundings as the per-image transform always did
        (``pixel * scale``, then ``+ shift``), so the batch equals the stacked per-image tensors bit for bit. In
        numpy, which runs it on the calling thread alone: the embedding pipeline builds batches in its
        prefetching thread, next to the forward pass, where a torch op would start a second team of intra-op
        threads competing with the forward's.
        """
        c, h, w = self.channels, self.height, self.width
        n = len(pixels)
        joined = bytearray().join(pixels)
        if len(joined) != n * h * w * c:
            raise ValueError(f"pixels must be {n} buffers of {h}×{w}×{c} bytes, got {len(joined)} bytes in all")
        out = np.empty((n, c, h, w), dtype=np.float32)
        out[...] = np.frombuffer(joined, dtype=np.uint8).reshape(n, h, w, c).transpose(0, 3, 1, 2)
        for k in range(c):  # per channel plane, with float32 scalars: float32 arithmetic, as torch's
            plane = out[:, k]
            np.multiply(plane, self._scale[k], out=plane)
            np.add(plane, self._shift[k], out=plane)
        return torch.from_numpy(out)

    def _resize_crop(self, image: Any, image_module: Any) -> Any:
        w, h = image.size
        if (w, h) == (self.width, self.height) and self.crop_pct == 1.0:
            return image
        resample = getattr(image_module.Resampling, self.interpolation.upper())
        # resize the short side to size / crop_pct, then centre-crop to size (timm's eval transform)
        target_h = math.floor(self.height / self.crop_pct)
        target_w = math.floor(self.width / self.crop_pct)
        ratio = max(target_h / h, target_w / w)
        new_w, new_h = max(self.width, round(w * ratio)), max(self.height, round(h * ratio))
        image = image.resize((new_w, new_h), resample)
        left, top = (new_w - self.width) // 2, (new_h - self.height) // 2
        return image.crop((left, top, left + self.width, top + self.height))


def identity(sample: Any) -> Any:
    """The transform of text backbones: the tokenizer runs in ``collate`` on the whole batch."""
    return sample


def pool(x: torch.Tensor, kind: str, *, pooling: str = "mean", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a raw tap to ``(n, d)``.

    conv ``(n, c, h, w)`` → global average; tokens ``(n, t, d)`` → ``cls`` (token 0) or mean over the tokens
    where ``mask`` is 1; vector ``(n, d)`` → itself. A 4-D tensor tapped from a ``tokens`` layer (e.g. a
    channels-last map) is flattened to tokens first.
    """
    if kind == "vector":
        if x.ndim != 2:
            raise ValueError(f"vector tap must be (n, d), got shape {tuple(x.shape)}")
        return x
    if kind == "conv":
        if x.ndim == 4:
            return x.mean(dim=(2, 3))
        if x.ndim == 3:  # (n, t, d) maps from token models registered as conv: average the tokens
            return x.mean(dim=1)
        raise ValueError(f"conv tap must be (n, c, h, w), got shape {tuple(x.shape)}")
    if kind == "tokens":
        if x.ndim == 4:
            x = x.flatten(1, 2)
        if x.ndim != 3:
            raise ValueError(f"token tap must be (n, t, d), got shape {tuple(x.shape)}")
        if pooling == "cls":
            return x[:, 0]
        if pooling != "mean":
            raise ValueError(f"token pooling must be 'mean' or 'cls', got {pooling!r}")
        if mask is None:
            return x.mean(dim=1)
        m = mask.to(x.dtype).unsqueeze(-1)
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
    raise ValueError(f"unknown layer kind {kind!r}; expected conv, tokens or vector")


class Pool(torch.nn.Module):
    """:func:`pool` as a module (the last piece of a trunk)."""

    def __init__(self, kind: str, pooling: str = "mean") -> None:
        super().__init__()
        self.kind = kind
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool(x, self.kind, pooling=self.pooling)
