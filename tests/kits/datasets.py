"""Test data built in memory: tiny images, archives (well-formed and hostile), text and feature files."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from app.db.tables import Dataset


def color_for(cls_index: int, i: int) -> tuple[int, int, int]:
    """A near-gray colour: dark for class 0, bright for class 1 (survives grayscale and JPEG), and the
    blue channel tells samples apart."""
    v = 30 + 190 * cls_index
    return (v, v, v - 2 * i)


def image_bytes(color, *, size=(8, 6), mode="RGB", fmt="PNG") -> bytes:
    img = Image.new("RGB", size, color)
    if mode == "RGBA":
        img = img.convert("RGBA")
    elif mode == "L":
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def class_folder_files(classes=("cat", "dog"), per_class=4, root="data", fmt="PNG") -> dict[str, bytes]:
    return {
        f"{root}/{cls}/{i:03d}.{fmt.lower()}": image_bytes(color_for(c, i), fmt=fmt)
        for c, cls in enumerate(classes)
        for i in range(per_class)
    }


def zip_bytes(files: dict[str, bytes] | Iterable[tuple[str, bytes]], *, compression=zipfile.ZIP_DEFLATED,
              date_time=(2020, 1, 1, 0, 0, 0)) -> bytes:
    buf = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


def tar_bytes(files: dict[str, bytes] | Iterable[tuple[str, bytes]], *, gz=False, mtime=0,
              extra: Iterable[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def tar_link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width × height`` pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def parquet_bytes(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(client, data: bytes, filename: str, **form):
    fields = {k: v for k, v in form.items() if v is not None}
    return client.post("/v1/datasets", files={"file": (filename, data)}, data=fields)


def dataset_rows(server) -> int:
    with server.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(Dataset))


def stored_files(server) -> list[str]:
    root = server.runtime.store.local_path("datasets")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_left(server) -> None:
    assert dataset_rows(server) == 0
    assert stored_files(server) == []
