"""What the sync and async clients share: configuration, the request each method sends, and how an answer
becomes a typed value or a typed exception. The two clients differ only in how they send."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from app.client.errors import ScoutError, TransportError, error_for
from app.client.folder import ZipStream

DEFAULT_URL = "http://127.0.0.1:8000"
PLOTS = ("ranking", "layers", "probes")
ProgressCallback = Callable[[dict[str, Any]], None]


def settings_from_env(url: str | None, key: str | None) -> tuple[str, str | None]:
    """``url`` / ``key``, else ``TSCOUT_API_URL`` / ``TSCOUT_API_KEY`` (the CLI's settings), else loopback."""
    return (url or os.environ.get("TSCOUT_API_URL") or DEFAULT_URL), (key or os.environ.get("TSCOUT_API_KEY") or None)


def headers_for(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@dataclass
class Call:
    """One request: method, path, httpx keyword arguments, and what to make of a 2xx answer."""

    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[httpx.Response], Any] = lambda r: r.json()


def checked(response: httpx.Response, parse: Callable[[httpx.Response], Any]) -> Any:
    if response.status_code >= 400:
        raise error_for(response)
    return parse(response)


def transport_error(exc: httpx.HTTPError, base_url: str) -> ScoutError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return TransportError(f"cannot reach the Transfer Scout server at {base_url} ({type(exc).__name__}); "
                              "is it running? (tscout serve, or set TSCOUT_API_URL)")
    return TransportError(f"{type(exc).__name__} talking to {base_url}: {exc}")


def job_id_of(job: Any) -> str:
    value = getattr(job, "id", job)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"not a ranking id: {value!r}") from None


def upload_call(source: str | Path | bytes | IO[bytes], *, name: str | None, filename: str | None,
                task_type: str | None, text_column: str | None, label_column: str | None,
                label_columns: list[str] | None, on_bad_file: str | None) -> tuple[Call, IO[bytes] | None]:
    """The dataset upload: a file path, a folder (zipped while it streams), bytes, or a binary file object.
    Returns the call and the file it opened (the caller closes it)."""
    from app.schemas.datasets import DatasetRead

    opened: IO[bytes] | None = None
    if isinstance(source, bytes):
        if not filename:
            raise ValueError("uploading bytes needs filename= (its extension tells the format)")
        body: Any = source
    elif isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            body = ZipStream(path)
            filename = filename or body.name
        elif path.is_file():
            opened = body = open(path, "rb")  # noqa: SIM115 - closed by the caller once the upload is sent
            filename = filename or path.name
        else:
            raise ValueError(f"{path} is neither a file nor a folder")
    elif hasattr(source, "read"):
        body = source
        filename = filename or Path(getattr(source, "name", "") or "").name
        if not filename:
            raise ValueError("uploading a file object needs filename= (its extension tells the format)")
    else:
        raise TypeError(f"upload takes a path, bytes or a binary file object, got {type(source).__name__}")
    form: dict[str, str] = {"name": name or filename}
    if label_columns is not None and label_column is not None:
        raise ValueError("give label_column or label_columns, not both")
    for key, value in (("task_type", task_type), ("text_column", text_column), ("label_column", label_column),
                       ("on_bad_file", on_bad_file)):
        if value is not None:
            form[key] = value
    if label_columns is not None:
        form["label_columns"] = ",".join(label_columns)
    call = Call("POST", "/v1/datasets", {"files": {"file": (filename, body)}, "data": form},
                lambda r: DatasetRead.model_validate(r.json()))
    return call, opened


def rank_call(dataset_id: Any, *, backbones: list[str] | Mapping[str, Any] | None, layers: Any,
              metrics: list[str] | None, probe: Mapping[str, Any] | Any | None, idempotency_key: str | None,
              options: dict[str, Any]) -> Call:
    """``POST /v1/rankings``; the body is validated here first (the same schema the server uses)."""
    from app.schemas.rankings import RankingCreate, RankingRead

    body: dict[str, Any] = {"dataset_id": str(getattr(dataset_id, "id", dataset_id)), "layers": layers, **options}
    if backbones is not None:
        body["backbones"] = list(backbones) if not isinstance(backbones, Mapping) else dict(backbones)
    if metrics is not None:
        body["metrics"] = list(metrics)
    if probe is not None:
        body["probe"] = probe.model_dump(exclude_none=True) if hasattr(probe, "model_dump") else dict(probe)
    try:
        request = RankingCreate.model_validate(body)
    except Exception as exc:  # pydantic's error, one line per field
        raise ValueError(f"invalid ranking request: {exc}") from None
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/rankings", {"json": request.model_dump(mode="json", exclude_unset=True),
                                         "headers": headers},
                lambda r: RankingRead.model_validate(r.json()))


def feature_set_ids(feature_sets: Sequence[Any]) -> list[str]:
    """Candidate ids (``features:<dataset id>``) of features datasets or their ids; refuses an empty list."""
    ids = [f"features:{getattr(d, 'id', d)}" for d in feature_sets]
    if not ids:
        raise ValueError("feature_sets: give at least one features dataset (or its id)")
    return ids


def extend_call(job: Any, *, max_seeds: int, candidates: list[str] | None, time_budget_seconds: float | None,
                idempotency_key: str | None) -> Call:
    """``POST /v1/rankings/{id}/probes``: more seeds for a finished ranking's candidates (a new job)."""
    from app.schemas.rankings import ProbeExtension, RankingRead

    try:
        body = ProbeExtension(max_seeds=max_seeds, candidates=candidates, time_budget_seconds=time_budget_seconds)
    except Exception as exc:  # pydantic's error, one line per field
        raise ValueError(f"invalid extension: {exc}") from None
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", f"/v1/rankings/{job_id_of(job)}/probes",
                {"json": body.model_dump(mode="json", exclude_none=True), "headers": headers},
                lambda r: RankingRead.model_validate(r.json()))


def ranking_call(job: Any) -> Call:
    from app.schemas.rankings import RankingRead

    return Call("GET", f"/v1/rankings/{job_id_of(job)}", parse=lambda r: RankingRead.model_validate(r.json()))


def plot_call(job: Any, name: str, fmt: str) -> Call:
    if name not in PLOTS:
        raise ValueError(f"plot must be one of {', '.join(PLOTS)}, got {name!r}")
    if fmt not in ("png", "svg"):
        raise ValueError(f"plot format must be png or svg, got {fmt!r}")
    suffix = ".svg" if fmt == "svg" else ""
    return Call("GET", f"/v1/rankings/{job_id_of(job)}/plots/{name}{suffix}", parse=lambda r: r.content)


def events(lines: Any) -> Any:
    """The ``data:`` payloads of a server-sent event stream (an iterator of lines), as dicts."""
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[6:])


TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
