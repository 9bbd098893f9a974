"""Labelled images → a class-folder zip archive, the upload format a caller would send.

Deterministic: members in input order, fixed timestamps, so the same images give the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import numpy as np

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def class_folder_zip(images: np.ndarray, labels: np.ndarray, root: str,
                     class_names: Sequence[str] | None = None) -> bytes:
    """``root/<class>/<k>.png`` for uint8 ``(n, h, w, 3)`` images; ``k`` counts within each class."""
    from PIL import Image

    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    counts: dict[int, int] = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for img, y in zip(images, labels, strict=True):
            c = int(y)
            k = counts[c] = counts.get(c, -1) + 1
            name = class_names[c] if class_names is not None else f"class_{c:02d}"
            png = io.BytesIO()
            Image.fromarray(np.asarray(img, dtype=np.uint8)).save(png, format="PNG", optimize=False)
            zf.writestr(zipfile.ZipInfo(f"{root}/{name}/{k:04d}.png", date_time=_ZIP_EPOCH), png.getvalue())
    return buf.getvalue()
