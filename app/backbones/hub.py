"""Finding hub weights on local disk, offline. Nothing here opens a network connection, and nothing edits
the process environment: every hub call passes ``local_files_only`` or only reads the cache layout.

Layout under ``settings.hub_cache_dir`` (``var/hub-cache`` by default):

- ``timm/<arch.tag>/model.safetensors`` (or ``pytorch_model.bin``), or Hugging Face's cache layout under
  ``huggingface/`` (``models--timm--<arch.tag>/snapshots/…``);
- ``torch/hub/checkpoints/<file name of the weights URL>`` (torchvision, as ``torch.hub`` stores it);
- ``hf/<owner>/<name>/`` (a plain directory with ``config.json`` + weights), or the Hugging Face cache
  layout under ``huggingface/``.
"""

from __future__ import annotations

from pathlib import Path

from app.backbones.errors import WeightsUnavailable


def hf_cache_dir(hub_cache_dir: Path) -> Path:
    return Path(hub_cache_dir) / "huggingface"


def cached_hf_file(hub_cache_dir: Path, repo_id: str, filename: str) -> Path | None:
    """A file of a hub repo in the Hugging Face cache layout, or ``None``; never downloads."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hf_cache_dir(hub_cache_dir)))
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def cached_hf_snapshot(hub_cache_dir: Path, repo_id: str, revision: str | None = None) -> Path | None:
    """A local directory holding ``repo_id`` (plain ``hf/<repo>`` folder or HF cache snapshot), or ``None``."""
    plain = Path(hub_cache_dir) / "hf" / repo_id
    if (plain / "config.json").is_file():
        return plain
    config = None
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(hf_cache_dir(hub_cache_dir)),
                                    revision=revision)
    return Path(config).parent if isinstance(config, str) else None


def unavailable(backbone_id: str, *places: Path | str, hint: str = "") -> WeightsUnavailable:
    where = " or ".join(str(p) for p in places)
    return WeightsUnavailable(
        f"weights for {backbone_id} are not available offline: place them at {where}"
        + (f" ({hint})" if hint else "")
        + "; the server never downloads from a model hub while TSCOUT_OFFLINE=true"
    )
