"""Fixtures for runs on the real dev server: the fake provider, a worker, a caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from activities.database import create_tables, make_engine
from activities.fake_provider import FakeProvider
from activities.pricing import PriceBook
from activities.providers.base import Provider, ProviderConfig
from activities.providers.registry import build_providers, make_http_client
from worker.app import build_worker
from worker.caller import Caller
from workflows.contracts import Target, WireFormat


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


@pytest.fixture
async def worker(
    temporal_client: Client,
    task_queue: str,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: dict[str, Provider],
) -> AsyncIterator[None]:
    """runcap's worker on this test's own task queue."""
    async with build_worker(
        temporal_client, engine=engine, http=http, providers=providers, task_queue=task_queue
    ):
        yield


@pytest.fixture
async def caller(
    temporal_client: Client, task_queue: str, providers: dict[str, Provider], worker: None
) -> AsyncIterator[Caller]:
    """A caller whose runs live on this test's worker."""
    async with Caller(temporal_client, providers, workflow_task_queue=task_queue) as c:
        yield c
