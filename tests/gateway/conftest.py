"""A whole gateway on 127.0.0.1: api (uvicorn), runcap worker, fake provider, dev server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from api.settings import Settings
from caller import run_handle
from fake_provider import FakeProvider
from providers.registry import build_providers, make_http_client
from tests.databases import sqlite_at_head
from tests.polling import eventually
from worker.app import build_worker
from workflows.agent_run import AgentRun
from workflows.contracts import RunSpend

ADMIN_KEY = "rc-admin-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TEMPORAL_UI = "http://127.0.0.1:8233"
"""Where the dashboard links runs (no UI runs in tests; only the links are checked)."""
ROUTE_CODER = {"model": "coder", "chain": ["fake/fake-large", "fake/fake-small"]}
"""A routed model whose premium target falls back to a cheap one."""
ROUTE_CROSS = {"model": "cross", "chain": ["fake/fake-large", "fake-anthropic/claude-haiku-4-5"]}
ROUTE_GUARDED = {
    "model": "guarded",
    "chain": ["fake/fake-large", "fake/fake-small"],
    "first_byte_timeout_seconds": 1,
}
"""A premium target that may hang, guarded by a short first-byte timeout."""
"""A chain that crosses formats: chat completions first, then Anthropic messages."""
PRICE_OVERRIDES = {
    "gpt-6.2-sol": {"input": "2", "output": "10", "cached_input": "0.1", "cache_write": "2.5"}
}
"""Codex 0.171's default model, which genai-prices 0.2.3 does not list yet: a deployment prices it
through its overrides file, and so does this one (at gpt-6.1-sol's rates, an assumption)."""


@dataclass
class Gateway:
    base_url: str
    admin: httpx.AsyncClient
    engine: Engine
    fake: FakeProvider
    temporal: Client
    alerts: list[dict[str, Any]]
    settings: Settings

    async def create_key(self, **fields: Any) -> dict[str, Any]:
        """A virtual key through the admin api; returns its JSON (secret in ``key``)."""
        body = {"name": "agent", "budget_usd": "1", **fields}
        response = await self.admin.post("/admin/keys", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def gateway_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider.running() as server:
        yield server


@pytest.fixture(scope="session")
def gateway_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("gateway") / "runcap.db"
    engine = sqlite_at_head(path)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
async def alert_sink() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1 that keeps what it is sent."""
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as base:
        yield f"{base}/hook", received


@pytest.fixture(scope="session")
async def gateway(
    temporal_client: Client,
    gateway_fake: FakeProvider,
    gateway_engine: Engine,
    alert_sink: tuple[str, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Gateway]:
    """The api served by uvicorn, with the worker that runs its runs and writes its ledger."""
    hook, received = alert_sink
    queue = "gateway-tests"
    routes = tmp_path_factory.mktemp("routes") / "routes.json"
    routes.write_text(json.dumps({"routes": [ROUTE_CODER, ROUTE_CROSS, ROUTE_GUARDED]}))
    overrides = routes.with_name("prices.json")
    overrides.write_text(json.dumps(PRICE_OVERRIDES))
    settings = Settings.model_validate(
        {
            "admin_key": SecretStr(ADMIN_KEY),
            "fake_provider_url": gateway_fake.base_url,
            "workflow_task_queue": queue,
            "max_body_bytes": 2 * 1024 * 1024,
            "routes_file": str(routes),
            "price_overrides_file": str(overrides),
            "temporal_ui_url": TEMPORAL_UI,
        }
    )
    app = create_app(settings, engine=gateway_engine, temporal_client=temporal_client)
    async with make_http_client() as http:
        providers = build_providers(settings.provider_configs(), http)
        worker = build_worker(
            temporal_client,
            engine=gateway_engine,
            http=http,
            providers=providers,
            alert_webhook_url=hook,
            task_queue=queue,
        )
        async with (
            worker,
            serving(app) as base,
            httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=60) as admin,
        ):
            yield Gateway(
                base, admin, gateway_engine, gateway_fake, temporal_client, received, settings
            )


async def settled_spend(gateway: Gateway, run_id: str) -> RunSpend:
    """The run's figures once every call answered so far has settled there (settles are
    batched off the call path, a few hundred ms after the answers)."""

    async def query() -> RunSpend | None:
        spend: RunSpend = await run_handle(gateway.temporal, run_id).query(AgentRun.spend)
        return None if spend.open_calls else spend

    spend = await eventually(query, within=15)
    assert spend is not None, f"run {run_id} kept calls open"
    return spend
