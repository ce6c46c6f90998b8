"""Session fixtures: one Temporal dev server per test run, a client, a fresh task queue per test,
the fake provider and the providers, prices and ledger database that runs use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from db.engine import create_tables, make_engine
from fake_provider import FakeProvider
from providers.base import Provider, ProviderConfig
from providers.pricing import PriceBook
from providers.registry import build_providers, make_http_client
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
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def gateway_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The gateway's database for the session (the gateway tests' api and the demo share it)."""
    path: Path = tmp_path_factory.mktemp("gateway") / "runcap.db"
    engine = make_engine(f"sqlite:///{path}")
    create_tables(engine)
    yield engine
    engine.dispose()
