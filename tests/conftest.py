"""Session fixtures: one Temporal dev server per test run, a client, a fresh task queue per test,
the fake provider and the providers, prices and ledger database that runs use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from fake_provider import FakeProvider
from prodcheck.postgres import LocalPostgres, pg_bindir
from providers.base import Provider, ProviderConfig
from providers.pricing import PriceBook
from providers.registry import build_providers, make_http_client
from tests.databases import sqlite_at_head
from worker.devserver import DevServer
from workflows.contracts import Target, WireFormat
from workflows.converter import DATA_CONVERTER

SUGGEST_CONTINUE_AS_NEW = {"limit.historyCount.suggestContinueAsNew": 400}


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[DevServer]:
    """An in-memory, headless dev server with runcap's search attributes and update limits."""
    # Runs continue as new every few dozen calls here (4,096 events by default), so every test
    # that makes many calls also proves that budgets, results and the ledger survive it.
    async with DevServer(ui=False, extra_config=SUGGEST_CONTINUE_AS_NEW) as server:
        yield server


@pytest.fixture(scope="session")
async def temporal_client(dev_server: DevServer) -> Client:
    """A client on the session's dev server, default namespace."""
    return await Client.connect(dev_server.target, data_converter=DATA_CONVERTER)


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses, so workers of different tests never steal tasks."""
    return f"tq-{uuid4().hex}"


@pytest.fixture(scope="session")
async def fake() -> AsyncIterator[FakeProvider]:
    """One fake provider server on 127.0.0.1 for the session; tests script it per model."""
    async with FakeProvider.running() as server:
        yield server


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client


@pytest.fixture(scope="session")
def providers(fake: FakeProvider, http: httpx.AsyncClient) -> dict[str, Provider]:
    configs = [
        ProviderConfig("fake", "openai", f"{fake.base_url}/v1"),
        ProviderConfig("fake-anthropic", "anthropic", fake.base_url),
    ]
    return build_providers(configs, http)


@pytest.fixture(scope="session")
def prices() -> PriceBook:
    return PriceBook()


@pytest.fixture
def target(prices: PriceBook) -> TargetFactory:
    return TargetFactory(prices)


class TargetFactory:
    """Targets priced from the shipped table, as the gateway would price them."""

    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices

    def __call__(self, model: str, provider: str = "fake") -> Target:
        api: WireFormat = "anthropic" if provider.endswith("anthropic") else "openai"
        return Target(provider, model, api, self.prices.price_of(model))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = sqlite_at_head(tmp_path / "ledger.db")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for the session (initdb + pg_ctl on 127.0.0.1), superuser
    ``runcap``; without its binaries PostgreSQL tests skip locally and fail in CI."""
    if pg_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("no PostgreSQL binaries on PATH or under /usr/lib/postgresql/*/bin")
    with LocalPostgres(superuser="runcap") as server:
        server.psql("CREATE DATABASE runcap")
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: LocalPostgres) -> str:
    """The session's ``runcap`` database, as its superuser."""
    return postgres_server.url("runcap", "runcap").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def gateway_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The gateway's database for the session (the gateway tests' api and the demo share it)."""
    path: Path = tmp_path_factory.mktemp("gateway") / "runcap.db"
    engine = sqlite_at_head(path)
    yield engine
    engine.dispose()
