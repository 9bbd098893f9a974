"""One rendering for every error: ``{"error": <code>, "detail": <message>}`` and never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError, Unauthorized, declared_errors

log = logging.getLogger("tscout.api")


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: str
    detail: str
    fields: list[dict[str, Any]] | None = None


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    404: "No such resource in this project",
    409: "Conflict with the resource's current state",
    413: "Upload too large",
    415: "Unsupported media type",
    422: "Invalid input (the detail names the offending field or value)",
    503: "A dependency is not ready",
}


def responses_for(*services: Any, public: bool = False, validated: bool = True,
                  extra: tuple[type[DomainError], ...] = ()) -> dict[int | str, dict[str, Any]]:
    """``responses=`` derived from what a route can raise: the errors its service functions declared with
    :func:`app.errors.raises`, 401 unless the route is ``public``, 422 when it validates parameters or a body,
    plus ``extra`` raised by the route itself."""
    statuses: dict[int, list[str]] = {}
    errors: list[type[DomainError]] = [*extra]
    for fn in services:
        errors.extend(declared_errors(fn))
    if not public:
        errors.append(Unauthorized)
    for error in errors:
        statuses.setdefault(error.status, []).append(error.error)
    if validated:
        statuses.setdefault(422, []).append("validation_error")
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        codes = ", ".join(f"`{c}`" for c in dict.fromkeys(statuses[status]))
        out[status] = {"model": ErrorBody, "description": f"{_DESCRIPTIONS.get(status, 'Error')} ({codes})"}
    return out


def _body(error: str, detail: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(_body(exc.error, exc.detail), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            fields.append(
                {
                    "field": _field_name(err.get("loc", ())),
                    "message": err.get("msg", ""),
                    "type": err.get("type", ""),
                }
            )
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
        return JSONResponse(_body("validation_error", detail, fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return JSONResponse(
            _body(codes.get(exc.status_code, "http_error"), detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _body("internal_error", "internal server error; see the server log"), status_code=500
        )
