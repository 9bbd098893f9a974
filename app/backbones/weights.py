"""Loading weight files without ever unpickling caller data.

Accepted: safetensors, TorchScript archives (``torch.jit.load``, whose loader only restores torch types),
``torch.export`` programs (``.pt2``, checked member by member first: :mod:`app.backbones.exported`) and torch
state-dict archives through ``torch.load(weights_only=True)``. Anything else is refused before it is parsed. Every load can check a sha256 first, so a card's digest is the weights actually used.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import torch

from app.backbones.errors import InvalidBackbone, UnsupportedWeights, WeightsUnavailable

WeightsFormat = Literal["safetensors", "torchscript", "exported", "state_dict"]
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sniff_format(path: Path) -> WeightsFormat:
    """What a weights file is, from its bytes (never from its name); refuses everything else.

    A safetensors file starts with a little-endian u64 header length and a JSON object; TorchScript,
    ``torch.export`` and ``torch.save`` files are zip archives, told apart by a PT2 archive's
    ``<root>/archive_format`` member and TorchScript's ``code/`` folder. A bare pickle stream (or anything
    else) is refused without being parsed.
    """
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= path.stat().st_size - 8:
            return "safetensors"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if is_pt2_archive(names):
            return "exported"
        if any("/code/" in n or n.startswith("code/") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
    raise UnsupportedWeights(
        f"weights file {path.name!r} is neither safetensors, a TorchScript archive, a torch.export program (.pt2) "
        "nor a torch state-dict archive; bare pickle files are refused (convert with safetensors.torch.save_file)"
    )


def is_pt2_archive(names: list[str]) -> bool:
    """Whether zip member ``names`` look like a PT2 archive (``torch.export.save``: ``<root>/archive_format``)."""
    return any(n.count("/") == 1 and n.endswith("/archive_format") for n in names)


def verify_digest(path: Path, expected: str | None) -> str:
    """The file's sha256; raises when it differs from ``expected`` (a card's ``weights_sha256``)."""
    if not path.is_file():
        raise WeightsUnavailable(f"weights file not found: place it at {path}")
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise InvalidBackbone(f"weights {path.name!r} have sha256 {actual}, but the card says {expected}")
    return actual


def load_state_dict(path: Path, *, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or (weights_only) torch archives, after the digest check."""
    verify_digest(path, expected_sha256)
    fmt = sniff_format(path)
    if fmt == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # malformed header or tensors: the caller's file, not our bug
            raise InvalidBackbone(f"weights {path.name!r} are not valid safetensors: {exc}") from exc
    if fmt == "state_dict":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InvalidBackbone(f"weights {path.name!r} were refused by the weights-only loader: {exc}") from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise InvalidBackbone(f"weights {path.name!r} do not hold a mapping of names to tensors")
        return state
    raise InvalidBackbone(f"weights {path.name!r} are a {'TorchScript module' if fmt == 'torchscript' else 'torch.export program'}, "
                          "not a state dict")


def load_torchscript(path: Path, *, expected_sha256: str | None = None) -> torch.jit.ScriptModule:
    verify_digest(path, expected_sha256)
    if sniff_format(path) != "torchscript":
        raise InvalidBackbone(f"weights {path.name!r} are not a TorchScript archive")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but is the upload format we accept
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise InvalidBackbone(f"TorchScript archive {path.name!r} cannot be loaded: {exc}") from exc


def safetensors_header(path: Path) -> dict[str, object]:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes) without loading tensors."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(n))
