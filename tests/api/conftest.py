"""Fixtures of the api tests: a database on SQLite and on a throwaway PostgreSQL, and the app.

The PostgreSQL server is real (initdb + pg_ctl on 127.0.0.1, one per session); without its
binaries the PostgreSQL variants skip locally and fail in CI, where they must run.
"""

from __future__ import annotations

import os
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
from db.engine import create_tables, make_engine
from tests.api.helpers import ADMIN_KEY, stand_in_router
from tests.postgres import pg_bindir, throwaway_postgres

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
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL server and database for this session, stopped at the end."""
    bindir = pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("no PostgreSQL binaries on PATH or under /usr/lib/postgresql/*/bin")
    with throwaway_postgres(bindir) as url:
        yield url


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """One engine on the session's PostgreSQL, tables created once."""
    engine = make_engine(postgres_url)
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty runcap database, on SQLite (a new file) or PostgreSQL (tables emptied)."""
    if request.param == "sqlite":
        sqlite_engine = make_engine(f"sqlite:///{tmp_path / 'runcap.db'}")
        create_tables(sqlite_engine)
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
    engine = make_engine(f"sqlite:///{tmp_path / 'runcap.db'}")
    create_tables(engine)
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
