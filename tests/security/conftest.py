"""The attacks' stack: one worker and one fake provider for the session, and an api per test,
built with the settings its attack needs and served by uvicorn on 127.0.0.1 with the api's own
server options (``api.__main__.server_options``), as ``python -m api`` serves it.

The attacker holds a virtual key only (the threat model in ``../shared/design.md``); the admin
key is used to set the scene (create that key), never by the attack itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.client import Client

from api.__main__ import server_options
from api.app import create_app
from api.settings import Settings
from fake_provider import FakeProvider
from providers.registry import build_providers, make_http_client
from tests.databases import sqlite_at_head
from tests.serving import serving
from worker.app import build_worker

ADMIN_KEY = "rc-admin-security"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
HELLO: Any = [{"role": "user", "content": "fix the failing test"}]


@dataclass
class Api:
    """One api on 127.0.0.1: its address, its app (state included) and its settings."""

    base_url: str
    app: FastAPI
    settings: Settings
    admin: httpx.AsyncClient

    async def create_key(self, **fields: Any) -> str:
        """A virtual key through the admin api; returns its secret."""
        body = {"name": "agent", "budget_usd": "5", **fields}
        response = await self.admin.post("/admin/keys", json=body)
        assert response.status_code == 201, response.text
        secret: str = response.json()["key"]
        return secret


@dataclass
class Stack:
    temporal: Client
    engine: Engine
    fake: FakeProvider
    queue: str
    routes: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "admin_key": SecretStr(ADMIN_KEY),
            "fake_provider_url": self.fake.base_url,
            "workflow_task_queue": self.queue,
            "routes_file": str(self.routes),
            **overrides,
        }
        return Settings.model_validate(values)

    @asynccontextmanager
    async def api(self, **overrides: Any) -> AsyncIterator[Api]:
        """An api with these settings (``Settings`` field names), served until the block ends."""
        settings = self.settings(**overrides)
        app = create_app(settings, engine=self.engine, temporal_client=self.temporal)
        async with (
            serving(app, **server_options(settings)) as base,
            httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=60) as admin,
        ):
            yield Api(base, app, settings, admin)


@pytest.fixture(scope="session")
async def security_stack(
    temporal_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A database, a fake provider and the worker that runs the runs, for every attack."""
    root = tmp_path_factory.mktemp("security")
    engine = sqlite_at_head(root / "runcap.db")
    routes = root / "routes.json"
    routes.write_text(json.dumps({"routes": []}))
    queue = f"security-{uuid.uuid4().hex[:8]}"
    async with FakeProvider.running() as fake, make_http_client() as http:
        configs = Settings.model_validate({"fake_provider_url": fake.base_url}).provider_configs()
        worker = build_worker(
            temporal_client,
            engine=engine,
            http=http,
            providers=build_providers(configs, http),
            task_queue=queue,
        )
        async with worker:
            yield Stack(temporal_client, engine, fake, queue, routes)
    engine.dispose()
