"""Typed dependency aliases. Handlers take these and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from app.db.session import unit_of_work
from app.execution.base import Executor
from app.runtime import Runtime
from app.services.auth import Principal, authenticate, local_principal
from app.settings import AuthMode, Settings
from app.storage import ArtifactStore


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.runtime.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.runtime.store


def get_executor(request: Request) -> Executor:
    return request.app.state.executor


async def admit(request: Request) -> AsyncIterator[None]:
    """Hold one of ``TSCOUT_API_MAX_CONCURRENT_REQUESTS`` slots while the request holds a database session.

    Waiting requests wait here, in the event loop, holding neither a thread nor a pooled connection. The
    pool is sized for every admitted request plus every request thread (``Settings.db_pool_capacity``), so
    no thread ever waits for a connection held by a request that waits for a thread — the deadlock a
    burst of sync requests otherwise hits when each holds a connection between two thread hops.
    """
    async with request.app.state.admission:
        yield


def get_session(request: Request, _: Annotated[None, Depends(admit, scope="function")]) -> Iterator[Session]:
    """The request owns the transaction: commit when the handler returns, roll back if it raises.

    ``scope="function"`` (below) ends this before the response is sent, so a client never sees a 2xx for
    data that failed to commit, and work handed to the executor after commit is visible to it.
    """
    with unit_of_work(request.app.state.runtime.sessions) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    if settings.auth is AuthMode.disabled:
        return local_principal(session, settings.local_project)
    return authenticate(session, authorization, pepper=settings.key_pepper, local_project=settings.local_project)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
