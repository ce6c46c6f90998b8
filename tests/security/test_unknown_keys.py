"""Attack: requests with unknown ``rc-`` keys, each a database lookup. An unknown key is
remembered as unknown for a short time, in a cache of bounded size."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine, event

from tests.security.conftest import HELLO, Api, Stack


@contextmanager
def key_lookups(engine: Engine) -> Iterator[list[str]]:
    """The statements that look a key up by its secret's hash, while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM virtual_keys" in statement and "key_hash" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def call(http: httpx.AsyncClient, api: Api, key: str) -> httpx.Response:
    body = {"model": "gpt-4.1", "messages": HELLO, "max_tokens": 16}
    return await http.post(
        f"{api.base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )


async def test_an_unknown_key_is_looked_up_once(security_stack: Stack) -> None:
    """50 requests with one unknown key cost one database lookup, each still a 401."""
    unknown = "rc-" + secrets.token_urlsafe(32)
    async with security_stack.api() as api, httpx.AsyncClient(timeout=30) as http:
        with key_lookups(security_stack.engine) as lookups:
            answers = [await call(http, api, unknown) for _ in range(50)]
    print(f"database lookups for 50 requests with one unknown key: {len(lookups)}")
    assert {a.status_code for a in answers} == {401}
    assert answers[0].json()["error"]["code"] == "invalid_api_key"
    assert len(lookups) == 1


async def test_the_unknown_key_cache_is_bounded(security_stack: Stack) -> None:
    """Past ``RUNCAP_UNKNOWN_KEY_CACHE_SIZE`` distinct unknown keys, the oldest is forgotten
    (looked up again), the newest is still remembered."""
    keys = ["rc-" + secrets.token_urlsafe(32) for _ in range(24)]
    async with (
        security_stack.api(unknown_key_cache_size=16) as api,
        httpx.AsyncClient(timeout=30) as http,
    ):
        for key in keys:
            assert (await call(http, api, key)).status_code == 401
        with key_lookups(security_stack.engine) as newest:
            await call(http, api, keys[-1])
        with key_lookups(security_stack.engine) as oldest:
            await call(http, api, keys[0])
    assert (len(newest), len(oldest)) == (0, 1)
