"""The client's exceptions: one class per error code the service answers (``{"error", "detail"}``), so a
caller catches :class:`NotFoundError` or :class:`BackboneUnavailableError` rather than parsing bodies."""

from __future__ import annotations

from typing import Any

import httpx


class ScoutError(Exception):
    """Base of every client error: ``status`` (HTTP; 0 when no answer came), the service's ``error`` code,
    its ``detail`` message and, for validation errors, the offending ``fields``."""

    error = "error"

    def __init__(self, detail: str, *, status: int = 0, error: str | None = None,
                 fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        if error is not None:
            self.error = error
        self.fields = fields or []

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status else ""
        return f"{where}{self.error}: {self.detail}"


class TransportError(ScoutError):
    """No answer: the server is unreachable, or the connection broke."""

    error = "transport_error"


class BadRequestError(ScoutError):
    error = "bad_request"


class InvalidInputError(ScoutError):
    error = "invalid_input"


class ValidationError(InvalidInputError):
    error = "validation_error"


class BackboneUnavailableError(InvalidInputError):
    error = "backbone_unavailable"


class UnauthorizedError(ScoutError):
    error = "unauthorized"


class NotFoundError(ScoutError):
    error = "not_found"


class ConflictError(ScoutError):
    error = "conflict"


class PayloadTooLargeError(ScoutError):
    error = "payload_too_large"


class UnsupportedMediaTypeError(ScoutError):
    error = "unsupported_media_type"


class ServiceUnavailableError(ScoutError):
    """503: a dependency of the service (database, artifact store) is down; ``retry_after`` is the seconds
    its ``Retry-After`` header asks to wait, when it sends one."""

    retry_after: float | None = None

    error = "unavailable"


class ServerError(ScoutError):
    error = "internal_error"


class JobFailedError(ScoutError):
    """``wait(..., raise_on_failure=True)`` on a job that ended FAILED; ``job`` is the final ranking."""

    error = "job_failed"

    def __init__(self, detail: str, job: Any) -> None:
        super().__init__(detail)
        self.job = job


class WaitTimeout(ScoutError):
    error = "wait_timeout"


_BY_CODE: dict[str, type[ScoutError]] = {cls.error: cls for cls in (
    BadRequestError, InvalidInputError, ValidationError, BackboneUnavailableError, UnauthorizedError, NotFoundError,
    ConflictError, PayloadTooLargeError, UnsupportedMediaTypeError, ServiceUnavailableError, ServerError)}
_BY_STATUS: dict[int, type[ScoutError]] = {400: BadRequestError, 401: UnauthorizedError, 404: NotFoundError,
                                           409: ConflictError, 413: PayloadTooLargeError,
                                           415: UnsupportedMediaTypeError, 422: InvalidInputError,
                                           503: ServiceUnavailableError}


def error_for(response: httpx.Response) -> ScoutError:
    """The typed exception for an error response (by its ``error`` code, else by its status)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code, detail = body["error"], str(body.get("detail", ""))
        fields = body.get("fields") if isinstance(body.get("fields"), list) else None
    else:
        code, detail, fields = None, response.text[:500] or response.reason_phrase, None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code) or \
        (ServerError if response.status_code >= 500 else ScoutError)
    exc = cls(detail, status=response.status_code, error=code, fields=fields)
    if isinstance(exc, ServiceUnavailableError):
        try:
            exc.retry_after = float(response.headers.get("Retry-After", ""))
        except ValueError:
            exc.retry_after = None
    return exc
