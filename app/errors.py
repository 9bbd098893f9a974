"""Domain errors: each carries its HTTP meaning; one handler in ``app.api.errors`` renders them.

Domain packages (``transferability``, ``backbones``, …) raise plain ``ValueError``s; services translate
the ones a caller caused into these classes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
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


class BadRequest(DomainError):
    """The request could not be read at all (malformed JSON or multipart, nesting past the cap)."""

    status = 400
    error = "bad_request"


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


class Unavailable(DomainError):
    """A dependency (the database, the artifact store) cannot be reached or used right now; retry later.
    Rendered with ``Retry-After``."""

    status = 503
    error = "unavailable"


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


# an absolute POSIX path that is not part of a URL (``s3://b/x``, ``http://h/p``) or a relative path
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"`:,;()<>\[\]{}|]+)")


def public_text(text: str, roots: Iterable[str] = ()) -> str:
    """``text`` fit for a response body: a path under one of ``roots`` (the artifact store) becomes its key,
    any other absolute path its last component — a body never shows where the server keeps its files."""
    ordered = sorted((r.rstrip("/") for r in roots if r), key=len, reverse=True)

    def hide(match: re.Match[str]) -> str:
        path = match.group(0)
        for root in ordered:
            if path == root:
                return "<artifact store>"
            if path.startswith(root + "/"):
                return f"artifact {path[len(root) + 1:]}"
        return f"…/{os.path.basename(path.rstrip('/')) or ''}"

    return _ABSOLUTE_PATH.sub(hide, text)


def describe_failure(exc: BaseException, roots: Iterable[str] = ()) -> str:
    """A failure as a caller may read it: the exception type and message, an OS error as its reason and the
    artifact it concerns (``PermissionError: Permission denied (artifact datasets/…/x.npy)``), never its repr
    with a server path."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
        if exc.filename is not None:
            text += f" ({os.fspath(exc.filename)})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return public_text(text, roots)
