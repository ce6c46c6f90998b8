"""More api instances of the test gateway, as real processes (``python -m api``).

They share the gateway's Temporal server, database, task queue, routes and fake provider, as a
second api replica would in production; a test may SIGKILL one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from tests.gateway.conftest import ADMIN_KEY, Gateway
from tests.polling import eventually
from worker.devserver import free_port, stop_process


@dataclass
class ApiProcess:
    base_url: str
    process: asyncio.subprocess.Process

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no last settle batch, as a crashed machine."""
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


def api_env(gateway: Gateway, port: int, **extra: str) -> dict[str, str]:
    settings = gateway.settings
    env = {
        **os.environ,
        "RUNCAP_TEMPORAL_ADDRESS": gateway.temporal.service_client.config.target_host,
        "RUNCAP_DATABASE_URL": gateway.engine.url.render_as_string(hide_password=False),
        "RUNCAP_FAKE_PROVIDER_URL": gateway.fake.base_url,
        "RUNCAP_ADMIN_KEY": ADMIN_KEY,
        "RUNCAP_API_PORT": str(port),
        "RUNCAP_WORKFLOW_TASK_QUEUE": settings.workflow_task_queue,
        "RUNCAP_ROUTES_FILE": str(settings.routes_file),
        "RUNCAP_PRICE_OVERRIDES_FILE": str(settings.price_overrides_file),
        "RUNCAP_KEY_CACHE_TTL_SECONDS": "0.5",
    }
    return {**env, **extra}


@asynccontextmanager
async def api_process(
    gateway: Gateway, *, port: int = 0, env: dict[str, str] | None = None
) -> AsyncIterator[ApiProcess]:
    """A running ``python -m api`` on ``port`` (a free one by default), stopped at the end;
    ``env`` adds settings (``RUNCAP_*``)."""
    port = port or free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below; a pipe nobody reads could fill)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        env=api_env(gateway, port, **(env or {})),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    api = ApiProcess(f"http://127.0.0.1:{port}", process)

    async def healthy() -> bool:
        if process.returncode is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise AssertionError(f"api exited with {process.returncode}: {err[-2000:]}")
        try:
            async with httpx.AsyncClient(timeout=1) as http:
                return (await http.get(f"{api.base_url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert await eventually(healthy, within=60), "the api never answered /healthz"
        yield api
    finally:
        await stop_process(process)
        log.close()
