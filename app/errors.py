"""Domain errors: each carries its HTTP meaning; one handler in ``app.api.errors`` renders them.

Domain packages (``transferability``, ``backbones``, …) raise plain ``ValueError``s; services translate
the ones a caller caused into these classes.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: ``status`` is the HTTP status, ``detail`` the human message (names the offending value)."""

    status: int = 400
    error: str = "bad_request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFound(DomainError):
    status = 404
    error = "not_found"


class Conflict(DomainError):
    status = 409
    error = "conflict"


class InvalidInput(DomainError):
    status = 422
    error = "invalid_input"


class Unauthorized(DomainError):
    status = 401
    error = "unauthorized"


class PayloadTooLarge(DomainError):
    status = 413
    error = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status = 415
    error = "unsupported_media_type"


class BackboneUnavailable(DomainError):
    """Weights cannot be found offline; the detail says where to place them."""

    status = 422
    error = "backbone_unavailable"


class NotReady(DomainError):
    status = 503
    error = "not_ready"
