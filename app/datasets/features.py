"""Precomputed-feature datasets: ``.npz`` or ``.parquet`` with ``features`` (n, d) and ``labels`` or ``targets``.

* ``.npz``: arrays ``features`` and one of ``labels`` / ``targets``, read through the same capped zip
  reader as image archives, with ``allow_pickle=False`` (object arrays are refused).
* ``.parquet``: a ``features`` column of equal-length number lists, and a ``labels`` / ``targets`` column
  (or the columns named by ``label_columns``); a list-valued ``targets`` column is multi-target, a
  list-valued ``labels`` column multilabel. Rows are read in batches with the decoded size capped.

Unless ``task_type`` says otherwise: 1-D ``labels`` → classification (values are class names), 2-D
``labels`` → multilabel (0/1), ``targets`` → regression. Features must be finite and have one row per label.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO

import numpy as np

from app.datasets.archive import Limits, iter_archive
from app.datasets.collected import Collected, IngestOptions
from app.datasets.errors import InvalidDataset, LimitExceeded
from app.datasets.labels import parse_labels
from app.enums import TaskType

LABEL_KEYS = ("labels", "targets")


def collect_features(fh: BinaryIO, fmt: str, opts: IngestOptions, limits: Limits) -> Collected:
    if fmt == "npz":
        features, key, columns, values = _read_npz(fh, limits)
    else:
        features, key, columns, values = _read_parquet(fh, opts, limits)
    features = _check_features(features, fmt)
    n = len(features)
    if values and len(values[0]) != n:
        raise InvalidDataset(f"features have {n} rows but {key} have {len(values[0])}")
    parsed = parse_labels(columns, values, task_type=opts.task_type or _default_task(key, columns, values),
                          where=lambda i: f"row {i}")
    hashes = np.frombuffer(b"".join(hashlib.sha256(row.tobytes()).digest() for row in features),
                           dtype=np.uint8).reshape(-1, 32)
    return Collected(
        format=fmt,
        modality="features",
        parsed=parsed,
        hashes=hashes,
        positions=np.arange(n, dtype=np.int64),
        features=features,
        counters={"feature_dim": int(features.shape[1]), "label_key": key},
    )


def _default_task(key: str, columns: list[str], values: list[list[Any]]) -> str | None:
    if key == "targets":
        return TaskType.regression.value
    if key == "labels":
        if len(columns) > 1 or (values and all(isinstance(v, list) for v in values[0])):
            return TaskType.multilabel.value
        return TaskType.classification.value
    return None  # caller-named columns: the general inference rules


def _check_features(features: Any, fmt: str) -> np.ndarray:
    arr = np.asarray(features)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidDataset(f"features must be a non-empty (n, d) array, got shape {arr.shape} in the {fmt} file")
    if arr.dtype.kind not in "fiub":
        raise InvalidDataset(f"features must be numeric, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype="<f4")
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidDataset(
            f"features row {row} has a non-finite value ({out[row][~np.isfinite(out[row])][0]}); "
            f"{int(bad.sum())} row(s) are affected (NaN, ±inf, or beyond float32 range)"
        )
    return out


def _columns_of(key: str, arr: np.ndarray) -> tuple[list[str], list[list[Any]]]:
    if arr.ndim == 1:
        return [key], [arr.tolist()]
    if arr.ndim == 2:
        return [f"{key}[{j}]" for j in range(arr.shape[1])], [arr[:, j].tolist() for j in range(arr.shape[1])]
    raise InvalidDataset(f"{key} must be 1-D or 2-D, got shape {arr.shape}")


def _read_npz(fh: BinaryIO, limits: Limits) -> tuple[np.ndarray, str, list[str], list[list[Any]]]:
    arrays: dict[str, np.ndarray] = {}
    held: list[str] = []
    for member in iter_archive(fh, "zip", limits):
        key = member.name.removesuffix(".npy")
        held.append(key)
        if key not in ("features", *LABEL_KEYS):
            continue
        try:
            arrays[key] = np.load(io.BytesIO(member.read()), allow_pickle=False)
        except ValueError as exc:
            raise InvalidDataset(f"npz array {key!r} cannot be read without pickle ({exc})") from None
        except (OSError, EOFError) as exc:
            raise InvalidDataset(f"npz array {key!r} is corrupt: {exc}") from None
    wanted = "an npz dataset holds arrays 'features' (n, d) and 'labels' (classification) or 'targets' (regression)"
    if "features" not in arrays:
        raise InvalidDataset(f"npz file has no 'features' array; it holds {sorted(held)[:20] or 'no arrays'} ({wanted})")
    keys = [k for k in LABEL_KEYS if k in arrays]
    if len(keys) != 1:
        raise InvalidDataset(f"npz file needs exactly one of 'labels' or 'targets', found {keys or 'neither'} "
                             f"among {sorted(held)[:20]} ({wanted})")
    labels = arrays[keys[0]]
    if labels.dtype.kind not in "fiubU":
        raise InvalidDataset(f"npz array {keys[0]!r} has unsupported dtype {labels.dtype}")
    columns, values = _columns_of(keys[0], labels)
    return arrays["features"], keys[0], columns, values


def _read_parquet(fh: BinaryIO, opts: IngestOptions,
                  limits: Limits) -> tuple[np.ndarray, str, list[str], list[list[Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidDataset(f"not a readable parquet file: {exc}") from None
    if "features" not in names:
        raise InvalidDataset(f"parquet file has no 'features' column; columns are {names}")
    if opts.label_columns:
        label_columns = list(opts.label_columns)
        missing = [c for c in label_columns if c not in names]
        if missing:
            raise InvalidDataset(f"parquet file has no label column(s) {missing}; columns are {names}")
        key = label_columns[0] if len(label_columns) == 1 else "label columns"
    else:
        found = [k for k in LABEL_KEYS if k in names]
        if len(found) != 1:
            raise InvalidDataset(
                f"parquet file needs exactly one of 'labels' or 'targets' (or label_columns=…), columns are {names}"
            )
        label_columns, key = found, found[0]
    rows: list[np.ndarray] = []
    values: list[list[Any]] = [[] for _ in label_columns]
    decoded = done = 0
    try:
        for batch in pf.iter_batches(batch_size=4096, columns=["features", *label_columns]):
            decoded += batch.nbytes
            if decoded > limits.max_total_bytes:
                raise LimitExceeded(
                    f"parquet file decodes to more than {limits.max_total_bytes} bytes; "
                    "the cap is TSCOUT_MAX_ARCHIVE_TOTAL_BYTES"
                )
            block = _feature_rows(batch.column(0), done)
            if rows and block.shape[1] != rows[0].shape[1]:
                raise InvalidDataset(f"features row {done} has {block.shape[1]} values, row 0 has {rows[0].shape[1]}")
            rows.append(block)
            done += len(block)
            for j in range(len(label_columns)):
                values[j].extend(batch.column(j + 1).to_pylist())
    except (pa.ArrowException, OSError) as exc:
        raise InvalidDataset(f"parquet file is corrupt: {exc}") from None
    if not rows:
        raise InvalidDataset("parquet file has no rows")
    features = np.concatenate(rows)
    if len(label_columns) == 1 and values[0] and all(isinstance(v, list) for v in values[0]) and key == "targets":
        width = {len(v) for v in values[0]}
        if len(width) != 1:
            raise InvalidDataset(f"'targets' lists have different lengths {sorted(width)[:5]}")
        columns, split_values = _columns_of("targets", np.asarray(values[0], dtype=object))
        return features, key, columns, split_values
    return features, key, label_columns, values


def _feature_rows(column: Any, first_row: int) -> np.ndarray:
    import pyarrow as pa

    if not (pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)
            or pa.types.is_large_list(column.type)):
        raise InvalidDataset(f"parquet 'features' must be a list-of-numbers column, got {column.type}")
    if column.null_count:
        row = first_row + next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
        raise InvalidDataset(f"features row {row} is null")
    lengths = column.value_lengths().to_numpy(zero_copy_only=False) if not pa.types.is_fixed_size_list(
        column.type) else np.full(len(column), column.type.list_size)
    if len(lengths) and (lengths != lengths[0]).any():
        row = first_row + int(np.flatnonzero(lengths != lengths[0])[0])
        raise InvalidDataset(f"features row {row} has {lengths[row - first_row]} values, row {first_row} has {lengths[0]}")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    if flat.dtype == object:
        raise InvalidDataset("parquet 'features' lists hold nulls or non-numbers")
    return flat.reshape(len(column), -1 if len(column) else 0)
