"""The app factory: health, the lifespan hook for the gateway, the key cache's TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.app import create_app
from api.auth import KeyCache, hash_secret
from api.errors import AuthError
from db.models import VirtualKey
from tests.api.conftest import make_settings


async def test_lifespan_runs_extra_hooks_with_shared_clients(
    sqlite_engine: Engine, temporal_client: Client
) -> None:
    """Hooks in app.state.extra_lifespans run inside the lifespan, after the clients exist."""
    events: list[str] = []

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app.state.http, httpx.AsyncClient)
        assert app.state.temporal is temporal_client
        events.append("start")
        yield
        events.append("stop")

    app = create_app(make_settings(), engine=sqlite_engine, temporal_client=temporal_client)
    app.state.extra_lifespans.append(hook)
    async with app.router.lifespan_context(app):
        assert events == ["start"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert events == ["start", "stop"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_key_cache_ttl_bounds_a_revoke_made_elsewhere(sqlite_engine: Engine) -> None:
    """A revoke written by another process is seen once the cached entry's TTL runs out."""
    secret = "rc-test-secret"
    with Session(sqlite_engine) as session:
        session.add(
            VirtualKey(
                id="key_t",
                name="t",
                key_hash=hash_secret(secret),
                key_prefix=secret[:8],
                budget_per_run_micros=1,
            )
        )
        session.commit()
    clock = Clock()
    cache = KeyCache(sqlite_engine, ttl=1.0, clock=clock)
    assert (await cache.lookup(secret)).id == "key_t"
    with Session(sqlite_engine) as session:
        key = session.get(VirtualKey, "key_t")
        assert key is not None
        key.revoked_at = datetime.now(UTC)
        session.add(key)
        session.commit()
    clock.now = 0.5
    assert (await cache.lookup(secret)).id == "key_t"
    clock.now = 1.5
    with pytest.raises(AuthError):
        await cache.lookup(secret)
    with pytest.raises(AuthError):
        await cache.lookup("sk-openai-style-key")
