"""Rendering primitives for the procedural image domains: 32×32 RGB, uint8, ``(n, 32, 32, 3)``.

Everything is drawn from a caller-owned ``numpy.random.Generator``, so a domain is a pure function of its
seed. Shapes are rendered at 2× and box-filtered down (anti-aliased edges without any library).
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 32
_SUPER = 2
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def grid(scale: int = _SUPER) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(y, x)`` in image units (0 … 32) at ``scale``× resolution."""
    n = SIZE * scale
    c = (np.arange(n, dtype=np.float64) + 0.5) / scale
    return np.meshgrid(c, c, indexing="ij")


def downsample(mask: np.ndarray, scale: int = _SUPER) -> np.ndarray:
    """Box-filter a ``(32·s, 32·s)`` map to ``(32, 32)``."""
    return mask.reshape(SIZE, scale, SIZE, scale).mean(axis=(1, 3))


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=3)


def contrasting_pair(rng: np.random.Generator, min_gap: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours whose luminances differ by at least ``min_gap``."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        fg, bg = random_colour(rng), random_colour(rng)
        if abs(float(weights @ fg) - float(weights @ bg)) >= min_gap:
            return fg, bg


def compose(coverage: np.ndarray, fg: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Alpha-blend a colour over a background: ``coverage (32, 32)`` in [0, 1], ``background (32, 32, 3)``."""
    a = coverage[..., None]
    return a * fg[None, None, :] + (1.0 - a) * background


def plain(colour: np.ndarray) -> np.ndarray:
    return np.broadcast_to(colour, (SIZE, SIZE, 3)).astype(np.float64)


def smooth_noise(rng: np.random.Generator, alpha: float, channels: int = 3) -> np.ndarray:
    """Noise with a ``1 / f^alpha`` amplitude spectrum, scaled to [0, 1] per image: ``(32, 32, channels)``."""
    fy = np.fft.fftfreq(SIZE)[:, None]
    fx = np.fft.rfftfreq(SIZE)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    amp = f ** (-alpha)
    amp[0, 0] = 0.0
    out = np.empty((SIZE, SIZE, channels))
    for c in range(channels):
        spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
        field = np.fft.irfft2(spec, s=(SIZE, SIZE))
        lo, hi = field.min(), field.max()
        out[..., c] = (field - lo) / (hi - lo) if hi > lo else 0.5
    return out


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(n, 32, 32, 3)`` → float32 ``(n, 3, 32, 32)`` normalised exactly as the zoo cards'
    preprocessing does (``ImageTransform``: ``pixel / 255`` then ``(x - 0.5) / 0.5``)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"images must be uint8 (n, {SIZE}, {SIZE}, 3), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
    scale = torch.tensor([1.0 / (255.0 * s) for s in STD]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(MEAN, STD, strict=True)]).view(1, 3, 1, 1)
    return x * scale + shift
