"""Fixtures of the api tests: a database on SQLite and on a throwaway PostgreSQL, and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine, text
from temporalio.client import Client

from api.app import create_app
from api.settings import Settings
from tests.api.helpers import ADMIN_KEY, stand_in_router
from tests.databases import migrated, sqlite_at_head

OUR_TABLES = (
    "ledger_tags",
    "ledger",
    "virtual_keys",
    "alerts",
    "idempotent_requests",
    "rate_windows",
    "call_slots",
)


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """One engine on the session's PostgreSQL, migrated to head once."""
    engine = migrated(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty runcap database, on SQLite (a new file) or PostgreSQL (tables emptied)."""
    if request.param == "sqlite":
        sqlite_engine = sqlite_at_head(tmp_path / "runcap.db")
        yield sqlite_engine
        sqlite_engine.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    with pg.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(OUR_TABLES)}"))
    yield pg


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite database, for tests that need no second backend."""
    engine = sqlite_at_head(tmp_path / "runcap.db")
    yield engine
    engine.dispose()


def make_settings(**overrides: object) -> Settings:
    """Settings for a test app: an admin key, a small body limit, no environment."""
    values: dict[str, object] = {
        "admin_key": SecretStr(ADMIN_KEY),
        "max_body_bytes": 64 * 1024,
        "key_cache_ttl_seconds": 60.0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
async def app(engine: Engine, temporal_client: Client) -> AsyncIterator[FastAPI]:
    """The api around the test database and the session's dev server, lifespan entered."""
    application = create_app(make_settings(), engine=engine, temporal_client=temporal_client)
    application.include_router(stand_in_router)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client of ``app``; unexpected app errors become responses."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://runcap.test") as http:
        yield http
