"""Where tensors run: device resolution and mixed precision, one copy for embedding, probes and metrics.

``auto`` means CUDA when ``torch.cuda.is_available()``, else CPU. Mixed precision is used on CUDA only:
bfloat16 where the GPU supports it, float16 otherwise (with a gradient scaler when training). Nothing here
reads settings; callers pass the setting's value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["resolve_device", "autocast_dtype", "autocast"]


def resolve_device(setting: str | torch.device | None = "auto") -> torch.device:
    """``None`` or ``"auto"`` → CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises
    ------
    ValueError
        The string names no device, or CUDA was asked for on a machine without it.
    """
    if setting is None or str(setting) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {setting!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(setting)!r} was asked for, but CUDA is not available on this machine")
    return device


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The mixed-precision dtype on CUDA (bfloat16 where supported, else float16); ``None`` means float32."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> Callable[[], Any]:
    """A factory of autocast contexts for ``device`` in ``dtype`` (from :func:`autocast_dtype`); ``None``
    gives a no-op context (float32)."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
