"""Fixtures: one real fake-provider server per session, reset per test; one shared HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from fake_provider import FakeProvider
from providers import make_http_client


@pytest_asyncio.fixture(scope="session")
async def fake_server() -> AsyncIterator[FakeProvider]:
    async with FakeProvider.running() as fake:
        yield fake


@pytest_asyncio.fixture
async def fake(fake_server: FakeProvider) -> FakeProvider:
    await fake_server.reset()
    return fake_server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client
