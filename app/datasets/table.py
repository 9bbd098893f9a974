"""Row readers for CSV and JSONL (text datasets and archive manifests): strict UTF-8, bounded lines.

Each reader yields ``(line number, {column: value})``. Values are kept exactly as written — a cell such
as ``=HYPERLINK(…)`` is plain text here and everywhere after; nothing is ever evaluated or re-exported
to a spreadsheet. CSV values are strings; JSONL values keep their JSON types.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from app.datasets.errors import InvalidDataset, LimitExceeded

Row = tuple[int, dict[str, Any]]


def _lines(fh: BinaryIO, source: str, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    lineno = 0
    while True:
        raw = fh.readline(max_line_bytes + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > max_line_bytes:
            raise LimitExceeded(
                f"{source} line {lineno} is longer than {max_line_bytes} bytes; the cap is TSCOUT_MAX_MEMBER_BYTES"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 4]
            raise InvalidDataset(
                f"{source} line {lineno} is not valid UTF-8 (byte {exc.start} of the line: {bad!r}); "
                "text files must be UTF-8 encoded"
            ) from None
        if lineno == 1:
            text = text.removeprefix("\ufeff")
        yield lineno, text


def read_csv(fh: BinaryIO, source: str, max_line_bytes: int) -> tuple[list[str], Iterator[Row]]:
    """The header and an iterator of data rows (blank lines skipped)."""
    lines = _lines(fh, source, max_line_bytes)
    numbered = _Numbered(lines)
    reader = csv.reader(numbered)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidDataset(f"{source} is empty; expected a header row") from None
    except csv.Error as exc:
        raise InvalidDataset(f"{source} line {numbered.last}: {exc}") from None
    columns = [c.strip() for c in header]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise InvalidDataset(f"{source} header repeats column(s) {dupes}")

    def rows() -> Iterator[Row]:
        while True:
            start = numbered.last + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InvalidDataset(f"{source} line {numbered.last}: {exc}") from None
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) != len(columns):
                raise InvalidDataset(
                    f"{source} line {start} has {len(record)} fields, the header has {len(columns)}"
                )
            yield start, dict(zip(columns, record, strict=True))

    return columns, rows()


class _Numbered:
    """Feeds decoded lines to ``csv.reader`` while remembering the last line number handed out."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines = lines
        self.last = 0

    def __iter__(self) -> _Numbered:
        return self

    def __next__(self) -> str:
        self.last, text = next(self._lines)
        return text


def read_jsonl(fh: BinaryIO, source: str, max_line_bytes: int) -> tuple[list[str], Iterator[Row]]:
    """The first object's keys (the columns) and an iterator of rows (blank lines skipped)."""

    def parsed() -> Iterator[Row]:
        for lineno, text in _lines(fh, source, max_line_bytes):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidDataset(f"{source} line {lineno} is not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise InvalidDataset(
                    f"{source} line {lineno} is a JSON {type(obj).__name__}; each line must be an object"
                )
            yield lineno, obj

    rows = parsed()
    try:
        first = next(rows)
    except StopIteration:
        raise InvalidDataset(f"{source} has no rows") from None

    def chained() -> Iterator[Row]:
        yield first
        yield from rows

    return list(first[1]), chained()


def require_columns(row: Row, wanted: list[str], source: str) -> list[Any]:
    """The values of ``wanted`` in one row; a missing key names the line and column."""
    lineno, values = row
    out = []
    for col in wanted:
        if col not in values:
            raise InvalidDataset(f"{source} line {lineno} has no {col!r} field")
        out.append(values[col])
    return out
