"""Artifact store: a local directory by default, any fsspec URL (``s3://bucket/prefix``, ``memory://x``) by setting.

Writes are atomic (temporary name, then rename), so a reader never sees half an artifact and an
interrupted write leaves nothing behind. Keys are relative POSIX paths; content-addressed keys come
from :func:`content_key`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

__all__ = ["ArtifactStore", "content_key", "open_store"]


def content_key(namespace: str, digest: str, suffix: str = "") -> str:
    """``namespace/ab/abcdef…suffix``: a content-addressed key fanned out over 256 folders."""
    if len(digest) < 8 or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"digest must be lowercase hex, got {digest!r}")
    return f"{namespace}/{digest[:2]}/{digest}{suffix}"


def _check_key(key: str) -> str:
    p = PurePosixPath(key)
    if not key or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\\" in key:
        raise ValueError(f"artifact key must be a relative path without '..', got {key!r}")
    return p.as_posix()


class ArtifactStore:
    """Atomic blob store over a local directory or an fsspec filesystem."""

    def __init__(self, url: str) -> None:
        self.url = url
        if "://" in url and not url.startswith("file://"):
            import fsspec

            self._fs, root = fsspec.core.url_to_fs(url)
            self._root = root.rstrip("/")
            self._local: Path | None = None
            self._fs.makedirs(self._root, exist_ok=True)
        else:
            self._fs = None
            self._local = Path(url.removeprefix("file://")).resolve()
            self._local.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self._local is not None

    def local_path(self, key: str) -> Path:
        """Filesystem path of a key in a local store (for memory-mapping); remote stores raise."""
        if self._local is None:
            raise RuntimeError("local_path() is only available on a local artifact store")
        return self._local / _check_key(key)

    def key_of(self, path: str | os.PathLike[str]) -> str | None:
        """The key a filesystem path (or remote path) of this store stands for; None if it is outside the
        store. Errors name artifacts by key, never by server path."""
        text = os.fspath(path)
        if self._local is not None:
            try:
                return Path(text).resolve().relative_to(self._local).as_posix()
            except ValueError:
                return None
        root = f"{self._root}/"
        return text[len(root):] if text.startswith(root) else None

    @property
    def root_paths(self) -> tuple[str, ...]:
        """The prefixes this store's server paths start with (what :func:`app.errors.public_text` hides)."""
        if self._local is not None:
            return (str(self._local),)
        return (self._root,)

    def _remote(self, key: str) -> str:
        return f"{self._root}/{_check_key(key)}"

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Stream into ``key``; the artifact appears only if the block finishes without an error."""
        key = _check_key(key)
        if self._local is not None:
            dest = self._local / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            tmp = f"{self._remote(key)}.tmp-{uuid.uuid4().hex}"
            try:
                with self._fs.open(tmp, "wb") as fh:
                    yield fh
                self._fs.mv(tmp, self._remote(key))
            except BaseException:
                if self._fs.exists(tmp):
                    self._fs.rm(tmp)
                raise

    def put_bytes(self, key: str, data: bytes) -> str:
        with self.writer(key) as fh:
            fh.write(data)
        return key

    def put_file(self, key: str, path: Path) -> str:
        with self.writer(key) as fh, open(path, "rb") as src:
            shutil.copyfileobj(src, fh, 1024 * 1024)
        return key

    def put_array(self, key: str, array: np.ndarray) -> str:
        with self.writer(key) as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        return key

    # -- reading -------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        if self._local is not None:
            return (self._local / _check_key(key)).is_file()
        return self._fs.exists(self._remote(key))

    def open(self, key: str) -> BinaryIO:
        if self._local is not None:
            return open(self._local / _check_key(key), "rb")
        return self._fs.open(self._remote(key), "rb")

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def get_array(self, key: str, *, mmap: bool = False) -> np.ndarray:
        if mmap and self._local is not None:
            return np.load(self.local_path(key), mmap_mode="r", allow_pickle=False)
        with self.open(key) as fh:
            return np.load(io.BytesIO(fh.read()), allow_pickle=False)

    def size(self, key: str) -> int:
        if self._local is not None:
            return (self._local / _check_key(key)).stat().st_size
        return int(self._fs.size(self._remote(key)))

    # -- removal and health ----------------------------------------------------------------------
    def delete(self, key: str) -> None:
        if self._local is not None:
            (self._local / _check_key(key)).unlink(missing_ok=True)
        elif self._fs.exists(self._remote(key)):
            self._fs.rm(self._remote(key))

    def delete_prefix(self, prefix: str) -> None:
        prefix = _check_key(prefix)
        if self._local is not None:
            shutil.rmtree(self._local / prefix, ignore_errors=True)
        elif self._fs.exists(self._remote(prefix)):
            self._fs.rm(self._remote(prefix), recursive=True)

    def iter_files(self) -> Iterator[tuple[str, float | None]]:
        """Every object in the store as ``(key, modified)`` — a Unix time, or None where the backend does
        not say (an orphan sweep never removes what it cannot date). Temporary names of writes in progress
        are listed too."""
        if self._local is not None:
            for folder, _, names in os.walk(self._local):
                for name in names:
                    path = Path(folder) / name
                    try:
                        modified: float | None = path.stat().st_mtime
                    except FileNotFoundError:  # removed while we walked
                        continue
                    yield path.relative_to(self._local).as_posix(), modified
            return
        for path, info in self._fs.find(self._root, detail=True).items():
            stamp = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
            if hasattr(stamp, "timestamp"):
                stamp = stamp.timestamp()
            yield path[len(self._root) + 1:], (float(stamp) if isinstance(stamp, int | float) else None)

    def prune_empty_folders(self) -> None:
        """Remove empty folders of a local store (left behind by deletions); remote stores have none."""
        if self._local is None:
            return
        for folder, _, _ in sorted(os.walk(self._local), key=lambda item: -len(item[0])):
            if Path(folder) != self._local:
                with contextlib.suppress(OSError):
                    Path(folder).rmdir()  # only succeeds when empty

    def check_writable(self) -> None:
        """Write, read back and delete a probe object; raises if the store is not usable."""
        key = f"_health/{uuid.uuid4().hex}"
        payload = hashlib.sha256(key.encode()).digest()
        self.put_bytes(key, payload)
        try:
            if self.get_bytes(key) != payload:
                raise OSError("artifact store returned different bytes than written")
        finally:
            self.delete(key)


def open_store(url: str) -> ArtifactStore:
    return ArtifactStore(url)


def copy_capped(source: BinaryIO, dest: Path, cap: int, *, too_large: type[Exception], what: str,
                chunk: int = 1024 * 1024) -> int:
    """Stream ``source`` into the local file ``dest``, raising ``too_large`` as soon as it passes ``cap``
    bytes — an upload is never buffered whole in memory, and an oversize one is refused while streaming."""
    total = 0
    with open(dest, "wb") as out:
        while block := source.read(chunk):
            total += len(block)
            if total > cap:
                raise too_large(f"{what} is larger than {cap} bytes")
            out.write(block)
    return total
