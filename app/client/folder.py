"""A folder of class sub-folders uploaded as a zip built on the fly: :class:`ZipStream` is a read-only file
object whose bytes are produced member by member while the upload reads them, so neither the archive nor a
whole member is ever held in memory (beyond one chunk) or written to disk.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 256 * 1024


def folder_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` in a stable order, skipping hidden files and folders (``.DS_Store``,
    ``.git``); raises when there is none or when a link would leave the folder."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                raise ValueError(f"{path} is a symbolic link; uploads take regular files only")
            if path.is_file():
                found.append(path)
    if not found:
        raise ValueError(f"folder {root} holds no files")
    return found


class _Sink:
    """What ``zipfile`` writes into: an append-only buffer the stream drains (not seekable, so ``zipfile``
    writes data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


class ZipStream:
    """A read-only, non-seekable file object: the zip of ``files`` (named relative to ``root``'s parent, so
    the archive has one root folder), stored uncompressed — images are compressed already."""

    def __init__(self, root: Path, files: list[Path] | None = None) -> None:
        self.root = Path(root)
        self.files = files if files is not None else folder_files(self.root)
        self.name = f"{self.root.name}.zip"
        self._chunks = self._generate()
        self._pending = b""
        self.bytes_read = 0

    def _generate(self) -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[arg-type]
            for path in self.files:
                arcname = f"{self.root.name}/{path.relative_to(self.root).as_posix()}"
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = zipfile.ZIP_STORED
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        if len(sink.buffer) >= _CHUNK:
                            yield sink.take()
                yield sink.take()
        yield sink.take()  # the central directory

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            try:
                self._pending += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        self.bytes_read += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk
