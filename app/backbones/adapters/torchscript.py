"""TorchScript: an uploaded scripted image module, id ``torchscript:<sha256 of the archive>``.

Contract for the module: ``forward(x: Tensor[n, c, h, w])`` returns either one tensor (a single tap named
``output``) or ``Dict[str, Tensor]`` (one tap per key, in the module's order); an exported method
``source_logits(x)`` (``@torch.jit.export``) is the source head when present. Taps are measured with one
dummy forward at registration. The scratch arm re-initialises every parameter with the defaults of
``nn.Linear``/``nn.Conv2d`` (norm weights 1, biases 0), seeded.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from app.backbones.adapters.common import ModuleAdapter
from app.backbones.base import BackboneSpec, LayerSpec, Preprocessing
from app.backbones.context import LoadContext
from app.backbones.errors import InvalidBackbone, WeightsUnavailable
from app.backbones.weights import load_torchscript, sha256_file

OUTPUT = "output"


def program_outputs(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out = module(x)
    if isinstance(out, torch.Tensor):
        return {OUTPUT: out}
    if isinstance(out, dict) and out and all(isinstance(v, torch.Tensor) for v in out.values()):
        return dict(out)
    raise InvalidBackbone("a TorchScript or exported backbone must return a tensor or a Dict[str, Tensor] from forward()")


def describe_upload(path: Path, preprocessing: Preprocessing, **card) -> BackboneSpec:
    """A spec for an uploaded archive: taps measured with one dummy forward at ``input_size``."""
    if preprocessing.input_size is None:
        raise InvalidBackbone("a TorchScript backbone needs preprocessing.input_size [c, h, w]")
    module = load_torchscript(path).eval()
    try:
        with torch.inference_mode():
            outs = program_outputs(module, torch.zeros(2, *preprocessing.input_size))
    except InvalidBackbone:
        raise
    except Exception as exc:  # the caller's module failed on its declared input: their mistake
        raise InvalidBackbone(f"the TorchScript module fails on input {(2, *preprocessing.input_size)}: {exc}") from exc
    layers = []
    for i, (name, t) in enumerate(outs.items()):
        kind = {4: "conv", 3: "tokens", 2: "vector"}.get(t.ndim)
        if kind is None:
            raise InvalidBackbone(f"TorchScript output {name!r} has shape {tuple(t.shape)}; expected 2-, 3- or 4-D")
        layers.append(LayerSpec(name, int(t.shape[1] if kind == "conv" else t.shape[-1]), kind,
                                round((i + 1) / len(outs), 3)))
    digest = sha256_file(path)
    return BackboneSpec(
        id=f"torchscript:{digest}", family="torchscript", modality="image", preprocessing=preprocessing,
        layers=tuple(layers), weights_digest=digest, num_params=sum(p.numel() for p in module.parameters()),
        source=card.get("source"), licence=card.get("licence") or "unknown",
        description=card.get("description") or "uploaded TorchScript module",
    )


def reinitialise(module: nn.Module) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.fill_(1.0)
            elif b.is_floating_point():
                b.zero_()


class TorchScriptAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, path: Path) -> None:
        self.path = path
        model = load_torchscript(path, expected_sha256=spec.weights_digest)
        super().__init__(spec, model, head=hasattr(model, "source_logits"))

    def _raw_taps(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        outs = program_outputs(self.model, x)
        return {n: outs[n] for n in layers}

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.source_logits(x)

    def _build(self, pretrained: bool) -> nn.Module:
        model = load_torchscript(self.path)
        if not pretrained:
            reinitialise(model)
        return model

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        return OutputTap(model, layer, self._pool_module(layer))


class OutputTap(nn.Module):
    def __init__(self, model: nn.Module, layer: str, pool: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(program_outputs(self.model, x)[self.layer])


def create(spec: BackboneSpec, ctx: LoadContext) -> TorchScriptAdapter:
    path = ctx.weights_path
    if path is None:
        ref = spec.extra.get("weights")
        if not isinstance(ref, str) or not ref:
            raise WeightsUnavailable(f"{spec.id} has no TorchScript archive; upload it with POST /v1/backbones")
        path = ctx.resolve(ref, spec.extra.get("card_dir"))
        if path is None:
            raise InvalidBackbone(f"{spec.id}: a TorchScript backbone is its archive; 'random' weights do not apply")
    if not path.is_file():
        raise WeightsUnavailable(f"the TorchScript archive of {spec.id} is missing: place it at {path}")
    return TorchScriptAdapter(spec, path)
