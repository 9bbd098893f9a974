"""The real app served over real HTTP: uvicorn on a free loopback port, with an httpx client pointed at it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import uvicorn

from app.main import create_app
from app.settings import Settings


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The real app under uvicorn on a loopback port, with an httpx client pointed at it."""

    def __init__(self, settings: Settings, *, start_executor: bool | None = True) -> None:
        self.settings = settings
        self.app = create_app(settings, start_executor=start_executor)
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    @property
    def runtime(self):
        return self.app.state.runtime


def fire(url: str, requests: list[dict], *, timeout: float = 60) -> list[httpx.Response]:
    """Send every request of ``requests`` (``httpx.Client.request`` kwargs) at once — one client each, all
    released together by an asyncio gather — and return the responses in order."""
    import asyncio

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=timeout,
                                     limits=httpx.Limits(max_connections=len(requests) + 1)) as client:
            return list(await asyncio.gather(*(client.request(**r) for r in requests)))

    return asyncio.run(run())
