"""Which upload format a file is, from its first bytes (magic numbers) and, for text, its extension.

Binary formats are recognised by content, never by name alone, so ``evil.zip`` that is not a zip is
refused with 415 rather than handed to the wrong reader.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from app.datasets.errors import UnknownFormat

SUPPORTED = "a .zip, .tar or .tar.gz image archive, a .csv or .jsonl text file, or a .npz or .parquet features file"
TEXT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    # pre-POSIX (v7) tar: no magic, but the header checksum must add up
    try:
        stored = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return stored == computed


def detect_format(fh: BinaryIO, filename: str) -> str:
    """One of ``zip``, ``tar``, ``tar.gz``, ``npz``, ``parquet``, ``csv``, ``jsonl``; else :class:`UnknownFormat`."""
    fh.seek(0)
    head = fh.read(1024)
    fh.seek(0)
    suffix = Path(filename or "").suffix.lower()
    shown = filename or "<unnamed upload>"
    if not head:
        raise UnknownFormat(f"upload {shown!r} is empty")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz" if suffix == ".npz" or _all_npy(fh) else "zip"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                block = gz.read(512)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnknownFormat(f"upload {shown!r} is a damaged gzip file: {exc}") from None
        finally:
            fh.seek(0)
        if _is_tar_header(block):
            return "tar.gz"
        raise UnknownFormat(f"upload {shown!r} is gzip-compressed but not a tar archive; expected {SUPPORTED}")
    if head.startswith(b"PAR1"):
        return "parquet"
    if _is_tar_header(head[:512]):
        return "tar"
    if suffix in TEXT_SUFFIXES:
        return TEXT_SUFFIXES[suffix]
    if suffix in ("", ".txt", ".json"):
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith(b"{"):
            return "jsonl"
    raise UnknownFormat(f"cannot tell the format of upload {shown!r}; expected {SUPPORTED}")


def _all_npy(fh: BinaryIO) -> bool:
    try:
        with zipfile.ZipFile(fh) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False
    finally:
        fh.seek(0)
    return bool(names) and all(n.endswith(".npy") for n in names)
