"""Text datasets: a CSV or JSONL file with one text column and one or more label columns.

Defaults: the text column is ``text``; the label column is the first of ``label``, ``labels``, ``target``,
``targets`` present. Every text must be a non-empty string; the file must be UTF-8 (a byte that is not
refuses the upload, naming the line). Texts are stored as their exact UTF-8 bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app.datasets.archive import Limits
from app.datasets.collected import Collected, IngestOptions
from app.datasets.errors import InvalidDataset
from app.datasets.labels import parse_labels
from app.datasets.spool import SampleSpool, collect_into_spool
from app.datasets.table import read_csv, read_jsonl, require_columns

DEFAULT_LABEL_COLUMNS = ("label", "labels", "target", "targets")


def resolve_label_columns(opts: IngestOptions, columns: list[str], source: str) -> list[str]:
    if opts.label_columns:
        missing = [c for c in opts.label_columns if c not in columns]
        if missing:
            raise InvalidDataset(f"{source} has no label column(s) {missing}; columns are {columns}")
        return list(opts.label_columns)
    for name in DEFAULT_LABEL_COLUMNS:
        if name in columns:
            return [name]
    raise InvalidDataset(
        f"{source} has no label column (looked for {list(DEFAULT_LABEL_COLUMNS)}); columns are {columns}; "
        "pass label_column=<name> or label_columns=a,b"
    )


def collect_text(fh: BinaryIO, fmt: str, opts: IngestOptions, limits: Limits, workdir: Path) -> Collected:
    return collect_into_spool(workdir, lambda spool: _collect(fh, fmt, opts, limits, spool))


def _collect(fh: BinaryIO, fmt: str, opts: IngestOptions, limits: Limits, spool: SampleSpool) -> Collected:
    source = f"{fmt.upper()} file {opts.filename or '<upload>'!r}"
    reader = read_csv if fmt == "csv" else read_jsonl
    columns, rows = reader(fh, source, limits.max_member_bytes)
    text_column = opts.text_column or "text"
    # JSONL columns come from the first row; later rows are checked one by one
    if text_column not in columns:
        raise InvalidDataset(f"{source} has no text column {text_column!r}; columns are {columns}; pass text_column=<name>")
    label_columns = resolve_label_columns(opts, columns, source)
    if text_column in label_columns:
        raise InvalidDataset(f"column {text_column!r} cannot be both the text and a label column")
    wanted = [text_column, *label_columns]
    lines: list[int] = []
    chars: list[int] = []
    values: list[list[Any]] = [[] for _ in label_columns]
    for row in rows:
        text, *labels = require_columns(row, wanted, source)
        lineno = row[0]
        if not isinstance(text, str):
            raise InvalidDataset(f"{source} line {lineno}: text column {text_column!r} holds a JSON {type(text).__name__}, expected a string")
        if not text.strip():
            raise InvalidDataset(f"{source} line {lineno}: text column {text_column!r} is empty")
        spool.add(text.encode("utf-8"))
        chars.append(len(text))
        lines.append(lineno)
        for j, v in enumerate(labels):
            values[j].append(v)
    if not lines:
        raise InvalidDataset(f"{source} has no data rows")
    parsed = parse_labels(label_columns, values, task_type=opts.task_type,
                          where=lambda i: f"{source} line {lines[i]}")
    return Collected(
        format=fmt,
        modality="text",
        parsed=parsed,
        hashes=spool.hashes(),
        positions=np.arange(len(spool), dtype=np.int64),
        spool=spool,
        sample_stats={"chars": np.asarray(chars, dtype=np.int64)},
        counters={"text_column": text_column, "label_columns": label_columns},
    )
