"""Label parsing: from raw cell values to the stored label array and the task type.

Rules (the task type is inferred unless the caller names it):

* one label column, every value a number → regression; every value text → classification; a mix →
  refused, naming the column and a row of each kind (``task_type=classification`` reads numbers as names);
* several label columns → multi-target regression (all numeric), or multilabel with
  ``task_type=multilabel`` (each column 0/1, true/false or yes/no);
* multilabel from one column: JSON lists, or text split on ``|`` (``"cat|dog"``);
* classification needs at least two classes, and every class at least two samples (one per split).

Classification labels are ``int64`` indices into the sorted class names; regression and multilabel
targets are ``float32 (n, k)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.datasets.errors import InvalidDataset
from app.enums import TaskType

MULTILABEL_SEPARATOR = "|"
MAX_CLASS_NAME = 256
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}

Where = Callable[[int], str]


@dataclass(frozen=True)
class ParsedLabels:
    task_type: str
    labels: np.ndarray
    classes: list[str] | None
    target_names: list[str] | None

    @property
    def num_classes(self) -> int | None:
        if self.task_type == TaskType.classification:
            return len(self.classes or [])
        if self.task_type == TaskType.multilabel:
            return len(self.target_names or [])
        return None


def check_task_type(task_type: str | None) -> str | None:
    if task_type is None or task_type == "":
        return None
    try:
        return TaskType(task_type).value
    except ValueError:
        raise InvalidDataset(
            f"task_type {task_type!r} is not one of {[t.value for t in TaskType]}"
        ) from None


def _number(value: Any) -> float | None:
    """The value as a float if it is numeric (JSON number or numeric text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_name(value: Any, column: str, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, str):
        name = value.strip()
        if len(name) > MAX_CLASS_NAME:
            raise InvalidDataset(f"{where}: class name in column {column!r} is longer than {MAX_CLASS_NAME} characters")
        return name
    raise InvalidDataset(f"{where}: column {column!r} holds a JSON {type(value).__name__}, expected a class name")


def parse_labels(columns: Sequence[str], values: Sequence[Sequence[Any]], *, task_type: str | None,
                 where: Where) -> ParsedLabels:
    """Parse label cells. ``values[j][i]`` is column ``columns[j]`` of sample ``i``; ``where(i)`` names
    sample ``i``'s location (file, line) in error messages."""
    task_type = check_task_type(task_type)
    if not columns:
        raise InvalidDataset("no label column given")
    n = len(values[0])
    if n == 0:
        raise InvalidDataset("the dataset has no samples")
    if task_type == TaskType.multilabel:
        return _multilabel(columns, values, where)
    if task_type is None:
        task_type = _infer(columns, values, where)
        if task_type == TaskType.multilabel:
            return _multilabel(columns, values, where)
    for col, vals in zip(columns, values, strict=True):
        for i, v in enumerate(vals):
            if _is_missing(v):
                raise InvalidDataset(f"{where(i)}: label column {col!r} is empty")
    if task_type == TaskType.regression:
        return _regression(columns, values, where)
    if len(columns) != 1:
        raise InvalidDataset(
            f"classification takes one label column, got {list(columns)}; several columns mean "
            "multi-target regression (numeric) or task_type=multilabel (0/1 columns)"
        )
    return _classification(columns[0], values[0], where)


def _infer(columns: Sequence[str], values: Sequence[Sequence[Any]], where: Where) -> str:
    if len(columns) == 1 and values[0] and all(isinstance(v, list) for v in values[0]):
        return TaskType.multilabel.value
    kinds: list[str] = []
    for col, vals in zip(columns, values, strict=True):
        first_num = first_text = None
        for i, v in enumerate(vals):
            if _is_missing(v):
                raise InvalidDataset(f"{where(i)}: label column {col!r} is empty")
            if _number(v) is not None:
                first_num = i if first_num is None else first_num
            else:
                first_text = i if first_text is None else first_text
            if first_num is not None and first_text is not None:
                raise InvalidDataset(
                    f"label column {col!r} mixes numbers and text: {where(first_num)} is "
                    f"{vals[first_num]!r}, {where(first_text)} is {vals[first_text]!r}; pass "
                    "task_type=classification to read every value as a class name"
                )
        kinds.append("number" if first_text is None else "text")
    if len(columns) > 1 and "text" in kinds:
        col = columns[kinds.index("text")]
        raise InvalidDataset(
            f"several label columns {list(columns)} mean multi-target regression, but column {col!r} is "
            "not numeric; pass task_type=multilabel for 0/1 columns, or give one label column"
        )
    return TaskType.regression.value if kinds[0] == "number" else TaskType.classification.value


def _regression(columns: Sequence[str], values: Sequence[Sequence[Any]], where: Where) -> ParsedLabels:
    out = np.empty((len(values[0]), len(columns)), dtype=np.float32)
    for j, (col, vals) in enumerate(zip(columns, values, strict=True)):
        for i, v in enumerate(vals):
            x = _number(v)
            if x is None:
                raise InvalidDataset(f"{where(i)}: label column {col!r} value {v!r} is not a number (regression)")
            if not math.isfinite(x) or abs(x) > np.finfo(np.float32).max:
                raise InvalidDataset(f"{where(i)}: label column {col!r} value {v!r} is not a finite number")
            out[i, j] = x
    if len(out) < 2:
        raise InvalidDataset(f"regression needs at least 2 samples, got {len(out)}")
    return ParsedLabels(TaskType.regression.value, out, None, list(columns))


def _classification(column: str, vals: Sequence[Any], where: Where) -> ParsedLabels:
    names = [_as_name(v, column, where(i)) for i, v in enumerate(vals)]
    return classification_from_names(names)


def classification_from_names(names: Sequence[str]) -> ParsedLabels:
    """Class indices over the sorted names, after checking class counts."""
    counts = Counter(names)
    if len(counts) < 2:
        raise InvalidDataset(f"classification needs at least 2 classes, found {sorted(counts)}")
    rare = sorted(c for c, k in counts.items() if k < 2)
    if rare:
        shown = ", ".join(repr(c) for c in rare[:10]) + (" …" if len(rare) > 10 else "")
        raise InvalidDataset(
            f"class(es) {shown} have fewer than 2 samples; every class needs at least 2 "
            "(one for the train split, one for validation)"
        )
    classes = sorted(counts)
    index = {c: k for k, c in enumerate(classes)}
    return ParsedLabels(
        TaskType.classification.value, np.asarray([index[c] for c in names], dtype=np.int64), classes, None
    )


def _flag(value: Any, col: str, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    key = str(value).strip().lower()
    if key in _TRUE:
        return 1.0
    if key in _FALSE:
        return 0.0
    raise InvalidDataset(f"{where}: multilabel column {col!r} value {value!r} is not 0/1, true/false or yes/no")


def _multilabel(columns: Sequence[str], values: Sequence[Sequence[Any]], where: Where) -> ParsedLabels:
    n = len(values[0])
    if len(columns) > 1:
        out = np.empty((n, len(columns)), dtype=np.float32)
        for j, (col, vals) in enumerate(zip(columns, values, strict=True)):
            for i, v in enumerate(vals):
                if _is_missing(v):
                    raise InvalidDataset(f"{where(i)}: label column {columns[j]!r} is empty")
                out[i, j] = _flag(v, col, where(i))
        names = list(columns)
    else:
        col = columns[0]
        sets: list[set[str]] = []
        for i, v in enumerate(values[0]):
            if isinstance(v, list):
                items = [_as_name(x, col, where(i)) for x in v]
            elif v is None or isinstance(v, str):
                items = [s.strip() for s in (v or "").split(MULTILABEL_SEPARATOR)]
                items = [_as_name(s, col, where(i)) for s in items if s]
            else:
                raise InvalidDataset(
                    f"{where(i)}: multilabel column {col!r} holds {v!r}; expected a list or 'a|b' text"
                )
            sets.append(set(items))
        names = sorted(set().union(*sets))
        if not names:
            raise InvalidDataset(f"multilabel column {col!r} names no label at all")
        index = {c: k for k, c in enumerate(names)}
        out = np.zeros((n, len(names)), dtype=np.float32)
        for i, s in enumerate(sets):
            for c in s:
                out[i, index[c]] = 1.0
    if n < 2:
        raise InvalidDataset(f"multilabel needs at least 2 samples, got {n}")
    return ParsedLabels(TaskType.multilabel.value, out, None, names)
