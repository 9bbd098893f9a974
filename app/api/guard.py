"""The request guard: what a request may carry, checked at the ASGI level before any route reads it.

In order, for every HTTP request:

1. headers: more than ``TSCOUT_MAX_HEADER_COUNT`` headers, or more than ``TSCOUT_MAX_HEADER_BYTES`` of them
   together, answer 431;
2. a NUL character in the path or the query string answers 422 (PostgreSQL cannot store or compare it);
3. ``OPTIONS`` answers 204 with the ``Allow`` header of the path (404 when no route serves it);
4. with ``TSCOUT_AUTH=required``, a request that carries a body to ``/v1/`` is authenticated *before* its
   body is read: no or a bad key answers 401 without reading a byte of it;
5. the body: outside the upload routes it may not pass ``TSCOUT_MAX_JSON_BODY_BYTES`` (a declared
   ``Content-Length`` above the cap answers 413 unread, a streamed body is cut off at the cap); the weights
   upload may not pass ``TSCOUT_MAX_WEIGHTS_BYTES`` plus the form overhead (the dataset upload route caps
   itself, :mod:`app.api.upload_limit`); a JSON body nested deeper than ``TSCOUT_MAX_JSON_DEPTH`` answers 400.

Routes and services never see a request that failed one of these checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import anyio.to_thread
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.upload_limit import FORM_OVERHEAD_BYTES
from app.db.session import is_database_outage
from app.errors import BadRequest, Unauthorized
from app.services.auth import authenticate
from app.settings import AuthMode, Settings

#: routes that stream a file upload; everything else is a small JSON (or empty) body
DATASET_UPLOAD = ("POST", "/v1/datasets")
WEIGHTS_UPLOAD = ("POST", "/v1/backbones/upload")

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(data: bytes | str, limit: int) -> bool:
    """True if the JSON text ``data`` nests arrays/objects deeper than ``limit`` (strings are skipped, so a
    bracket inside a string never counts). Linear time; never recurses."""
    raw = data.encode() if isinstance(data, str) else data
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if match.group(0) in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_json_depth(data: bytes | str, limit: int, what: str) -> None:
    """Raise :class:`~app.errors.BadRequest` if ``data`` nests deeper than ``limit``."""
    if json_depth_exceeds(data, limit):
        raise BadRequest(f"{what} nests deeper than {limit} levels (TSCOUT_MAX_JSON_DEPTH)")


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def method_table(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path pattern, methods) of every HTTP route in ``routes`` — built once by the app factory from the
    routers it includes, so OPTIONS and 405 answers list every method of a path."""
    return [(route.path_regex, frozenset(route.methods)) for route in routes
            if getattr(route, "path_regex", None) is not None and getattr(route, "methods", None)]


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of ``app`` serves at the path of ``scope`` (sorted; empty if none)."""
    path = scope.get("path", "")
    methods: set[str] = set()
    for pattern, route_methods in getattr(app.state, "route_methods", ()):
        if pattern.match(path):
            methods |= route_methods
    if methods:
        methods |= {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return sorted(methods)


class RequestGuard:
    """ASGI middleware applying the checks of the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings: Settings = scope["app"].state.runtime.settings
        refusal = self._refuse_headers(scope, settings)
        if refusal is None and (b"\x00" in scope.get("query_string", b"") or b"%00" in
                                scope.get("query_string", b"").lower() or "\x00" in scope.get("path", "")):
            refusal = _error(422, "invalid_input", "the path or query string contains a NUL character")
        if refusal is None and scope["method"] == "OPTIONS":
            allowed = allowed_methods(scope["app"], scope)
            refusal = (Response(status_code=204, headers={"Allow": ", ".join(allowed)}) if allowed else
                       _error(404, "not_found", "Not Found"))
        headers = Headers(scope=scope)
        has_body = (headers.get("content-length", "0") not in ("", "0")) or "transfer-encoding" in headers
        if refusal is None and has_body and settings.auth is AuthMode.required and \
                scope.get("path", "").startswith("/v1/"):
            refusal = await self._refuse_unauthenticated(scope, settings, headers.get("authorization"))
        if refusal is None:
            refusal, receive = self._cap_body(scope, settings, headers, receive)
        if refusal is not None:
            if has_body:
                refusal.headers["Connection"] = "close"  # the unread body must not be taken for a request
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse_headers(scope: Scope, settings: Settings) -> JSONResponse | None:
        raw = scope.get("headers") or []
        size = sum(len(k) + len(v) + 4 for k, v in raw)
        if len(raw) > settings.max_header_count or size > settings.max_header_bytes:
            return _error(431, "headers_too_large",
                          f"{len(raw)} headers of {size} bytes; at most {settings.max_header_count} headers "
                          f"of {settings.max_header_bytes} bytes together", {"Connection": "close"})
        return None

    @staticmethod
    async def _refuse_unauthenticated(scope: Scope, settings: Settings,
                                      authorization: str | None) -> JSONResponse | None:
        runtime = scope["app"].state.runtime

        def check() -> None:
            with runtime.sessions() as session:
                authenticate(session, authorization, pepper=settings.key_pepper, local_project=settings.local_project)

        try:
            await anyio.to_thread.run_sync(check)
        except Unauthorized as exc:
            return _error(401, exc.error, exc.detail, {"WWW-Authenticate": "Bearer"})
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            return _error(503, "unavailable", "the database is unavailable; retry later",
                          {"Retry-After": str(settings.retry_after_seconds)})
        return None

    @staticmethod
    def _cap_body(scope: Scope, settings: Settings, headers: Headers,
                  receive: Receive) -> tuple[JSONResponse | None, Receive]:
        route = (scope["method"], scope.get("path", "").rstrip("/") or "/")
        if route == DATASET_UPLOAD:
            return None, receive  # capped by its route class while it streams (app.api.upload_limit)
        if route == WEIGHTS_UPLOAD:
            limit, what = settings.max_weights_bytes + FORM_OVERHEAD_BYTES, (
                f"TSCOUT_MAX_WEIGHTS_BYTES plus {FORM_OVERHEAD_BYTES} bytes of form overhead")
        else:
            limit, what = settings.max_json_body_bytes, "TSCOUT_MAX_JSON_BODY_BYTES"
        message = f"request body is larger than {limit} bytes ({what})"
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, "payload_too_large", message), receive
        is_json = headers.get("content-type", "").split(";")[0].strip().lower().endswith("json")
        depth = settings.max_json_depth
        received = 0
        buffered: list[bytes] = []

        # raised inside the route's body read: an HTTPException is what FastAPI lets through unchanged
        async def counting_receive() -> Message:
            nonlocal received
            part = await receive()
            if part["type"] == "http.request":
                received += len(part.get("body", b""))
                if received > limit:
                    raise HTTPException(413, message)
            return part

        async def json_receive() -> Message:
            # read the whole (capped) body first, check its nesting, then hand it on in one message
            if not buffered:
                while True:
                    part = await counting_receive()
                    if part["type"] != "http.request":
                        return part
                    buffered.append(part.get("body", b""))
                    if not part.get("more_body", False):
                        break
                body = b"".join(buffered)
                buffered[:] = [body]
                if json_depth_exceeds(body, depth):
                    raise HTTPException(400, f"the JSON body nests deeper than {depth} levels "
                                             "(TSCOUT_MAX_JSON_DEPTH)")
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, (json_receive if is_json else counting_receive)
