"""Safe, streaming reading of zip, tar and tar.gz archives: nothing is ever extracted to disk.

Every member is read into memory one at a time, through counters that enforce the caps *while reading*
(actual decompressed bytes, not the sizes the headers claim):

* total uncompressed bytes of the archive (``TSCOUT_MAX_ARCHIVE_TOTAL_BYTES``),
* bytes of any one member, and of any one block the tar parser asks for (``TSCOUT_MAX_MEMBER_BYTES``),
* compression ratio — per member in a zip, over the whole stream in a tar.gz (``TSCOUT_MAX_COMPRESSION_RATIO``),
  checked once at least :data:`RATIO_FLOOR_BYTES` have come out, so tiny well-compressed files pass,
* number of entries (``TSCOUT_MAX_ARCHIVE_FILES``).

Member names are refused (the whole upload, not just the member) when they are absolute, contain ``..``,
a drive letter, a backslash or a NUL; tar symlinks, hard links, devices, FIFOs and sparse files, and zip
symlinks and encrypted members are refused too. Duplicate names are refused because which copy is "the"
file would depend on member order.
"""

from __future__ import annotations

import functools
import gzip
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.datasets.errors import DatasetRejected, InvalidDataset, LimitExceeded

RATIO_FLOOR_BYTES = 1024 * 1024
CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
ARCHIVE_KINDS = ("zip", "tar", "tar.gz")


@dataclass(frozen=True)
class Limits:
    """The hostile-input caps (all from settings, see :meth:`from_settings`)."""

    max_total_bytes: int
    max_member_bytes: int
    max_ratio: float
    max_files: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            max_total_bytes=settings.max_archive_total_bytes,
            max_member_bytes=settings.max_member_bytes,
            max_ratio=settings.max_compression_ratio,
            max_files=settings.max_archive_files,
            max_pixels=settings.max_image_pixels,
        )


@dataclass(frozen=True)
class Member:
    """One regular file of an archive. Call :meth:`read` before asking for the next member."""

    name: str
    _read: Callable[[], bytes]

    def read(self) -> bytes:
        return self._read()


def safe_member_name(raw: str) -> str:
    """The normalised POSIX name of an archive entry, or :class:`InvalidDataset` if it is hostile."""
    if not raw or "\x00" in raw:
        raise InvalidDataset(f"archive member name {raw!r} is empty or contains a NUL byte")
    if "\\" in raw:
        raise InvalidDataset(f"archive member {raw!r} contains a backslash; only '/' separators are accepted")
    if raw.startswith("/"):
        raise InvalidDataset(f"archive member {raw!r} has an absolute path")
    if _DRIVE.match(raw):
        raise InvalidDataset(f"archive member {raw!r} starts with a drive letter")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidDataset(f"archive member {raw!r} contains '..' (path traversal)")
    if not parts:
        raise InvalidDataset(f"archive member name {raw!r} names no file")
    return "/".join(parts)


class _Budget:
    """Running totals of one archive, checked on every increment."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self.files = 0

    def add_entry(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise LimitExceeded(
                f"archive has more than {self.limits.max_files} entries (at {name!r}); "
                "the cap is TSCOUT_MAX_ARCHIVE_FILES"
            )

    def add_bytes(self, n: int, where: str) -> None:
        self.total += n
        if self.total > self.limits.max_total_bytes:
            raise LimitExceeded(
                f"archive expands to more than {self.limits.max_total_bytes} bytes (reached at {where!r}); "
                "the cap is TSCOUT_MAX_ARCHIVE_TOTAL_BYTES"
            )

    def check_ratio(self, out_bytes: int, in_bytes: int, where: str) -> None:
        if out_bytes > RATIO_FLOOR_BYTES and out_bytes > self.limits.max_ratio * max(in_bytes, 1):
            raise LimitExceeded(
                f"{where} expands {out_bytes} bytes from {in_bytes} compressed bytes, a compression ratio "
                f"above {self.limits.max_ratio:g} (zip bomb?); the cap is TSCOUT_MAX_COMPRESSION_RATIO"
            )

    def check_member_size(self, size: int, name: str) -> None:
        if size > self.limits.max_member_bytes:
            raise LimitExceeded(
                f"archive member {name!r} is larger than {self.limits.max_member_bytes} bytes; "
                "the cap is TSCOUT_MAX_MEMBER_BYTES"
            )


def iter_archive(fh: BinaryIO, kind: str, limits: Limits) -> Iterator[Member]:
    """The regular files of an archive in stored order, names validated, caps enforced while reading."""
    if kind == "zip":
        return _iter_zip(fh, _Budget(limits))
    if kind in ("tar", "tar.gz"):
        return _iter_tar(fh, kind, _Budget(limits))
    raise ValueError(f"unknown archive kind {kind!r}; expected one of {ARCHIVE_KINDS}")


# -- zip ------------------------------------------------------------------------------------------
def _iter_zip(fh: BinaryIO, budget: _Budget) -> Iterator[Member]:
    try:
        zf = zipfile.ZipFile(fh)
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidDataset(f"not a readable zip archive: {exc}") from None
    if len(infos) > budget.limits.max_files:
        raise LimitExceeded(
            f"archive has {len(infos)} entries, more than {budget.limits.max_files}; "
            "the cap is TSCOUT_MAX_ARCHIVE_FILES"
        )
    seen: set[str] = set()
    with zf:
        # local-header order reads the file front to back
        for info in sorted(infos, key=lambda i: i.header_offset):
            budget.add_entry(info.orig_filename)
            name = safe_member_name(info.orig_filename)
            fmt = stat.S_IFMT(info.external_attr >> 16)
            if fmt == stat.S_IFLNK:
                raise InvalidDataset(f"archive member {name!r} is a symbolic link; links are refused")
            if fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise InvalidDataset(f"archive member {name!r} is not a regular file (mode {fmt:o})")
            if info.is_dir() or fmt == stat.S_IFDIR:
                continue
            if info.flag_bits & 0x1:
                raise InvalidDataset(f"archive member {name!r} is encrypted; encrypted archives are refused")
            if name in seen:
                raise InvalidDataset(f"archive has two members named {name!r}")
            seen.add(name)
            # headers are checked first only to fail fast; _read_zip_member counts the real bytes
            budget.check_member_size(info.file_size, name)
            budget.check_ratio(info.file_size, info.compress_size, f"archive member {name!r}")
            yield Member(name, functools.partial(_read_zip_member, zf, info, name, budget))


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: _Budget) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        with zf.open(info) as src:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                budget.check_member_size(size, name)
                budget.add_bytes(len(chunk), name)
                budget.check_ratio(size, info.compress_size, f"archive member {name!r}")
                parts.append(chunk)
    except DatasetRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError,
            ValueError) as exc:
        raise InvalidDataset(f"archive member {name!r} is corrupt: {exc}") from None
    return b"".join(parts)


# -- tar ------------------------------------------------------------------------------------------
class _RawCounter:
    """Counts compressed bytes consumed from the upload (the denominator of the stream's ratio)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.count += len(data)
        return data


class _ForwardStream:
    """The (decompressed) tar stream as tarfile sees it: forward-only, every byte counted.

    tarfile reads PAX and GNU long-name headers with one ``read(size)`` sized by the header itself, so the
    block size is capped here before any memory is allocated for it.
    """

    def __init__(self, inner: Any, budget: _Budget, raw: _RawCounter | None) -> None:
        self._inner = inner
        self._budget = budget
        self._raw = raw
        self._pos = 0
        self.where = "tar stream"

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._budget.limits.max_member_bytes:
            raise LimitExceeded(
                f"tar archive asks for a {n}-byte block at offset {self._pos} (near {self.where!r}), above "
                f"{self._budget.limits.max_member_bytes} bytes; the cap is TSCOUT_MAX_MEMBER_BYTES"
            )
        data = self._inner.read(n)
        self._pos += len(data)
        self._budget.add_bytes(len(data), self.where)
        if self._raw is not None:
            self._budget.check_ratio(self._budget.total, self._raw.count, "the tar.gz stream")
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self._pos + offset if whence == 1 else None
        if target is None or target < self._pos:
            raise InvalidDataset("tar archive is not laid out sequentially (it needs seeking backwards)")
        while self._pos < target:
            if not self.read(min(CHUNK, target - self._pos)):
                break
        return self._pos


def _refuse_special(m: tarfile.TarInfo, name: str) -> None:
    if m.issym():
        raise InvalidDataset(f"tar member {name!r} is a symbolic link to {m.linkname!r}; links are refused")
    if m.islnk():
        raise InvalidDataset(f"tar member {name!r} is a hard link to {m.linkname!r}; links are refused")
    if m.ischr() or m.isblk():
        raise InvalidDataset(f"tar member {name!r} is a device file; devices are refused")
    if m.isfifo():
        raise InvalidDataset(f"tar member {name!r} is a FIFO; special files are refused")
    if m.issparse():
        raise InvalidDataset(f"tar member {name!r} is a sparse file; sparse files are refused")
    if not (m.isreg() or m.isdir()):
        raise InvalidDataset(f"tar member {name!r} has unsupported type {m.type!r}")


def _iter_tar(fh: BinaryIO, kind: str, budget: _Budget) -> Iterator[Member]:
    raw = _RawCounter(fh) if kind == "tar.gz" else None
    inner: Any = gzip.GzipFile(fileobj=raw, mode="rb") if raw is not None else fh
    stream = _ForwardStream(inner, budget, raw)
    errors = (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError)
    try:
        tf = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed by the with-block below
    except DatasetRejected:
        raise
    except errors as exc:
        raise InvalidDataset(f"not a readable {kind} archive: {exc}") from None
    seen: set[str] = set()
    with tf:
        while True:
            try:
                m = tf.next()
            except DatasetRejected:
                raise
            except errors as exc:
                raise InvalidDataset(f"corrupt {kind} archive after {stream.where!r}: {exc}") from None
            if m is None:
                return
            tf.members.clear()  # tarfile keeps every header otherwise: memory would grow with the archive
            budget.add_entry(m.name)
            name = safe_member_name(m.name)
            stream.where = name
            _refuse_special(m, name)
            if m.isdir():
                continue
            if name in seen:
                raise InvalidDataset(f"archive has two members named {name!r}")
            seen.add(name)
            budget.check_member_size(m.size, name)
            yield Member(name, functools.partial(_read_tar_member, tf, m, name, kind, errors))


def _read_tar_member(tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, kind: str,
                     errors: tuple[type[BaseException], ...]) -> bytes:
    try:
        src = tf.extractfile(m)
        if src is None:
            raise InvalidDataset(f"tar member {name!r} has no data")
        parts: list[bytes] = []
        while chunk := src.read(CHUNK):
            parts.append(chunk)
    except DatasetRejected:
        raise
    except errors as exc:
        raise InvalidDataset(f"{kind} member {name!r} is corrupt or truncated: {exc}") from None
    data = b"".join(parts)
    if len(data) != m.size:
        raise InvalidDataset(f"{kind} member {name!r} is truncated ({len(data)} of {m.size} bytes)")
    return data
