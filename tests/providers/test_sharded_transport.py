"""Several small connection pools behave as one: limits split between them, every request
answered, requests spread over the pools."""

from __future__ import annotations

import asyncio

import httpx

from fake_provider import FakeProvider
from providers.sharded_transport import ShardedTransport


def test_limits_are_shared_between_the_pools() -> None:
    """512 connections become 32 pools of 16; a small limit stays one pool."""
    wide = ShardedTransport(httpx.Limits(max_connections=512, max_keepalive_connections=512))
    assert len(wide.pools) == 32
    narrow = ShardedTransport(httpx.Limits(max_connections=10, max_keepalive_connections=5))
    assert len(narrow.pools) == 1


async def test_concurrent_requests_are_answered_across_pools(fake: FakeProvider) -> None:
    """40 requests at once through four pools: every one answered, every pool used."""
    transport = ShardedTransport(httpx.Limits(max_connections=64), shards=4)
    async with httpx.AsyncClient(transport=transport) as http:
        answers = await asyncio.gather(*(http.get(f"{fake.base_url}/health") for _ in range(40)))
        opened = [len(pool._pool.connections) for pool in transport.pools]
    assert all(a.status_code == 200 for a in answers)
    assert all(count > 0 for count in opened), opened
