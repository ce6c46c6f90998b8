"""Serve an ASGI app on 127.0.0.1 for the length of a block (the gateway, a webhook receiver)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

SHUTDOWN_GRACE_SECONDS = 10.0


@asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 until the block ends; ``options``
    are more ``uvicorn.Config`` arguments (the api's own: ``api.__main__.server_options``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            # A client that never finishes its request holds a graceful shutdown forever.
            server.force_exit = True
            await task
