"""Parameter types shared by the routes (timestamps and keyset cursors, with their OpenAPI constraints; hub
ids, and the ``backbone_id`` path convertor), and the one way a read route answers an already-built model
(:func:`json_body`).

A timestamp is ISO 8601 (``2020-01-01``, ``2020-01-01T12:00:00Z``, ``…+02:00``); one without a timezone is
read as UTC, and a bare number (which Pydantic would take as a Unix time) is refused with 422. A keyset
cursor is the opaque base64url token a previous page returned. A query parameter no route declares
(``?dataset=`` for ``?dataset_id=``) answers 422 naming the ones it takes, instead of being ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, BeforeValidator
from starlette.convertors import Convertor, register_url_convertor

from app.errors import InvalidInput

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$")
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}={0,2}$"


_KNOWN_QUERY: dict[int, frozenset[str]] = {}


def _query_names(dependant) -> set[str]:
    """The query parameter names of a route's dependency tree."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def refuse_unknown_query(request: Request) -> None:
    """An app-wide dependency: 422 for a query parameter the matched route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _KNOWN_QUERY.get(id(route))
    if known is None:
        known = frozenset(_query_names(route.dependant))
        _KNOWN_QUERY[id(route)] = known
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) if known else "no query parameters"
        raise InvalidInput(f"unknown query parameter(s) {unknown}; {route.path} takes {takes}")


def _iso_8601_only(value: object) -> object:
    if isinstance(value, str) and not ISO_8601.fullmatch(value.strip()):
        raise ValueError("expected an ISO 8601 date or date-time such as 2020-01-01 or 2020-01-01T12:00:00Z")
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date or date-time, not a number")
    return value


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, BeforeValidator(_iso_8601_only), AfterValidator(as_utc)]

CreatedAfter = Annotated[UtcDateTime | None, Query(
    description="Only rows created at or after this ISO 8601 time (no timezone: UTC).")]
CreatedBefore = Annotated[UtcDateTime | None, Query(
    description="Only rows created before this ISO 8601 time (no timezone: UTC).")]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, max_length=402,
                                     description="The opaque next_cursor of a previous page.")]


def check_backbone_id(backbone_id: str) -> str:
    """Refuse an id whose name is a path climbing out of where it is looked up (``hf:../../etc``,
    ``timm:/abs``) before any loader sees it; the loaders' own checks then never leak their errors."""
    family, sep, name = backbone_id.partition(":")
    parts = name.split("/")
    if not sep or not family or not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        shown = backbone_id if len(backbone_id) <= 120 else f"{backbone_id[:120]}…"
        raise InvalidInput(f"id: {shown!r} is not a backbone id ('family:name', e.g. 'timm:resnet18.a1_in1k' or "
                           "'hf:org/model'; no empty, '.' or '..' path segments)")
    return backbone_id


class BackboneIdConvertor(Convertor[str]):
    """``{backbone_id:backbone_id}`` in a route path: a backbone id, ``family:name`` (the name may hold ``/``).

    Only a path whose first segment has the family's ``:`` is a backbone id, and one ending in ``/rankings``
    is the backbone's rankings (``GET``); so ``/v1/backbones/upload`` and ``…/rankings`` are never taken for
    an id by ``GET``, ``PATCH`` or ``DELETE`` of a backbone: another method there answers 405 with the
    ``Allow`` of the route that owns the path, not a 404 or 422 about a backbone."""

    regex = r"(?!.*/rankings$)[^/]*:.*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("backbone_id", BackboneIdConvertor())


def json_body(model: BaseModel) -> Response:
    """``model`` serialised once by Pydantic, for read routes that declare it as ``response_model`` (the
    schema documents it; the body is not validated and encoded a second time on the way out)."""
    return Response(model.model_dump_json(), media_type="application/json")
