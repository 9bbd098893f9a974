"""An ASGI-level cap on request bodies, for the routes that take uploads.

The cap is enforced before and while the body streams in, never after buffering it: a declared
``Content-Length`` above the cap is answered 413 before a byte of the body is read, and a chunked body is
counted as it arrives and cut off at the first chunk past the cap. The cap is
``TSCOUT_MAX_UPLOAD_BYTES`` plus :data:`FORM_OVERHEAD_BYTES` for the multipart framing and form fields;
the service then caps the file part itself at exactly ``TSCOUT_MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

FORM_OVERHEAD_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes (file cap TSCOUT_MAX_UPLOAD_BYTES "
                              f"plus {FORM_OVERHEAD_BYTES} bytes of form overhead)")


def _body_limit(scope: Scope) -> int:
    return scope["app"].state.runtime.settings.max_upload_bytes + FORM_OVERHEAD_BYTES


class UploadLimitedRoute(APIRoute):
    """An ``APIRoute`` whose request body may not pass the upload cap (see the module docstring)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().handle(scope, receive, send)
            return
        limit = _body_limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server refuses a malformed Content-Length before we get here
            if too_big:
                exc = BodyTooLarge(limit)
                response = JSONResponse({"error": "payload_too_large", "detail": exc.detail}, status_code=413,
                                        headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await super().handle(scope, counting_receive, send)
