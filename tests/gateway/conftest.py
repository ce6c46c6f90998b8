"""A whole gateway on 127.0.0.1: api (uvicorn), runcap worker, fake provider, dev server."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from temporalio.client import Client

from activities.alerts import AlertWebhook
from api.app import create_app
from api.settings import Settings
from caller import run_handle
from db.models import LedgerEntry
from fake_provider import FakeProvider
from providers.registry import build_providers, make_http_client
from tests.polling import eventually
from tests.serving import serving
from tests.webhook_receiver import WebhookReceiver, receiving
from worker.app import build_worker
from workflows.agent_run import AgentRun
from workflows.run_contracts import RunSpend

L = LedgerEntry.__table__  # type: ignore[attr-defined]
ADMIN_KEY = "rc-admin-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ALERT_SECRET = "whsec-test"
"""Alerts are signed with it; the sink refuses any whose signature does not verify."""
TEMPORAL_UI = "http://127.0.0.1:8233"
"""Where the dashboard links runs (no UI runs in tests; only the links are checked)."""
DASHBOARD_URL = "http://runcap.test/ui"
"""Where alerts link (the pages themselves are checked on the api's own address)."""
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
SEARCH_MODEL = "fake-searcher"
"""A model the fake serves whose overrides price web searches ($10 per 1,000)."""
HEARD_HEADERS = (
    "anthropic-version",
    "openai-beta",
    "upgrade",
    "x-codex-turn-metadata",
    "x-claude-code-session-id",
)
PRICE_OVERRIDES = {
    "gpt-6.2-sol": {"input": "2", "output": "10", "cached_input": "0.1", "cache_write": "2.5"},
    SEARCH_MODEL: {"input": "1", "output": "2", "tools": {"web_search": "10"}},
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
    seen: Counter[tuple[str, str]]
    """Requests the api received, by (path, the first 12 characters of the key sent); a
    WebSocket handshake counts under ``ws:`` and its path."""
    heard: deque[dict[str, str]]
    """The latest requests the api received: ``type``, ``path``, ``query``, ``key`` (its first
    12 characters) and the headers in ``HEARD_HEADERS``, so a test can say what a client sent."""

    async def create_key(self, **fields: Any) -> dict[str, Any]:
        """A virtual key through the admin api; returns its JSON (secret in ``key``)."""
        body = {"name": "agent", "budget_usd": "1", **fields}
        response = await self.admin.post("/admin/keys", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture(scope="session")
async def gateway_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider.running() as server:
        yield server


@pytest.fixture(scope="session")
async def alert_sink() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1 that checks each alert's signature and keeps it."""
    async with receiving(WebhookReceiver(secret=ALERT_SECRET)) as receiver:
        yield receiver


@pytest.fixture(scope="session")
async def gateway(
    temporal_client: Client,
    gateway_fake: FakeProvider,
    gateway_engine: Engine,
    alert_sink: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Gateway]:
    """The api served by uvicorn, with the worker that runs its runs and writes its ledger."""
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
    seen: Counter[tuple[str, str]] = Counter()
    heard: deque[dict[str, str]] = deque(maxlen=1000)
    async with make_http_client() as http:
        providers = build_providers(settings.provider_configs(), http)
        worker = build_worker(
            temporal_client,
            engine=gateway_engine,
            http=http,
            providers=providers,
            alert_webhook=AlertWebhook(
                url=SecretStr(alert_sink.url),
                secret=SecretStr(ALERT_SECRET),
                dashboard_url=DASHBOARD_URL,
            ),
            task_queue=queue,
        )
        async with (
            worker,
            serving(counting(app, seen, heard)) as base,
            httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=60) as admin,
        ):
            yield Gateway(
                base,
                admin,
                gateway_engine,
                gateway_fake,
                temporal_client,
                alert_sink.bodies,
                settings,
                seen,
                heard,
            )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home directory of its own for an agent CLI, so no user configuration leaks in."""
    path = tmp_path / "home"
    path.mkdir()
    return path


async def settled_spend(gateway: Gateway, run_id: str) -> RunSpend:
    """The run's figures once every call answered so far has reached it (callers report a few
    seconds after their answers): as many calls as the ledger has, nothing in flight."""

    def billed() -> int:
        with gateway.engine.connect() as conn:
            query = select(func.count()).where(L.c.run_id == run_id, L.c.status != "failed")
            return int(conn.execute(query).scalar() or 0)

    async def query() -> RunSpend | None:
        spend: RunSpend = await run_handle(gateway.temporal, run_id).query(AgentRun.spend)
        rows = await asyncio.to_thread(billed)
        return spend if spend.calls == rows and not spend.in_flight_micros else None

    spend = await eventually(query, within=20)
    assert spend is not None, f"run {run_id} never heard of every call the ledger has"
    return spend


def counting(app: Any, seen: Counter[tuple[str, str]], heard: deque[dict[str, str]]) -> Any:
    """``app``, counting each request by path and key, so a test can tell a client's retries,
    and keeping the latest ones with a few headers (``Gateway.heard``)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            secret = headers.get(b"x-api-key") or headers.get(b"authorization", b"")
            key = secret.decode(errors="replace").removeprefix("Bearer ")[:12]
            where = scope["path"] if scope["type"] == "http" else "ws:" + scope["path"]
            seen[(where, key)] += 1
            request = {
                "type": scope["type"],
                "method": scope.get("method", "GET"),
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode(errors="replace"),
                "key": key,
            }
            for name in HEARD_HEADERS:
                if (value := headers.get(name.encode())) is not None:
                    request[name] = value.decode(errors="replace")
            heard.append(request)
        await app(scope, receive, send)

    return wrapped
