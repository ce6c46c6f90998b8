"""Run the fake provider: in a background thread for tests, or in the foreground from the CLI.

A thread with its own event loop keeps the server independent of the test's loop (a test that
blocks its loop cannot stall the provider) and works from sync code such as benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from fake_provider.server import DroppedStream, create_app
from providers.pricing import PriceBook

JSON = dict[str, Any]


def _is_drop(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, DroppedStream):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_drop(e) for e in exc.exceptions)
    return _is_drop(exc.__cause__ or exc.__context__)


class _QuietDrops(logging.Filter):
    """A dropped stream is the scripted behaviour, not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_drop(record.exc_info[1]))


def quiet_dropped_streams() -> None:
    """Hide the tracebacks of injected drops from the server's error log."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one, read back with ``getsockname()``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """Says when it is ready, so a starter waits on an event rather than polling the port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


def make_server(prices: PriceBook | None, log_level: str) -> _Server:
    config = uvicorn.Config(
        create_app(prices),
        log_level=log_level,
        lifespan="off",
        timeout_graceful_shutdown=2,
        access_log=False,
    )
    quiet_dropped_streams()
    return _Server(config)


class FakeControl:
    """A client of a fake provider's control API, wherever it runs (in a thread of this
    process, or as ``python -m fake_provider``)."""

    def __init__(self, base_url: str) -> None:
        self._control = httpx.AsyncClient(base_url=base_url, timeout=10.0)

    async def aclose(self) -> None:
        """Close the control client."""
        await self._control.aclose()

    async def _post(self, path: str, payload: Any) -> JSON:
        response = await self._control.post(path, json=payload)
        response.raise_for_status()
        result: JSON = response.json()
        return result

    async def script(self, model: str, **fields: Any) -> None:
        """Script ``model`` (see ``Script`` for the fields); replaces its earlier script."""
        await self._post("/_control/script", {"model": model, **fields})

    async def reset(self) -> None:
        """Forget every script, counter and logged request."""
        await self._post("/_control/reset", {})

    async def calls(self) -> dict[str, dict[str, int]]:
        """Per-model ``{"calls": n, "failures": m, "cancelled": c}``."""
        response = await self._control.get("/_control/calls")
        response.raise_for_status()
        result: dict[str, dict[str, int]] = response.json()
        return result

    async def concurrency(self) -> dict[str, dict[str, int]]:
        """Per-model ``{"running": n, "peak": m}``: requests being answered now, and at most."""
        response = await self._control.get("/_control/concurrency")
        response.raise_for_status()
        result: dict[str, dict[str, int]] = response.json()
        return result

    async def requests(self, model: str | None = None) -> list[JSON]:
        """The request bodies the provider received (most recent last)."""
        params = {"model": model} if model else {}
        response = await self._control.get("/_control/requests", params=params)
        response.raise_for_status()
        result: list[JSON] = response.json()
        return result


class FakeProvider(FakeControl):
    """A running fake provider and a small client for its control API."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        prices: PriceBook | None = None,
        log_level: str = "warning",
    ) -> None:
        self._sock = bind(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = make_server(prices, log_level)
        self._thread = threading.Thread(target=self._serve, name="fake-provider", daemon=True)
        super().__init__(self.base_url)

    @property
    def base_url(self) -> str:
        """The Anthropic ``base_url`` (the host); OpenAI's is ``openai_base_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the server accepts connections."""
        self._thread.start()
        if not self._server.ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError("the fake provider failed to start")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    @classmethod
    @asynccontextmanager
    async def running(
        cls, host: str = "127.0.0.1", port: int = 0, *, prices: PriceBook | None = None
    ) -> AsyncIterator[FakeProvider]:
        """``async with FakeProvider.running() as fake:`` serves until the block ends."""
        fake = cls(host, port, prices=prices)
        await asyncio.to_thread(fake.start)
        try:
            yield fake
        finally:
            await fake._control.aclose()
            await asyncio.to_thread(fake.stop)
