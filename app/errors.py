"""Domain errors: each carries its HTTP meaning; one handler in ``app.api.errors`` renders them.

Domain packages (``transferability``, ``backbones``, …) raise plain ``ValueError``s; services translate
the ones a caller caused into these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


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




def raises(*errors: type[DomainError]) -> Callable[[F], F]:
    """Declare the domain errors a service function can raise (its own and its callees').

    Routes derive their OpenAPI ``responses=`` from these declarations (``app.api.errors.responses_for``),
    so the documented statuses follow the code instead of being typed by hand.
    """
    for error in errors:
        if not (isinstance(error, type) and issubclass(error, DomainError)):
            raise TypeError(f"raises() takes DomainError subclasses, got {error!r}")

    def mark(fn: F) -> F:
        fn.__raises__ = tuple(dict.fromkeys((*getattr(fn, "__raises__", ()), *errors)))  # type: ignore[attr-defined]
        return fn

    return mark


def declared_errors(fn: Callable[..., Any]) -> tuple[type[DomainError], ...]:
    """The errors ``fn`` declared with :func:`raises` (empty when it declared none)."""
    return tuple(getattr(fn, "__raises__", ()))
