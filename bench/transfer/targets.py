"""The benchmark's few-shot target tasks (10–30 labelled images per class, a larger held-out test split).

No target image was seen by any zoo source: digit targets draw from the digits **target pool**
(``app.zoo.domains.digits_pool("target")``, disjoint from the source pool every digits source trained on);
procedural targets use seeds no source uses (≥ 1000) and new parameters or whole new domains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.zoo.domains import NEW_SHAPES, SHAPES, generate
from app.zoo.sources import ZOO_SOURCES


@dataclass(frozen=True)
class TargetTask:
    name: str
    domain: str
    classes: int
    shots: int  # labelled training images per class
    test_per_class: int  # procedural domains; digit targets test on every remaining target-pool image
    seed: int
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``train images, train labels, test images, test labels`` (uint8 ``(n, 32, 32, 3)``, int64)."""
        if self.domain == "digits":
            x, y = generate("digits", None, self.seed, pool="target", **self.params)
        else:
            x, y = generate(self.domain, self.classes * (self.shots + self.test_per_class), self.seed, **self.params)
        rng = np.random.default_rng(self.seed + 17)
        train = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:self.shots] for c in range(self.classes)])
        train = rng.permutation(train)
        test = np.setdiff1d(np.arange(len(y)), train)
        return x[train], y[train], x[test], y[test]


TARGETS: tuple[TargetTask, ...] = (
    TargetTask("digits_10shot", "digits", 10, 10, 0, 1001,
               "held-out handwritten digits, 10 per class, white on black (the digits sources' domain)"),
    TargetTask("shapes_new", "shapes", len(NEW_SHAPES), 20, 50, 1003,
               "five NEW shapes (ellipse, hexagon, star, semicircle, L), rotated, on a noisy background",
               {"kinds": NEW_SHAPES, "background": "noise", "rotate": True}),
    TargetTask("shapes_small", "shapes", len(SHAPES), 10, 50, 1004,
               "the six source shapes, but small (radius 4–7 px) on a noisy background",
               {"kinds": SHAPES, "radius": (4.0, 7.0), "background": "noise"}),
    TargetTask("gratings_4", "gratings", 4, 15, 50, 1005,
               "grating orientation in 4 bins offset by 22.5°, higher frequencies (3–7 cycles)",
               {"orientations": 4, "offset": 22.5, "cycles": (3.0, 7.0)}),
    TargetTask("textures", "textures", 5, 20, 50, 1006,
               "five regular textures (checkerboard, dots, lines, blocks, rings): a domain no source saw"),
    TargetTask("counting", "counting", 4, 25, 50, 1007,
               "count 1–4 discs on a smooth-noise background: a domain no source saw"),
)

SOURCE_SEEDS = {s.seed for s in ZOO_SOURCES}
assert all(t.seed not in SOURCE_SEEDS for t in TARGETS), "a target seed collides with a source seed"


def target(name: str) -> TargetTask:
    for t in TARGETS:
        if t.name == name:
            return t
    raise ValueError(f"unknown target {name!r}; known: {[t.name for t in TARGETS]}")
