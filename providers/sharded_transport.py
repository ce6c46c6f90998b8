"""An HTTP transport made of several connection pools, each request to the next in turn.

Why: httpcore scans its whole pool on every request and every response (to match requests to
idle connections), so one pool of 50 busy connections made the api spend 6 ms of CPU per call
in httpx at 50 calls in flight (measured with py-spy, ``make bench BENCH_ARGS=profile``). Several
small pools keep each scan short; together they hold as many connections as the one would.
"""

from __future__ import annotations

import itertools

import httpx

SHARD_CONNECTIONS = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` ``AsyncHTTPTransport`` pools sharing ``limits`` between them."""

    def __init__(self, limits: httpx.Limits, *, shards: int | None = None) -> None:
        total = limits.max_connections or SHARD_CONNECTIONS
        count = shards or max(1, -(-total // SHARD_CONNECTIONS))
        keepalive = limits.max_keepalive_connections

        def share(value: int | None) -> int | None:
            return None if value is None else max(1, -(-value // count))

        per = httpx.Limits(
            max_connections=share(limits.max_connections),
            max_keepalive_connections=share(keepalive),
            keepalive_expiry=limits.keepalive_expiry,
        )
        self.pools = [httpx.AsyncHTTPTransport(limits=per) for _ in range(count)]
        self._next = itertools.cycle(self.pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()
