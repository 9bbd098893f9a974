"""The image domains of the zoo and of the transfer benchmark: real handwritten digits and procedural ones.

Every generator is ``fn(n, rng, **params) -> (images uint8 (n, 32, 32, 3), labels int64 (n,))`` with
balanced classes in a shuffled order; every random choice comes from ``rng``. :data:`DOMAINS` names them.

Digits are scikit-learn's 1,797 handwritten 8×8 digits (they ship inside the package), bilinearly
upscaled to 32×32. They are split once, by a fixed permutation, into a **source pool** (what zoo sources
may train on) and a **target pool** (what benchmark targets draw from) — so no target image was ever
seen by a source. Procedural domains are disjoint by construction: different seeds and parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import torch

from app.zoo import images as im

Domain = Callable[..., tuple[np.ndarray, np.ndarray]]

DIGITS_SPLIT_SEED = 20240607
DIGITS_SOURCE_POOL = 1100  # the first 1,100 of the fixed permutation; the remaining 697 are for targets


# -- digits ----------------------------------------------------------------------------------------------
@cache
def _digits_upscaled() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(small, size=(im.SIZE, im.SIZE), mode="bilinear", align_corners=False)
    return big[:, 0].numpy().astype(np.float64).clip(0.0, 1.0), d.target.astype(np.int64)


def digits_pool(pool: str) -> np.ndarray:
    """Indices into scikit-learn's digits of the ``"source"`` or ``"target"`` pool (disjoint, fixed)."""
    if pool not in ("source", "target"):
        raise ValueError(f"digits pool must be 'source' or 'target', got {pool!r}")
    _, labels = _digits_upscaled()
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    return np.sort(perm[:DIGITS_SOURCE_POOL] if pool == "source" else perm[DIGITS_SOURCE_POOL:])


def digits(n: int | None, rng: np.random.Generator, *, pool: str = "source", classes: Sequence[int] = tuple(range(10)),
           colour: bool = False, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Handwritten digits of one pool (``n=None``: all of them), labels re-indexed to ``0..len(classes)-1``.

    ``colour``: ink and paper in random contrasting colours (else white ink on black); ``shift``: random
    translation by up to that many pixels.
    """
    ink, labels = _digits_upscaled()
    idx = digits_pool(pool)
    idx = idx[np.isin(labels[idx], list(classes))]
    if n is not None:
        if n > len(idx):
            raise ValueError(f"digits pool {pool!r} holds {len(idx)} images of classes {list(classes)}, asked {n}")
        idx = rng.choice(idx, size=n, replace=False)
    idx = rng.permutation(idx)
    out = np.empty((len(idx), im.SIZE, im.SIZE, 3))
    for row, i in enumerate(idx):
        glyph = ink[i]
        if shift:
            dy, dx = rng.integers(-shift, shift + 1, size=2)
            glyph = np.roll(glyph, (int(dy), int(dx)), axis=(0, 1))
        if colour:
            fg, bg = im.contrasting_pair(rng, 0.4)
        else:
            fg, bg = np.ones(3), np.zeros(3)
        out[row] = im.compose(glyph, fg, im.plain(bg))
    remap = {c: k for k, c in enumerate(classes)}
    return im.to_uint8(out), np.array([remap[int(c)] for c in labels[idx]], dtype=np.int64)


# -- shapes ----------------------------------------------------------------------------------------------
def _shape_mask(kind: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    d = np.sqrt(dy ** 2 + dx ** 2)
    theta = np.arctan2(dy, dx)
    if kind == "circle":
        return d <= r
    if kind == "square":
        return np.maximum(abs(dy), abs(dx)) <= 0.8 * r
    if kind == "diamond":
        return abs(dy) + abs(dx) <= 1.1 * r
    if kind == "triangle":
        return (dy <= 0.7 * r) & (abs(dx) <= (dy + r) * 0.6)
    if kind == "ring":
        return abs(d - 0.75 * r) <= 0.25 * r
    if kind == "cross":
        return ((abs(dx) <= r / 3) & (abs(dy) <= r)) | ((abs(dy) <= r / 3) & (abs(dx) <= r))
    if kind == "ellipse":
        return (dx / r) ** 2 + (dy / (0.45 * r)) ** 2 <= 1
    if kind == "hexagon":
        return np.maximum(abs(dy) * 0.866 + abs(dx) * 0.5, abs(dx)) <= 0.9 * r
    if kind == "star":
        return d <= r * (0.55 + 0.45 * np.cos(5 * theta))
    if kind == "semicircle":
        return (d <= r) & (dy >= -0.1 * r)
    if kind == "ell":
        return ((abs(dx + 0.5 * r) <= 0.25 * r) & (abs(dy) <= r)) | ((abs(dy - 0.75 * r) <= 0.25 * r) & (abs(dx) <= r))
    raise ValueError(f"unknown shape {kind!r}; known: {SHAPES + NEW_SHAPES}")


SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
NEW_SHAPES = ("ellipse", "hexagon", "star", "semicircle", "ell")


def shapes(n: int, rng: np.random.Generator, *, kinds: Sequence[str] = SHAPES, radius: tuple[float, float] = (6, 12),
           background: str = "plain", rotate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One filled shape per image; the label is the shape. ``background``: ``plain`` or ``noise``."""
    labels = _balanced(n, len(kinds), rng)
    yy, xx = im.grid()
    out = np.empty((n, im.SIZE, im.SIZE, 3))
    for row, k in enumerate(labels):
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r + 1, im.SIZE - r - 1, size=2)
        dy, dx = yy - cy, xx - cx
        if rotate:
            a = rng.uniform(0, 2 * np.pi)
            dy, dx = np.cos(a) * dy - np.sin(a) * dx, np.sin(a) * dy + np.cos(a) * dx
        fg, bg = im.contrasting_pair(rng)
        base = im.plain(bg) if background == "plain" else 0.5 * im.plain(bg) + 0.5 * im.smooth_noise(rng, 1.0)
        out[row] = im.compose(im.downsample(_shape_mask(kinds[k], dy, dx, r).astype(np.float64)), fg, base)
    return im.to_uint8(out), labels


# -- oriented gratings -----------------------------------------------------------------------------------
def gratings(n: int, rng: np.random.Generator, *, orientations: int = 6, offset: float = 0.0,
             cycles: tuple[float, float] = (2.0, 5.0), noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Sinusoidal gratings; the label is the orientation bin (``orientations`` bins over 180°, rotated by
    ``offset`` degrees), jittered within a quarter bin; frequency, phase and colours are random."""
    labels = _balanced(n, orientations, rng)
    yy, xx = im.grid(1)
    step = np.pi / orientations
    out = np.empty((n, im.SIZE, im.SIZE, 3))
    for row, k in enumerate(labels):
        theta = k * step + np.deg2rad(offset) + rng.uniform(-step / 4, step / 4)
        freq = rng.uniform(*cycles) / im.SIZE
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 2 * np.pi))
        fg, bg = im.contrasting_pair(rng, 0.3)
        img = im.compose(wave, fg, im.plain(bg)) + rng.normal(0, noise, size=(im.SIZE, im.SIZE, 3))
        out[row] = img
    return im.to_uint8(out), labels


# -- noise spectra (the unrelated domain) ------------------------------------------------------------------
NOISE_SLOPES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def noise(n: int, rng: np.random.Generator, *, slopes: Sequence[float] = NOISE_SLOPES) -> tuple[np.ndarray, np.ndarray]:
    """Coloured noise; the label is the slope α of its ``1/f^α`` amplitude spectrum."""
    labels = _balanced(n, len(slopes), rng)
    out = np.stack([im.smooth_noise(rng, slopes[k]) for k in labels])
    return im.to_uint8(out), labels


# -- i.i.d. pixel static (what a memorising source sees) ----------------------------------------------------
def static(n: int, rng: np.random.Generator, *, classes: int = 10, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Independent uniform pixel noise (``block``×``block`` pixel cells); the labels are balanced but carry no
    information about the image — a source trained on them can only memorise."""
    if block < 1 or im.SIZE % block:
        raise ValueError(f"static block must divide {im.SIZE}, got {block!r}")
    labels = _balanced(n, classes, rng)
    cells = rng.random((n, im.SIZE // block, im.SIZE // block, 3))
    out = np.repeat(np.repeat(cells, block, axis=1), block, axis=2)
    return im.to_uint8(out), labels


# -- textures and counting (benchmark-only domains) --------------------------------------------------------
TEXTURES = ("checker", "dots", "lines", "blocks", "rings")


def textures(n: int, rng: np.random.Generator, *, kinds: Sequence[str] = TEXTURES) -> tuple[np.ndarray, np.ndarray]:
    """Regular textures (checkerboard, dot lattice, random lines, pixel blocks, concentric rings) with random
    scale, rotation and colours; the label is the texture kind."""
    labels = _balanced(n, len(kinds), rng)
    yy, xx = im.grid()
    out = np.empty((n, im.SIZE, im.SIZE, 3))
    for row, k in enumerate(labels):
        a = rng.uniform(0, np.pi)
        u, v = np.cos(a) * xx + np.sin(a) * yy, -np.sin(a) * xx + np.cos(a) * yy
        period = rng.uniform(4, 9)
        kind = kinds[k]
        if kind == "checker":
            mask = (np.floor(u / period) + np.floor(v / period)) % 2
        elif kind == "dots":
            fu, fv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
            mask = (fu ** 2 + fv ** 2) <= 0.09
        elif kind == "lines":
            mask = np.zeros_like(xx, dtype=bool)
            for _ in range(int(rng.integers(4, 8))):
                b = rng.uniform(0, np.pi)
                off = rng.uniform(-16, 16)
                mask |= abs(np.cos(b) * (xx - 16) + np.sin(b) * (yy - 16) - off) <= 0.8
        elif kind == "blocks":
            cells = int(rng.integers(4, 9))
            pattern = rng.random((cells, cells)) < 0.5
            mask = pattern[(yy * cells / im.SIZE).astype(int), (xx * cells / im.SIZE).astype(int)]
        elif kind == "rings":
            cy, cx = rng.uniform(0, im.SIZE, size=2)
            mask = (np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (period / 2)).astype(int) % 2
        else:
            raise ValueError(f"unknown texture {kind!r}; known: {TEXTURES}")
        fg, bg = im.contrasting_pair(rng)
        out[row] = im.compose(im.downsample(np.asarray(mask, dtype=np.float64)), fg, im.plain(bg))
    return im.to_uint8(out), labels


def counting(n: int, rng: np.random.Generator, *, max_count: int = 4, radius: tuple[float, float] = (2.5, 4.5)
             ) -> tuple[np.ndarray, np.ndarray]:
    """1 … ``max_count`` non-overlapping discs of random colours on a smooth-noise background; the label is
    the count minus one."""
    labels = _balanced(n, max_count, rng)
    yy, xx = im.grid()
    out = np.empty((n, im.SIZE, im.SIZE, 3))
    for row, k in enumerate(labels):
        img = 0.6 * im.plain(im.random_colour(rng)) * 0.5 + 0.2 * im.smooth_noise(rng, 2.0)
        placed: list[tuple[float, float, float]] = []
        while len(placed) < k + 1:
            r = rng.uniform(*radius)
            cy, cx = rng.uniform(r + 1, im.SIZE - r - 1, size=2)
            if all((cy - py) ** 2 + (cx - px) ** 2 > (r + pr + 1.5) ** 2 for py, px, pr in placed):
                placed.append((cy, cx, r))
                disc = im.downsample((((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.float64))
                img = im.compose(disc, 0.5 + 0.5 * im.random_colour(rng), img)
        out[row] = img
    return im.to_uint8(out), labels


def _balanced(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    if not isinstance(n, int | np.integer) or n < classes:
        raise ValueError(f"need at least one sample per class ({classes}), got n={n!r}")
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


DOMAINS: dict[str, Domain] = {
    "digits": digits,
    "shapes": shapes,
    "gratings": gratings,
    "noise": noise,
    "static": static,
    "textures": textures,
    "counting": counting,
}


def generate(domain: str, n: int | None, seed: int, **params) -> tuple[np.ndarray, np.ndarray]:
    """``DOMAINS[domain](n, default_rng(seed), **params)`` with a clear error for an unknown name."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown image domain {domain!r}; known: {sorted(DOMAINS)}")
    return DOMAINS[domain](n, np.random.default_rng(seed), **params)
