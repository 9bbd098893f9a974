"""``torch.export`` programs: an uploaded ``.pt2`` image program, id ``export:<sha256 of the archive>``.

The successor of TorchScript uploads, under the same rules: the bytes are checked before torch parses them
(:mod:`app.backbones.exported` refuses anything that would unpickle or call outside ATen), and the module
contract is TorchScript's: ``forward(x: Tensor[n, c, h, w])`` returns one tensor (a tap named ``output``)
or a dict of tensors (one tap per key, in order). A dict entry named ``source_logits`` is the source head,
not a tap. The batch dimension must be dynamic (``torch.export.export(m, (x,), dynamic_shapes=({0:
torch.export.Dim("batch")},))``): taps are measured with batches of 1 and 3 at registration.

An exported graph runs as it was exported (in eval mode, batch norms use their running statistics even
while a probe fine-tunes it); ``train()``/``eval()`` only set the flag, because ``ExportedProgram.module()``
refuses both. The scratch arm re-initialises every parameter as TorchScript's does, seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from app.backbones.adapters.common import ModuleAdapter
from app.backbones.adapters.torchscript import OutputTap, program_outputs, reinitialise
from app.backbones.base import BackboneSpec, LayerSpec, Preprocessing
from app.backbones.context import LoadContext
from app.backbones.errors import InvalidBackbone, WeightsUnavailable
from app.backbones.exported import load_exported
from app.backbones.weights import sha256_file

SOURCE_LOGITS = "source_logits"
_PROBE_BATCHES = (1, 3)


class _Program(nn.Module):
    """An exported program's module; ``train``/``eval`` set the flag only (the graph runs as exported)."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor):
        return self.program(x)

    def train(self, mode: bool = True) -> _Program:
        self.training = mode
        return self


def _taps(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v for k, v in program_outputs(module, x).items() if k != SOURCE_LOGITS}


def describe_upload(path: Path, preprocessing: Preprocessing, **card) -> BackboneSpec:
    """A spec for an uploaded program: taps measured at ``input_size`` with batches of 1 and 3."""
    if preprocessing.input_size is None:
        raise InvalidBackbone("an exported backbone needs preprocessing.input_size [c, h, w]")
    module = _Program(load_exported(path))
    shapes = []
    for n in _PROBE_BATCHES:
        try:
            with torch.inference_mode():
                outs = program_outputs(module, torch.zeros(n, *preprocessing.input_size))
        except InvalidBackbone:
            raise
        except Exception as exc:  # the caller's program failed on its declared input: their mistake
            raise InvalidBackbone(
                f"the exported program fails on input {(n, *preprocessing.input_size)}: {str(exc)[:300]} (export it "
                "with a dynamic batch dimension: dynamic_shapes=({0: torch.export.Dim('batch')},))") from exc
        shapes.append(outs)
    taps = {k: v for k, v in shapes[-1].items() if k != SOURCE_LOGITS}
    if not taps:
        raise InvalidBackbone(f"the exported program returns only {SOURCE_LOGITS!r}; it needs at least one tap")
    layers = []
    for i, (name, t) in enumerate(taps.items()):
        kind = {4: "conv", 3: "tokens", 2: "vector"}.get(t.ndim)
        if kind is None:
            raise InvalidBackbone(f"exported output {name!r} has shape {tuple(t.shape)}; expected 2-, 3- or 4-D")
        layers.append(LayerSpec(name, int(t.shape[1] if kind == "conv" else t.shape[-1]), kind,
                                round((i + 1) / len(taps), 3)))
    digest = sha256_file(path)
    return BackboneSpec(
        id=f"export:{digest}", family="export", modality="image", preprocessing=preprocessing,
        layers=tuple(layers), weights_digest=digest, num_params=sum(p.numel() for p in module.parameters()),
        source=card.get("source"), licence=card.get("licence") or "unknown",
        description=card.get("description") or "uploaded torch.export program",
    )


class ExportedAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, path: Path) -> None:
        self.path = path
        model = _Program(load_exported(path, expected_sha256=spec.weights_digest))
        input_size = spec.preprocessing.input_size or (3, 32, 32)
        with torch.inference_mode():
            head = SOURCE_LOGITS in program_outputs(model, torch.zeros(1, *input_size))
        super().__init__(spec, model, head=head)

    def _raw_taps(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        outs = _taps(self.model, x)
        return {n: outs[n] for n in layers}

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return program_outputs(self.model, x)[SOURCE_LOGITS]

    def _build(self, pretrained: bool) -> nn.Module:
        model = _Program(load_exported(self.path))
        if not pretrained:
            reinitialise(model)
        return model

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        return OutputTap(model, layer, self._pool_module(layer))


def create(spec: BackboneSpec, ctx: LoadContext) -> ExportedAdapter:
    path = ctx.weights_path
    if path is None:
        ref = spec.extra.get("weights")
        if not isinstance(ref, str) or not ref:
            raise WeightsUnavailable(f"{spec.id} has no exported program; upload it with POST /v1/backbones/upload")
        path = ctx.resolve(ref, spec.extra.get("card_dir"))
        if path is None:
            raise InvalidBackbone(f"{spec.id}: an exported backbone is its program; 'random' weights do not apply")
    if not path.is_file():
        raise WeightsUnavailable(f"the exported program of {spec.id} is missing: place it at {path}")
    return ExportedAdapter(spec, path)
