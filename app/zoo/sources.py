"""Which sources the built-in zoo holds, and why each one is there.

The zoo is built to make rankings *mean* something on the transfer benchmark (``bench/transfer``): it holds
clearly good sources for some targets (digits → held-out digits, shapes → new shapes, gratings →
re-binned gratings), mediocre ones (the same tasks on architectures that learn less from little data,
sources from a neighbouring domain), and harmful ones (sources trained on **shuffled** labels, a source
from an **unrelated** domain — noise spectra), plus a **random-init** control whose weights are a seeded
initialisation and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.zoo.recipe import Recipe

# Small widths keep a build under ten minutes on two shared cores; every one is ~20k parameters.
ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "cnn_small": {"width": 8},
    "resnet_small": {"width": 8, "blocks": [1, 1, 1]},
    "vit_tiny": {"dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0},
    "mixer_tiny": {"dim": 32, "depth": 3, "token_hidden": 32, "channel_hidden": 64},
}


@dataclass(frozen=True)
class ZooSource:
    """One source backbone: architecture × source task × labels × recipe × seed."""

    arch: str
    tag: str
    domain: str
    classes: int
    n_train: int | None  # None: the whole digits source pool minus the held-out part
    n_test: int
    recipe: Recipe
    seed: int
    role: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    labels: str = "true"  # "true" | "shuffled"

    @property
    def id(self) -> str:
        return f"zoo:{self.arch}.{self.tag}"

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.classes, **ARCH_KWARGS[self.arch]}

    def reduced(self, n_train: int, epochs: int) -> ZooSource:
        """A cheaper copy (tests): fewer samples and epochs, same everything else."""
        r = self.recipe
        return ZooSource(self.arch, self.tag, self.domain, self.classes, n_train, min(self.n_test, 64),
                         Recipe(epochs, r.batch_size, r.lr, r.weight_decay, r.label_smoothing, r.threads),
                         self.seed, self.role, self.description, self.params, self.labels)


_STD = Recipe(epochs=12)
_LONG = Recipe(epochs=40, weight_decay=0.0)  # shuffled labels: train until memorised, no decay to pull back
_NONE = Recipe(epochs=0)

ZOO_SOURCES: tuple[ZooSource, ...] = (
    ZooSource("cnn_small", "digits", "digits", 10, None, 200, _STD, 1, "good for digit targets",
              "Small CNN trained on scikit-learn handwritten digits (source pool) upscaled to 32×32"),
    ZooSource("resnet_small", "digits", "digits", 10, None, 200, _STD, 2, "good for digit targets",
              "Small ResNet trained on scikit-learn handwritten digits (source pool) upscaled to 32×32"),
    ZooSource("vit_tiny", "digits", "digits", 10, None, 200, _STD, 3, "mediocre: a ViT learns little from 900 digits",
              "Tiny ViT trained on scikit-learn handwritten digits (source pool) upscaled to 32×32"),
    ZooSource("cnn_small", "digits_shuffled", "digits", 10, None, 200, _LONG, 4,
              "harmful: memorised shuffled labels",
              "Small CNN trained to memorise scikit-learn digits with SHUFFLED labels (a harmful source)",
              labels="shuffled"),
    ZooSource("cnn_small", "shapes", "shapes", 6, 1800, 600, _STD, 5, "good for shape targets",
              "Small CNN trained to classify 6 procedurally drawn shapes (circle, square, triangle, cross, "
              "ring, diamond)"),
    ZooSource("cnn_small", "noise", "noise", 6, 1800, 600, _STD, 6,
              "harmful/unrelated: spectra of coloured noise",
              "Small CNN trained to tell the spectral slope of coloured noise (an unrelated domain)"),
    ZooSource("cnn_small", "random", "digits", 10, None, 200, _NONE, 7, "control: random initialisation",
              "Small CNN, random initialisation (seeded), never trained: the random-init control"),
    ZooSource("resnet_small", "gratings", "gratings", 6, 1800, 600, _STD, 8, "good for orientation targets",
              "Small ResNet trained to classify the orientation (6 bins) of sinusoidal gratings"),
    ZooSource("resnet_small", "noise", "noise", 6, 1800, 600, _STD, 9, "harmful/unrelated: spectra of coloured noise",
              "Small ResNet trained to tell the spectral slope of coloured noise (an unrelated domain)"),
    ZooSource("resnet_small", "shapes_shuffled", "shapes", 6, 900, 300, _LONG, 10,
              "harmful: memorised shuffled labels",
              "Small ResNet trained to memorise procedural shapes with SHUFFLED labels (a harmful source)",
              labels="shuffled"),
    ZooSource("vit_tiny", "shapes", "shapes", 6, 1800, 600, _STD, 11, "mediocre/good for shape targets",
              "Tiny ViT trained to classify 6 procedurally drawn shapes"),
    ZooSource("mixer_tiny", "gratings", "gratings", 6, 1800, 600, _STD, 12, "good for orientation targets",
              "Tiny MLP-Mixer trained to classify the orientation (6 bins) of sinusoidal gratings"),
    # ground truth v2 (bench/transfer/PROTOCOL.md): a fourth source per architecture that should hurt or help
    ZooSource("vit_tiny", "noise", "noise", 6, 1800, 600, _STD, 13, "harmful/unrelated: spectra of coloured noise",
              "Tiny ViT trained to tell the spectral slope of coloured noise (an unrelated domain)"),
    ZooSource("mixer_tiny", "digits_shuffled", "digits", 10, None, 200, _LONG, 14,
              "harmful: memorised shuffled labels",
              "Tiny MLP-Mixer trained to memorise scikit-learn digits with SHUFFLED labels (a harmful source)",
              labels="shuffled"),
    ZooSource("cnn_small", "static", "static", 10, 900, 100, _LONG, 15, "harmful: memorised pixel noise",
              "Small CNN trained to memorise i.i.d. pixel static with arbitrary labels (a harmful source)",
              {"classes": 10, "block": 2}),
    ZooSource("mixer_tiny", "shapes", "shapes", 6, 1800, 600, _STD, 16, "good for shape targets",
              "Tiny MLP-Mixer trained to classify 6 procedurally drawn shapes"),
)


def zoo_source(name_or_id: str) -> ZooSource:
    """Look a source up by ``arch.tag`` or ``zoo:arch.tag``."""
    for s in ZOO_SOURCES:
        if name_or_id in (s.id, s.name):
            return s
    raise ValueError(f"unknown zoo source {name_or_id!r}; known: {[s.name for s in ZOO_SOURCES]}")
