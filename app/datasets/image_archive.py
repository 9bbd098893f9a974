"""Image datasets from an archive: class folders, or any layout plus a CSV manifest.

* **Class folders**: ``<class>/<image>`` (optionally under one common root folder, ``data/<class>/<image>``);
  the label is the first folder below the common root.
* **Manifest**: a CSV file in the archive (``manifest.csv`` or ``labels.csv`` when there are several)
  with a ``path`` column — relative to the manifest's folder, or to the archive root — and the label
  column(s): ``label`` when present, otherwise every column but ``path`` (several → multi-target or
  multilabel). Images the manifest does not list are counted in ``unlisted_images`` and not stored.

Files that are neither images nor CSV (READMEs, ``__MACOSX/``, ``.DS_Store``) are ignored and listed in
the stats. An image that does not decode is refused, or skipped and listed with ``on_bad_file=skip``.
"""

from __future__ import annotations

import io
import posixpath
from array import array
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.datasets.archive import Limits, iter_archive, safe_member_name
from app.datasets.collected import Collected, IngestOptions
from app.datasets.errors import DatasetRejected, InvalidDataset
from app.datasets.images import IMAGE_SUFFIXES, BadImage, NormalizedImage, is_image_name, normalize_image
from app.datasets.labels import ParsedLabels, classification_from_names, parse_labels
from app.datasets.spool import SampleSpool, collect_into_spool
from app.datasets.table import read_csv
from app.enums import TaskType

MANIFEST_NAMES = ("manifest.csv", "labels.csv")
_JUNK = (".DS_Store", "Thumbs.db", "desktop.ini")


def _is_junk(name: str) -> bool:
    base = posixpath.basename(name)
    return name.startswith("__MACOSX/") or base in _JUNK or base.startswith("._")


class _Images:
    """Compact records of the images read so far: parallel arrays, and each name's record number."""

    def __init__(self) -> None:
        self.record: dict[str, int] = {}
        self.pos = array("q")
        self.width = array("q")
        self.height = array("q")
        self.fmt = array("b")
        self.reencoded = array("b")
        self.formats: list[str] = []

    def add(self, name: str, pos: int, img: NormalizedImage) -> None:
        if img.source_format not in self.formats:
            self.formats.append(img.source_format)
        self.record[name] = len(self.pos)
        self.pos.append(pos)
        self.width.append(img.width)
        self.height.append(img.height)
        self.fmt.append(self.formats.index(img.source_format))
        self.reencoded.append(img.reencoded)

    def __contains__(self, name: str) -> bool:
        return name in self.record

    def __len__(self) -> int:
        return len(self.pos)


def collect_images(fh: BinaryIO, kind: str, opts: IngestOptions, limits: Limits, workdir: Path) -> Collected:
    return collect_into_spool(workdir, lambda spool: _collect(fh, kind, opts, limits, spool))


def _collect(fh: BinaryIO, kind: str, opts: IngestOptions, limits: Limits, spool: SampleSpool) -> Collected:
    images = _Images()
    csvs: dict[str, bytes] = {}
    skipped: list[dict[str, str]] = []
    ignored: list[str] = []
    for member in iter_archive(fh, kind, limits):
        name = member.name
        if _is_junk(name):
            ignored.append(name)
        elif name.lower().endswith(".csv"):
            csvs[name] = member.read()
        elif not is_image_name(name):
            ignored.append(name)
        else:
            try:
                img = normalize_image(member.read(), name, max_pixels=limits.max_pixels)
            except BadImage as exc:
                if opts.on_bad_file == "reject":
                    raise InvalidDataset(
                        f"image {name!r} is corrupt or not a supported image ({exc}); pass on_bad_file=skip "
                        "to skip such files"
                    ) from None
                skipped.append({"name": name, "reason": str(exc)})
                continue
            images.add(name, spool.add(img.data), img)
    if not images:
        shown = ignored[:5] + [s["name"] for s in skipped[:5]]
        raise InvalidDataset(
            f"no images found in the {kind} archive (looked for {', '.join(IMAGE_SUFFIXES)}); "
            f"{len(ignored) + len(skipped)} other file(s), e.g. {shown}"
        )
    manifest = _pick_manifest(csvs)
    if manifest is None:
        if opts.label_columns:
            raise InvalidDataset(
                f"label column(s) {opts.label_columns} given, but the archive holds no CSV manifest; "
                "class-folder archives take their labels from the folder names"
            )
        if opts.task_type not in (None, "", TaskType.classification.value):
            raise InvalidDataset(
                f"task_type={opts.task_type} needs a CSV manifest in the archive; class folders give classification"
            )
        names = sorted(images.record)
        parsed = _class_folders(names)
        layout = "class-folders"
    else:
        names, parsed = _from_manifest(manifest, csvs[manifest], images, skipped, opts, limits)
        layout = "manifest"
    chosen = np.asarray([images.record[n] for n in names], dtype=np.int64)
    positions = np.asarray(images.pos, dtype=np.int64)[chosen]
    return Collected(
        format=f"{kind}/{layout}",
        modality="image",
        parsed=parsed,
        hashes=spool.hashes()[positions],
        positions=positions,
        spool=spool,
        sample_stats={
            "width": np.asarray(images.width, dtype=np.int64)[chosen],
            "height": np.asarray(images.height, dtype=np.int64)[chosen],
        },
        counters={
            "source_formats": _count(images.formats[k] for k in np.asarray(images.fmt)[chosen]),
            "reencoded": int(np.asarray(images.reencoded, dtype=np.int64)[chosen].sum()),
            "unlisted_images": len(images) - len(names),
            "manifest": manifest,
        },
        skipped=skipped,
        ignored=ignored,
    )


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _pick_manifest(csvs: dict[str, bytes]) -> str | None:
    if len(csvs) <= 1:
        return next(iter(csvs), None)
    named = [n for n in csvs if posixpath.basename(n).lower() in MANIFEST_NAMES]
    if len(named) == 1:
        return named[0]
    raise InvalidDataset(
        f"archive holds several CSV files {sorted(csvs)[:10]}; name the manifest 'manifest.csv' (exactly one)"
    )


def _class_folders(names: list[str]) -> ParsedLabels:
    parents = [posixpath.dirname(n) for n in names]
    if all(p == parents[0] for p in parents):
        folder = parents[0] or "the archive root"
        raise InvalidDataset(
            f"all images are in one folder ({folder!r}); put each class in its own folder "
            "(class/image.png), at least 2 classes, or add a CSV manifest"
        )
    common = posixpath.commonpath(parents) if all(parents) else ""
    labels = []
    for name, parent in zip(names, parents, strict=True):
        rest = parent[len(common):].lstrip("/") if common else parent
        if not rest:
            raise InvalidDataset(
                f"image {name!r} is not inside a class folder (expected {common + '/' if common else ''}<class>/<image>)"
            )
        labels.append(rest.split("/")[0])
    return classification_from_names(labels)


def _from_manifest(manifest: str, data: bytes, images: _Images, skipped: list[dict[str, str]],
                   opts: IngestOptions, limits: Limits) -> tuple[list[str], ParsedLabels]:
    source = f"manifest {manifest!r}"
    columns, rows = read_csv(io.BytesIO(data), source, limits.max_member_bytes)
    if "path" not in columns:
        raise InvalidDataset(f"{source} has no 'path' column; columns are {columns}")
    label_columns = opts.label_columns or (["label"] if "label" in columns else [c for c in columns if c != "path"])
    missing = [c for c in label_columns if c not in columns]
    if missing or not label_columns:
        raise InvalidDataset(
            f"{source} has no label column {missing or ['label']}; columns are {columns}"
        )
    base = posixpath.dirname(manifest)
    skipped_names = {s["name"] for s in skipped}
    names: list[str] = []
    lines: list[int] = []
    values: list[list[str]] = [[] for _ in label_columns]
    seen: dict[str, int] = {}
    for lineno, row in rows:
        try:
            rel = safe_member_name(row["path"].strip())
        except DatasetRejected as exc:
            raise InvalidDataset(f"{source} line {lineno}: {exc}") from None
        candidates = [posixpath.join(base, rel), rel] if base else [rel]
        found = next((c for c in candidates if c in images), None)
        if found is None:
            if any(c in skipped_names for c in candidates):
                continue
            raise InvalidDataset(f"{source} line {lineno}: path {row['path']!r} is not an image in the archive")
        if found in seen:
            raise InvalidDataset(f"{source} line {lineno}: path {row['path']!r} is listed twice (first on line {seen[found]})")
        seen[found] = lineno
        names.append(found)
        lines.append(lineno)
        for j, col in enumerate(label_columns):
            values[j].append(row[col])
    if not names:
        raise InvalidDataset(f"{source} lists no images")
    parsed = parse_labels(label_columns, values, task_type=opts.task_type,
                          where=lambda i: f"{source} line {lines[i]}")
    return names, parsed
