"""Backbone catalogue shapes: a backbone's spec with its tap-able layers, and registration requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Page


class LayerRead(BaseModel):
    name: str
    dim: int = Field(description="Width of the pooled features at this layer.")
    kind: Literal["conv", "tokens", "vector"] = Field(description="conv: global average; tokens: mean or CLS.")
    depth: float = Field(description="Relative position in the network, 0 (input) … 1 (last).")


class PreprocessingRead(BaseModel):
    input_size: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    tokenizer: str | None = None
    max_length: int | None = None
    pooling: Literal["mean", "cls"] | None = None


class SourceTaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=300)
    # strict: JSON numbers only (no true/false or "1" read as a number)
    classes: int | None = Field(default=None, ge=1, strict=True)
    samples: int | None = Field(default=None, ge=0, strict=True)
    accuracy: float | None = Field(default=None, ge=0, le=1, strict=True)
    difficulty: dict[str, Any] | None = None
    description: str = Field(default="", max_length=4000)


class BackboneRead(BaseModel):
    id: str = Field(examples=["timm:resnet50.a1_in1k"])
    family: str
    modality: Literal["image", "text"]
    builtin: bool = Field(description="From the built-in catalogue (models/*.toml) rather than this project.")
    description: str = ""
    licence: str = "unknown"
    weights_digest: str | None = None
    num_params: int | None = None
    preprocessing: PreprocessingRead
    layers: list[LayerRead]
    source: SourceTaskIn | None = None
    arch: dict[str, Any] | None = Field(default=None, description="Zoo: registry name + constructor kwargs.")
    recipe: dict[str, Any] | None = None


class BackbonePage(Page[BackboneRead]):
    pass


class BackboneCreate(BaseModel):
    """Register a hub backbone by id, found offline (timm / torchvision / hf)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=3, max_length=300, examples=["timm:resnet18.a1_in1k", "hf:google/vit-base-patch16-224"])
    weights: str | None = Field(
        default=None, max_length=1000, examples=["timm/resnet18.a1_in1k/model.safetensors", "random"],
        description="Optional: 'random' (seeded random initialisation: an architecture-only control), or a "
                    "file (timm, torchvision) or directory (hf) inside the server's hub cache, absolute or "
                    "relative to TSCOUT_HUB_CACHE_DIR; default: found in the hub cache by id.",
    )
    description: str | None = Field(default=None, max_length=4000)
    licence: str | None = Field(default=None, max_length=200)
    source: SourceTaskIn | None = None


class BackboneUpdate(BaseModel):
    """Change a registered backbone's card; weights, layers and preprocessing are what its id stands for."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4000)
    licence: str | None = Field(default=None, max_length=200)
    source: SourceTaskIn | None = None


class BackboneCard(BaseModel):
    """Card fields sent beside uploaded weights (multipart field ``card``, JSON)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=300,
                           description="zoo: 'zoo:<arch>.<tag>'; TorchScript and torch.export ids are 'torchscript:<sha256>' and 'export:<sha256>' (derived).")
    modality: Literal["image"] = "image"
    description: str = Field(default="", max_length=4000)
    licence: str = Field(default="unknown", max_length=200)
    arch: dict[str, Any] | None = Field(default=None, description="zoo: {name, kwargs}.")
    preprocessing: PreprocessingRead
    source: SourceTaskIn | None = None
    recipe: dict[str, Any] | None = None
