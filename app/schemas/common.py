"""Shapes shared by every resource."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` and the ``total`` matching the filter."""

    items: list[T]
    total: int = Field(ge=0)
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= to get the next page.")
