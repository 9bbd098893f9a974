"""Image validation and normalisation at ingest.

Policy (what the stored dataset holds, so every reader decodes straight to RGB):

* JPEG and PNG files that are already 8-bit RGB are kept byte for byte (no re-encoding cost, no
  generation loss);
* everything else that decodes — WebP, BMP, grayscale, palette, RGBA/LA, CMYK, 16-bit — is converted to
  8-bit RGB (transparent pixels composited over white) and re-encoded as PNG, which is lossless, so the
  stored pixels are exactly the decoded source pixels.

Only the JPEG, PNG, WebP and BMP decoders are ever given caller bytes. The pixel count is read from the
header and checked against ``TSCOUT_MAX_IMAGE_PIXELS`` *before* any pixel is decoded (decompression
bombs), and every image is fully decoded once so truncated or corrupt files are caught here, not later
in an embedding job.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.datasets.errors import LimitExceeded

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_KEEP = {("JPEG", "RGB"), ("PNG", "RGB")}


class BadImage(Exception):
    """The file is not a decodable image; the ingest step rejects or skips it per ``on_bad_file``."""


@dataclass(frozen=True)
class NormalizedImage:
    data: bytes
    width: int
    height: int
    source_format: str
    source_mode: str
    reencoded: bool


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _named(exc: BaseException, name: str) -> str:
    """PIL's message with the in-memory buffer it names (``<_io.BytesIO object at 0x…>``) replaced by the file."""
    return f"{type(exc).__name__}: {_BUFFER_REPR.sub(repr(name), str(exc))}"


def normalize_image(data: bytes, name: str, *, max_pixels: int) -> NormalizedImage:
    """Validate one encoded image and return it in the stored form (see the module docstring).

    Raises :class:`LimitExceeded` for a decompression bomb (always fatal) and :class:`BadImage` for a file
    that does not decode (rejected or skipped by the caller).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except Image.DecompressionBombError as exc:
            raise LimitExceeded(
                f"image {name!r} is a decompression bomb ({exc}); the cap is TSCOUT_MAX_IMAGE_PIXELS"
            ) from None
        except Image.UnidentifiedImageError:
            raise BadImage(f"not a {', '.join(ALLOWED_FORMATS)} image PIL can identify") from None
        except Exception as exc:  # PIL raises many types for hostile bytes; all mean "not an image"
            raise BadImage(_named(exc, name)) from None
        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise LimitExceeded(
                    f"image {name!r} is {width}×{height} = {width * height} pixels, above the cap of "
                    f"{max_pixels} (decompression bomb?); the cap is TSCOUT_MAX_IMAGE_PIXELS"
                )
            if width < 1 or height < 1:
                raise BadImage(f"image has size {width}×{height}")
            fmt, mode = img.format or "?", img.mode
            try:
                img.load()
                if (fmt, mode) in _KEEP:
                    return NormalizedImage(data, width, height, fmt, mode, reencoded=False)
                rgb = _to_rgb(img)
            except LimitExceeded:
                raise
            except Exception as exc:
                raise BadImage(f"does not decode ({_named(exc, name)})") from None
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return NormalizedImage(out.getvalue(), width, height, fmt, mode, reencoded=True)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I"):
        # 16-bit grayscale: keep the top 8 bits instead of clipping everything above 255 to white
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        return Image.fromarray((wide >> 8).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
