"""One rendering for every error: ``{"error": <code>, "detail": <message>}`` and never a traceback.

What a caller sent is repeated at most ``TSCOUT_MAX_ERROR_ECHO_CHARS`` characters at a time; a database that
cannot be reached answers ``503 unavailable`` with ``Retry-After``; a value the database refuses to store
(a NUL character in PostgreSQL text) answers 422; a 405 lists every method the path allows.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.guard import allowed_methods
from app.db.session import is_database_outage
from app.errors import (
    BadRequest,
    DomainError,
    InvalidInput,
    Unavailable,
    UnsupportedMediaType,
    declared_errors,
)
from app.services.auth import authenticate, local_principal

log = logging.getLogger("tscout.api")


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: str
    detail: str
    fields: list[dict[str, Any]] | None = None


_DESCRIPTIONS = {
    400: "The request could not be read (malformed JSON or form, nesting too deep)",
    401: "Missing or invalid API key",
    404: "No such resource in this project",
    409: "Conflict with the resource's current state",
    413: "Body too large",
    415: "Unsupported media type (a JSON body sent without Content-Type: application/json, or an upload in no "
         "supported format)",
    422: "Invalid input (the detail names the offending field or value)",
    503: "A dependency (database, artifact store) is unavailable; retry after Retry-After seconds",
}


def responses_for(*services: Any, public: bool = False, validated: bool = True, body: bool = False,
                  extra: tuple[type[DomainError], ...] = ()) -> dict[int | str, dict[str, Any]]:
    """``responses=`` derived from what a route can raise: the errors its service functions declared with
    :func:`app.errors.raises`, what resolving the caller raises (401, 503) unless the route is ``public``,
    422 when it validates parameters or a body, 400 and 413 when it reads a ``body``, plus ``extra`` raised
    by the route itself."""
    statuses: dict[int, list[str]] = {}
    errors: list[type[DomainError]] = [*extra]
    for fn in services:
        errors.extend(declared_errors(fn))
    if not public:
        errors.extend((*declared_errors(authenticate), *declared_errors(local_principal)))
    if body:
        errors.extend((BadRequest, BodyTooLarge, UnsupportedMediaType))
    for error in errors:
        statuses.setdefault(error.status, []).append(error.error)
    if validated:
        statuses.setdefault(422, []).append("validation_error")
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        codes = ", ".join(f"`{c}`" for c in dict.fromkeys(statuses[status]))
        out[status] = {"model": ErrorBody, "description": f"{_DESCRIPTIONS.get(status, 'Error')} ({codes})"}
    return out


# a store or temp folder that is read-only, full or not ours: the service is unavailable, not broken
_STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class BodyTooLarge(DomainError):
    status = 413
    error = "payload_too_large"


def clip(text: str, limit: int) -> str:
    """``text`` kept to ``limit`` characters — its beginning and its end (where messages name what is
    allowed), the middle replaced by how much was left out."""
    if len(text) <= limit:
        return text
    head, tail = limit - limit // 3, limit // 3
    return f"{text[:head]} … ({len(text) - head - tail} more characters not shown) … {text[len(text) - tail:]}"


def echo_limit(request: Request | None) -> int:
    try:
        return request.app.state.runtime.settings.max_error_echo_chars  # type: ignore[union-attr]
    except AttributeError:  # before the lifespan ran (or outside an app): the default
        return 400


def _body(error: str, detail: str, fields: list[dict[str, Any]] | None = None, *,
          limit: int = 400) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "detail": clip(detail, limit)}
    if fields:
        body["fields"] = fields
    return body


def unavailable_response(request: Request | None, detail: str) -> JSONResponse:
    try:
        retry = request.app.state.runtime.settings.retry_after_seconds  # type: ignore[union-attr]
    except AttributeError:
        retry = 5
    return JSONResponse(_body(Unavailable.error, detail, limit=echo_limit(request)), status_code=503,
                        headers={"Retry-After": str(retry)})


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def _json_error(err: dict[str, Any], document: Any) -> str:
    """Where and why a body is not JSON: line, column and character offset, and the decoder's reason."""
    loc = err.get("loc") or ()
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    reason = (err.get("ctx") or {}).get("error", "malformed")
    if pos is None:
        return f"the body is not valid JSON: {reason}"
    where = f"character {pos}"
    if isinstance(document, str):
        line = document.count("\n", 0, pos) + 1
        column = pos - document.rfind("\n", 0, pos)
        where = f"line {line}, column {column} ({where})"
    return f"the body is not valid JSON at {where}: {reason}"


def _sends_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _unread_body(err: dict[str, Any]) -> bool:
    """FastAPI's error for a JSON-body route whose body it did not parse (the media type was not JSON)."""
    return err.get("type") == "model_attributes_type" and tuple(err.get("loc") or ()) == ("body",) \
        and isinstance(err.get("input"), (bytes, str))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        if exc.status == 503:
            return unavailable_response(request, exc.detail)
        return JSONResponse(_body(exc.error, exc.detail, limit=echo_limit(request)), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        limit = echo_limit(request)
        fields = []
        for err in exc.errors()[:20]:
            if err.get("type") == "json_invalid":
                return JSONResponse(_body(BadRequest.error, _json_error(err, exc.body), limit=limit),
                                    status_code=400)
            if _unread_body(err) and not _sends_json(request):
                sent = request.headers.get("content-type") or "no Content-Type"
                return JSONResponse(_body(UnsupportedMediaType.error, f"this endpoint reads a JSON body; send "
                                          f"Content-Type: application/json (got {sent})", limit=limit),
                                    status_code=415)
            fields.append(
                {
                    "field": clip(_field_name(err.get("loc", ())), 100),
                    "message": clip(str(err.get("msg", "")), limit),
                    "type": err.get("type", ""),
                }
            )
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
        return JSONResponse(_body("validation_error", detail, fields, limit=limit), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                 413: "payload_too_large"}
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return JSONResponse(
            _body(codes.get(exc.status_code, "http_error"), detail, limit=echo_limit(request)),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(sa_exc.SQLAlchemyError)
    async def _database(request: Request, exc: sa_exc.SQLAlchemyError) -> JSONResponse:
        # handled here rather than by the catch-all below, so the connection stays open after the answer
        if is_database_outage(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                        type(exc).__name__)
            return unavailable_response(request, "the database is unavailable; retry later")
        if isinstance(exc, sa_exc.DataError):
            # e.g. PostgreSQL refuses NUL characters in text; the statement names no value worth echoing
            return JSONResponse(_body(InvalidInput.error, "a value in the request cannot be stored or compared "
                                      "(text may not contain NUL characters)"), status_code=422)
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(_body("internal_error", "internal server error; see the server log"),
                            status_code=500)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in _STORAGE_ERRNOS:
            log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
            return unavailable_response(request, f"storage cannot be written ({exc.strerror}); retry later")
        log.error("unhandled OS error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(_body("internal_error", "internal server error; see the server log"),
                            status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_database_outage(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                        type(exc).__name__)
            return unavailable_response(request, "the database is unavailable; retry later")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _body("internal_error", "internal server error; see the server log"), status_code=500
        )
