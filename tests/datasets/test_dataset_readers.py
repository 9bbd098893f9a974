"""Unit checks of the readers below the API: member names, tar header blocks, format detection, labels."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from app.datasets.archive import Limits, iter_archive, safe_member_name
from app.datasets.detect import detect_format
from app.datasets.errors import InvalidDataset, LimitExceeded, UnknownFormat
from app.datasets.images import BadImage, normalize_image
from app.datasets.labels import parse_labels
from tests.kits.datasets import (
    image_bytes,
    npz_bytes,
    parquet_bytes,
    png_header_only,
    tar_bytes,
    zip_bytes,
)

LIMITS = Limits(max_total_bytes=10**7, max_member_bytes=100_000, max_ratio=200, max_files=100, max_pixels=10**6)


@pytest.mark.parametrize("raw, expected", [("a/b.png", "a/b.png"), ("./a//b.png", "a/b.png"), ("a/./b", "a/b")])
def test_safe_names_are_normalised(raw, expected):
    assert safe_member_name(raw) == expected


@pytest.mark.parametrize("raw", ["../a", "a/../../b", "/etc/passwd", "C:/x", "c:x", "a\\b", "a\x00b", "", "./"])
def test_hostile_names_are_refused(raw):
    with pytest.raises(InvalidDataset):
        safe_member_name(raw)


def test_a_huge_pax_header_is_refused_before_it_is_read():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("a/x.png")
        info.pax_headers = {"comment": "x" * 300_000}
        tf.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    with pytest.raises(LimitExceeded, match="block"):
        list(iter_archive(buf, "tar", LIMITS))


def test_tar_members_are_read_in_order_without_keeping_headers():
    data = tar_bytes({f"d/{i}.txt": bytes([i]) * 10 for i in range(20)}, gz=True)
    got = [(m.name, m.read()) for m in iter_archive(io.BytesIO(data), "tar.gz", LIMITS)]
    assert got == [(f"d/{i}.txt", bytes([i]) * 10) for i in range(20)]


@pytest.mark.parametrize("data, name, fmt", [
    (zip_bytes({"a.png": b"x"}), "whatever.bin", "zip"),
    (npz_bytes(features=np.ones((2, 2))), "f.zip", "npz"),
    (tar_bytes({"a.png": b"x"}), "a", "tar"),
    (tar_bytes({"a.png": b"x"}, gz=True), "a.tgz", "tar.gz"),
    (parquet_bytes({"features": [[1.0]], "labels": [1]}), "p", "parquet"),
    (b"text,label\n", "t.csv", "csv"),
    (b'{"text": 1}\n', "t.jsonl", "jsonl"),
    (b'  {"text": 1}\n', "upload", "jsonl"),
])
def test_format_detection_reads_content(data, name, fmt):
    assert detect_format(io.BytesIO(data), name) == fmt


@pytest.mark.parametrize("data, name", [(b"text,label\n", "t.zip"), (b"\x89PNG\r\n\x1a\n", "x.png"), (b"x", "")])
def test_unknown_formats_are_refused(data, name):
    with pytest.raises(UnknownFormat):
        detect_format(io.BytesIO(data), name)


def test_image_checks():
    with pytest.raises(LimitExceeded, match="TSCOUT_MAX_IMAGE_PIXELS"):
        normalize_image(png_header_only(5000, 5000), "bomb.png", max_pixels=10**6)
    with pytest.raises(BadImage):
        normalize_image(b"GIF89a" + b"\0" * 20, "x.png", max_pixels=10**6)  # GIF decoder is never offered
    kept = image_bytes((1, 2, 3), fmt="JPEG")
    assert normalize_image(kept, "x.jpg", max_pixels=10**6).data == kept


def _where(i: int) -> str:
    return f"row {i}"


def test_label_rules():
    p = parse_labels(["y"], [["1", "2.5", "3"]], task_type=None, where=_where)
    assert p.task_type == "regression" and p.labels.shape == (3, 1)
    p = parse_labels(["y"], [["1", "1", "2", "2"]], task_type="classification", where=_where)
    assert p.task_type == "classification" and p.classes == ["1", "2"]
    p = parse_labels(["y"], [[True, False, True, False]], task_type=None, where=_where)
    assert p.classes == ["false", "true"]
    p = parse_labels(["a", "b"], [["1", "0"], ["yes", "no"]], task_type="multilabel", where=_where)
    assert p.labels.tolist() == [[1, 1], [0, 0]] and p.target_names == ["a", "b"]
    with pytest.raises(InvalidDataset, match="row 1: multilabel column 'a' value 'maybe'"):
        parse_labels(["a", "b"], [["1", "maybe"], ["0", "1"]], task_type="multilabel", where=_where)
    with pytest.raises(InvalidDataset, match="column 'b' is not numeric"):
        parse_labels(["a", "b"], [["1", "2"], ["x", "y"]], task_type=None, where=_where)
    with pytest.raises(InvalidDataset, match="row 1: label column 'y' value 'inf' is not a finite number"):
        parse_labels(["y"], [["1", "inf"]], task_type=None, where=_where)
    with pytest.raises(InvalidDataset, match="row 2: label column 'y' is empty"):
        parse_labels(["y"], [["a", "a", " "]], task_type=None, where=_where)
    with pytest.raises(InvalidDataset, match="task_type 'ranking'"):
        parse_labels(["y"], [["a"]], task_type="ranking", where=_where)
