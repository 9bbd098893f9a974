"""Loading ``torch.export`` programs (``.pt2``) without unpickling caller data.

``torch.export.load`` unpickles in several places: weights and constants marked ``use_pickle``, custom and
opaque objects, legacy ``.pt`` payloads, and the sample inputs (with ``weights_only=True`` first, then — on
failure — without it); a PT2 archive may also carry AOTInductor shared libraries and extra files. A graph
node's target is resolved by name on ``torch``, ``operator`` or ``math``, so a program could call any
function there (``torch.load``, ``torch.hub.load``…) when it runs.

:func:`check_archive` therefore reads the archive as data first and refuses, before torch parses it,
anything outside the one shape this service runs: a single program ``model`` whose weights and constants
are raw tensor payloads described by JSON, sample inputs that load with ``torch.load(weights_only=True)``
(so torch never takes its unrestricted fallback), no other member, and graph nodes that call only ATen or
prims operators (``aten.from_file`` excepted: it reads files) and a short list of ``operator`` functions.
Only then does :func:`load_exported` hand the file to ``torch.export.load``.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from app.backbones.errors import InvalidBackbone, UnsupportedWeights
from app.backbones.weights import verify_digest

MODEL = "model"
_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_WEIGHTS_CONFIG = f"data/weights/{MODEL}_weights_config.json"
_CONSTANTS_CONFIG = f"data/constants/{MODEL}_constants_config.json"
_PROGRAM = f"models/{MODEL}.json"
_SAMPLE_INPUTS = f"data/sample_inputs/{MODEL}.pt"
_REQUIRED = {"archive_format", _PROGRAM, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG, _SAMPLE_INPUTS}
_OP = re.compile(r"torch\.ops\.(aten|prims)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
_DENIED_OPS = {"from_file"}
_OPERATORS = {"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne",
              "lt", "le", "gt", "ge", "and_", "or_", "not_"}
_MAX_JSON_BYTES = 256 * 1024 * 1024


def _refuse(path: Path, why: str) -> UnsupportedWeights:
    return UnsupportedWeights(f"exported program {path.name!r} is refused: {why}")


def _json(zf: zipfile.ZipFile, name: str, path: Path) -> Any:
    if zf.getinfo(name).file_size > _MAX_JSON_BYTES:
        raise _refuse(path, f"{name} is larger than {_MAX_JSON_BYTES} bytes")
    try:
        return json.loads(zf.read(name))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"{name} is not JSON ({exc})") from None


def _payloads(config: Any, prefix: str, kind: str, path: Path) -> set[str]:
    """The payload files a weights/constants config names; refuses pickled and object payloads."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(path, f"its {kind} config has no 'config' mapping")
    files = set()
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise _refuse(path, f"{kind} {fqn!r} has no payload description")
        name = meta.get("path_name")
        if meta.get("use_pickle") is not False:
            raise _refuse(path, f"{kind} {fqn!r} is stored as a pickle; save the program with plain tensors")
        if not isinstance(name, str) or not re.fullmatch(rf"{prefix}\d+", name):
            raise _refuse(path, f"{kind} {fqn!r} is stored as {name!r}, not a raw tensor payload ({prefix}<n>)"
                                " (custom or opaque objects are not accepted)")
        files.add(name)
    return files


def _targets(value: Any):
    """Every graph node's ``target`` in the serialized program, subgraphs included."""
    if isinstance(value, dict):
        if isinstance(value.get("target"), str) and "inputs" in value and "outputs" in value:
            yield value["target"]
        for v in value.values():
            yield from _targets(v)
    elif isinstance(value, list):
        for v in value:
            yield from _targets(v)


def _check_target(target: str, path: Path) -> None:
    m = _OP.fullmatch(target)
    if m and m.group(2) not in _DENIED_OPS:
        return
    if target.startswith("_operator.") and target.removeprefix("_operator.") in _OPERATORS:
        return
    raise _refuse(path, f"its graph calls {target!r}; only ATen/prims operators (and basic operator functions) "
                        "are accepted")


def check_archive(path: Path) -> None:
    """Refuse ``path`` unless it is a PT2 archive that ``torch.export.load`` reads without unpickling."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise _refuse(path, f"not a zip archive ({exc})") from None
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise _refuse(path, f"members must lie under one root folder, found {sorted(roots)[:5]}")
        root = roots.pop()
        members = {n[len(root) + 1:]: n for n in names}
        missing = sorted(_REQUIRED - set(members))
        if missing:
            raise _refuse(path, f"it lacks {missing} (one program named {MODEL!r}, saved by torch.export.save)")
        if zf.read(members["archive_format"]).strip() != b"pt2":
            raise _refuse(path, "its archive_format is not 'pt2'")
        allowed = set(_FIXED) | _REQUIRED
        allowed |= {f"data/weights/{f}" for f in _payloads(_json(zf, members[_WEIGHTS_CONFIG], path),
                                                            "weight_", "weight", path)}
        allowed |= {f"data/constants/{f}" for f in _payloads(_json(zf, members[_CONSTANTS_CONFIG], path),
                                                              "tensor_", "constant", path)}
        extra = sorted(set(members) - allowed)
        if extra:
            raise _refuse(path, f"it holds {extra[:3]}, which this service does not load (AOTInductor code, extra "
                                "files, legacy pickled payloads or other programs)")
        program = _json(zf, members[_PROGRAM], path)
        graph = (program.get("graph_module") or {}).get("graph") if isinstance(program, dict) else None
        if not isinstance(graph, dict):
            raise _refuse(path, f"{_PROGRAM} holds no graph")
        if graph.get("custom_obj_values"):
            raise _refuse(path, "its graph uses custom (script) objects")
        for target in _targets(program):
            _check_target(target, path)
        try:
            inputs = torch.load(io.BytesIO(zf.read(members[_SAMPLE_INPUTS])), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _refuse(path, f"its sample inputs are not plain tensors ({type(exc).__name__})") from None
        if not isinstance(inputs, (tuple, dict)):
            raise _refuse(path, "its sample inputs are not a tuple")


def load_exported(path: Path, *, expected_sha256: str | None = None) -> torch.nn.Module:
    """The program's module (``ExportedProgram.module()``) after :func:`check_archive` and the digest check."""
    verify_digest(path, expected_sha256)
    check_archive(path)
    try:
        with warnings.catch_warnings(), open(path, "rb") as fh:
            warnings.simplefilter("ignore")
            program = torch.export.load(fh)
        return program.module()
    except Exception as exc:
        raise InvalidBackbone(f"exported program {path.name!r} cannot be loaded: {exc}") from exc
