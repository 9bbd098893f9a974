"""Hostile and invalid uploads: each answers a 4xx whose message names the problem, and leaves no
artifact, no row and no temporary file behind (SQLite and PostgreSQL, real HTTP)."""

from __future__ import annotations

import os
import select
import socket
import stat
import tarfile
import tempfile
import time
import zipfile

import numpy as np
import pytest

from tests.kits.datasets import (
    assert_nothing_left,
    class_folder_files,
    jsonl_bytes,
    npz_bytes,
    png_header_only,
    tar_bytes,
    tar_link,
    upload,
    zip_bytes,
)

GOOD = class_folder_files(per_class=2)
SMALL_CAPS = {"max_member_bytes": 100_000, "max_archive_total_bytes": 200_000, "max_upload_bytes": 300_000}


def _zip_symlink() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in GOOD.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("data/cat/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def _zip_lying_about_size() -> bytes:
    """A 3 MB member whose central directory claims 1,000 bytes: the reader must trust actual bytes."""
    data = bytearray(zip_bytes({"data/cat/x.png": b"\0" * 3_000_000, **GOOD}))
    cd = data.rfind(b"PK\x01\x02", 0, len(data))
    while cd > 0 and data[cd + 46 : cd + 46 + 14] != b"data/cat/x.png":
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    data[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    data[22:26] = (1000).to_bytes(4, "little")  # the local header of the first member, too
    return bytes(data)


def _random(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


def _noise_png(seed: int) -> bytes:
    """An incompressible ~87 KB PNG (random pixels): a valid image that weighs on the archive caps."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (170, 170, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _csv(text: str) -> bytes:
    return text.encode()


CASES = [
    # name, payload, filename, form, server overrides, status, fragment of the detail
    ("traversal", zip_bytes({**GOOD, "data/cat/../../evil.png": GOOD["data/cat/000.png"]}), "a.zip", {}, {}, 422,
     "path traversal"),
    ("absolute", zip_bytes({**GOOD, "/etc/cat/x.png": b"x"}), "a.zip", {}, {}, 422, "absolute path"),
    ("drive-letter", zip_bytes({**GOOD, "C:/data/cat/x.png": b"x"}), "a.zip", {}, {}, 422, "drive letter"),
    ("backslash", zip_bytes({**GOOD, "data\\..\\..\\x.png": b"x"}), "a.zip", {}, {}, 422, "backslash"),
    ("tar-traversal", tar_bytes({**GOOD, "../../x.png": b"x"}), "a.tar", {}, {}, 422, "path traversal"),
    ("tar-absolute", tar_bytes({**GOOD, "/tmp/x.png": b"x"}, gz=True), "a.tgz", {}, {}, 422, "absolute path"),
    ("tar-symlink", tar_bytes(GOOD, extra=[tar_link("data/cat/l.png", "/etc/passwd", tarfile.SYMTYPE)]), "a.tar",
     {}, {}, 422, "symbolic link"),
    ("tar-hardlink", tar_bytes(GOOD, gz=True, extra=[tar_link("data/cat/h.png", "/etc/shadow", tarfile.LNKTYPE)]),
     "a.tar.gz", {}, {}, 422, "hard link"),
    ("tar-device", tar_bytes(GOOD, extra=[tar_link("data/cat/dev.png", "", tarfile.CHRTYPE)]), "a.tar", {}, {}, 422,
     "device"),
    ("zip-symlink", _zip_symlink(), "a.zip", {}, {}, 422, "symbolic link"),
    ("zip-bomb-ratio", zip_bytes({**GOOD, "data/cat/bomb.png": b"\0" * 3_000_000}), "a.zip", {}, {}, 413,
     "TSCOUT_MAX_COMPRESSION_RATIO"),
    ("tar-gz-bomb-ratio", tar_bytes({**GOOD, "data/cat/bomb.png": b"\0" * 3_000_000}, gz=True), "a.tar.gz", {}, {},
     413, "TSCOUT_MAX_COMPRESSION_RATIO"),
    ("member-cap", zip_bytes({**GOOD, "data/cat/big.png": _random(150_000)}), "a.zip", {}, SMALL_CAPS, 413,
     "TSCOUT_MAX_MEMBER_BYTES"),
    ("tar-member-cap", tar_bytes({**GOOD, "data/cat/big.png": _random(150_000)}), "a.tar", {}, SMALL_CAPS, 413,
     "TSCOUT_MAX_MEMBER_BYTES"),
    ("total-cap", zip_bytes({**GOOD, **{f"data/cat/r{i}.png": _noise_png(i) for i in range(3)}}), "a.zip", {},
     SMALL_CAPS, 413, "TSCOUT_MAX_ARCHIVE_TOTAL_BYTES"),
    ("tar-total-cap", tar_bytes({**GOOD, **{f"data/cat/r{i}.png": _noise_png(i) for i in range(3)}}, gz=True),
     "a.tar.gz", {}, SMALL_CAPS, 413, "TSCOUT_MAX_ARCHIVE_TOTAL_BYTES"),
    ("file-count", zip_bytes({**GOOD, **{f"data/dog/{i}.txt": b"x" for i in range(30)}}), "a.zip", {},
     {"max_archive_files": 20}, 413, "TSCOUT_MAX_ARCHIVE_FILES"),
    ("tar-file-count", tar_bytes({**GOOD, **{f"data/dog/{i}.txt": b"x" for i in range(30)}}), "a.tar", {},
     {"max_archive_files": 20}, 413, "TSCOUT_MAX_ARCHIVE_FILES"),
    ("zip-size-lie", _zip_lying_about_size(), "a.zip", {}, {}, 422, "corrupt"),
    ("pixel-bomb", zip_bytes({**GOOD, "data/cat/bomb.png": png_header_only(100_000, 100_000)}), "a.zip",
     {"on_bad_file": "skip"}, {}, 413, "TSCOUT_MAX_IMAGE_PIXELS"),
    ("pixel-cap-setting", zip_bytes(class_folder_files(per_class=2)), "a.zip", {}, {"max_image_pixels": 40}, 413,
     "TSCOUT_MAX_IMAGE_PIXELS"),
    ("file-part-over-cap", _random(50_100), "a.zip", {}, {"max_upload_bytes": 50_000}, 413, "TSCOUT_MAX_UPLOAD_BYTES"),
    ("non-utf8-csv", b"text,label\nhello,a\nbonjour,a\ncaf\xe9,b\nthe,b\n", "t.csv", {}, {}, 422,
     "line 4 is not valid UTF-8"),
    ("non-utf8-jsonl", b'{"text": "ok", "label": "a"}\n{"text": "\xff\xfe", "label": "a"}\n', "t.jsonl", {}, {}, 422,
     "line 2 is not valid UTF-8"),
    ("corrupt-image", zip_bytes({**GOOD, "data/dog/broken.png": GOOD["data/dog/000.png"][:40]}), "a.zip", {}, {},
     422, "'data/dog/broken.png' is corrupt"),
    ("unknown-format", b"\x00\x01\x02 not a dataset", "x.bin", {}, {}, 415, "cannot tell the format"),
    ("fake-zip", b"just text pretending", "x.zip", {}, {}, 415, "cannot tell the format"),
    ("empty", b"", "x.csv", {}, {}, 415, "empty"),
    ("gzip-not-tar", __import__("gzip").compress(b"hello"), "x.gz", {}, {}, 415, "not a tar archive"),
    ("missing-label-column", _csv("text,kind\na,x\nb,y\n"), "t.csv", {}, {}, 422, "no label column"),
    ("named-label-column-missing", _csv("text,label\na,x\nb,y\n"), "t.csv", {"label_column": "nope"}, {}, 422,
     "no label column(s) ['nope']"),
    ("mixed-label-types", _csv("text,label\na,1\nb,2.5\nc,cat\nd,dog\n"), "t.csv", {}, {}, 422,
     "mixes numbers and text"),
    ("singleton-class", _csv("text,label\na,x\nb,x\nc,y\n"), "t.csv", {}, {}, 422, "'y' have fewer than 2 samples"),
    ("one-class", zip_bytes({k: v for k, v in GOOD.items() if "/cat/" in k}), "a.zip", {}, {}, 422,
     "all images are in one folder"),
    ("no-images", zip_bytes({"data/cat/a.txt": b"x", "data/dog/b.txt": b"y"}), "a.zip", {}, {}, 422,
     "no images found"),
    ("empty-text", _csv("text,label\na,x\n  ,x\nc,y\nd,y\n"), "t.csv", {}, {}, 422, "line 3: text column 'text' is empty"),
    ("non-finite-features", npz_bytes(features=np.array([[1.0, 2.0], [np.nan, 1.0], [0.0, 1.0], [1.0, 1.0]]),
                                      labels=np.array([0, 0, 1, 1])), "f.npz", {}, {}, 422, "row 1 has a non-finite"),
    ("length-mismatch", npz_bytes(features=np.ones((4, 2)), labels=np.array([0, 0, 1])), "f.npz", {}, {}, 422,
     "features have 4 rows but labels have 3"),
    ("npz-object-array", npz_bytes(features=np.ones((4, 2)), labels=np.array([0, "a", None, 1], dtype=object)),
     "f.npz", {}, {}, 422, "without pickle"),
    ("manifest-unknown-path", zip_bytes({**GOOD, "manifest.csv": b"path,label\ndata/cat/000.png,a\nnope.png,b\n"}),
     "a.zip", {}, {}, 422, "line 3: path 'nope.png' is not an image"),
    ("jsonl-not-object", jsonl_bytes([{"text": "a", "label": "x"}]) + b"[1, 2]\n", "t.jsonl", {}, {}, 422,
     "line 2 is a JSON list"),
]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Route every temporary file of the server (uploads, spools) to a folder the test can inspect."""
    folder = tmp_path / "server-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_or_invalid_upload_is_refused_and_leaves_nothing(live_server_factory, private_tmp, case):
    _, payload, filename, form, overrides, status, fragment = case
    server = live_server_factory(**overrides)
    with server.client() as client:
        r = upload(client, payload, filename, **form)
    assert r.status_code == status, r.text
    body = r.json()
    assert fragment in body["detail"], body
    assert "Traceback" not in r.text
    assert_nothing_left(server)
    assert list(private_tmp.iterdir()) == []


def test_corrupt_image_is_skipped_and_counted_with_on_bad_file_skip(client):
    files = {**GOOD, "data/dog/broken.png": b"\x89PNG\r\n\x1a\n garbage", "data/dog/empty.jpg": b""}
    r = upload(client, zip_bytes(files), "a.zip", on_bad_file="skip")
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert r.json()["num_samples"] == 4
    assert stats["skipped_files"]["count"] == 2
    assert {s["name"] for s in stats["skipped_files"]["items"]} == {"data/dog/broken.png", "data/dog/empty.jpg"}
    assert upload(client, zip_bytes(files), "a.zip", on_bad_file="sometimes").status_code == 422


def _multipart(payload: bytes, boundary: str = "tscoutboundary") -> tuple[bytes, bytes, str]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail, f"multipart/form-data; boundary={boundary}"


def test_oversize_upload_with_content_length_is_refused_before_reading(live_server_factory, private_tmp):
    server = live_server_factory(max_upload_bytes=50_000)
    with server.client() as client:
        r = upload(client, _random(200_000), "a.zip")
    assert r.status_code == 413 and "request body is larger than" in r.json()["detail"]
    assert "TSCOUT_MAX_UPLOAD_BYTES" in r.json()["detail"]
    assert_nothing_left(server)
    assert list(private_tmp.iterdir()) == []


def test_oversize_chunked_upload_is_cut_off_while_streaming(live_server_factory, private_tmp):
    """No Content-Length: the 413 must come back while the client is still sending, long before 3 MB."""
    server = live_server_factory(max_upload_bytes=50_000)
    head, _, content_type = _multipart(b"")
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                     + f"Content-Type: {content_type}\r\n\r\n".encode())
        chunk = head + b"\0" * 8192
        for _ in range(400):  # 3.2 MB if nobody stops it
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:
                break
            sent += len(chunk)
            chunk = b"\0" * 8192
            if select.select([sock], [], [], 0.01)[0]:
                answer = sock.recv(65536)
                break
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body is larger than" in answer and b"TSCOUT_MAX_UPLOAD_BYTES" in answer
    assert sent < 1_000_000, sent
    assert_nothing_left(server)
    assert list(private_tmp.iterdir()) == []


def test_interrupted_upload_leaves_nothing(live_server_factory, private_tmp):
    server = live_server_factory()
    head, _, content_type = _multipart(b"")
    partial = head + zip_bytes(GOOD)[:500]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/datasets HTTP/1.1\r\nHost: test\r\n"
            + f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n".encode()
            + partial
        )
        time.sleep(0.2)
    time.sleep(0.3)
    with server.client() as client:
        assert client.get("/v1/datasets").json()["total"] == 0
    assert_nothing_left(server)
    assert [p for p in private_tmp.iterdir() if not os.path.isdir(p)] == []
